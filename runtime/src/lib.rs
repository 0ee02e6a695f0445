//! The Python Exec executor: run a Python script from a Git repository in a
//! private directory, capture its output, upload the result and the log, and
//! leave nothing behind. Used by the Lambda runtime `bootstrap` and by the
//! controller's `pyexec run`.

pub mod capture;
pub mod checkout;
pub mod cleanup;
pub mod confine;
pub mod error;
pub mod executor;
pub mod job;
pub mod process;
pub mod redact;
pub mod result;
pub mod secrets;
pub mod settings;
pub mod upload;

pub use error::Error;
pub use executor::{Executor, Invocation, LiveLogFactory};
pub use job::{Args, Job, Repository, Secret};
pub use result::{ExecutionStatus, JobResult};
pub use settings::Settings;
