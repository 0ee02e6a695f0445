//! The Python Exec controller: run jobs locally with the runtime's executor,
//! assume target accounts' roles, deploy and invoke the runtime there, and
//! print the IAM documents an account needs.

pub mod aws;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod error;
pub mod invoke;
pub mod job_args;
pub mod policies;
pub mod progress;
pub mod render;
pub mod run;
pub mod schedule;

pub use error::Error;
