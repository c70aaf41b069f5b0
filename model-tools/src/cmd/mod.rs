//! One module per subcommand.

pub mod eval;
pub mod inspect;
pub mod quantize;
pub mod quantize_auto;
pub mod quantize_static;
