//! One module per subcommand.

pub mod compare;
pub mod convert;
pub mod eval;
pub mod inspect;
