//! The Python Exec controller: run jobs locally with the runtime's executor,
//! and (next) deploy and invoke the runtime in target AWS accounts.

pub mod cli;
pub mod error;
pub mod progress;
pub mod render;
pub mod run;

pub use error::Error;
