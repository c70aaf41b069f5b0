//! One module per subcommand.

pub mod bench;
pub mod compare;
pub mod convert;
pub mod eval;
pub mod inspect;
pub mod push;
pub mod quantize;
pub mod quantize_auto;
pub mod quantize_static;
