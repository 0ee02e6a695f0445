//! The controller's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] pyexec_runtime::Error),

    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot encode JSON")]
    Json(#[from] serde_json::Error),

    #[error("{path}: {key}: {reason}", path = path.display())]
    Config {
        path: PathBuf,
        key: String,
        reason: String,
    },

    #[error("target {alias:?} is not in {path} (targets: {known})", path = path.display())]
    UnknownTarget {
        alias: String,
        path: PathBuf,
        known: String,
    },

    #[error("no targets: name one with --target, or add [targets.<alias>] to {path}", path = path.display())]
    NoTargets { path: PathBuf },

    #[error("repository {alias:?} is neither a URL nor in [repositories] (known: {known})")]
    UnknownRepository { alias: String, known: String },

    #[error("environment variable {var} (the repository's token) is not set")]
    TokenEnv { var: String },

    #[error(
        "the repository's token comes from ${var} (token_env): a schedule stores its job, so it must not hold a plaintext token; give the repository token_ssm or token_secret in pyexec.toml"
    )]
    PlaintextTokenInSchedule { var: String },

    #[error(
        "function {function} does not exist in target {target}; run `pyexec deploy --target {target}` first"
    )]
    NoFunction { function: String, target: String },

    #[error("no schedule {name:?} in the schedule group pyexec")]
    NoSchedule { name: String },

    #[error("schedule {name:?} does not hold a pyexec job: {reason}")]
    BadSchedule { name: String, reason: String },

    #[error("{flag}: {reason}")]
    Usage { flag: &'static str, reason: String },

    #[error("no image to deploy: set [function].image_uri in pyexec.toml or pass --image-uri")]
    NoImage,

    #[error(
        "cannot assume role {role_arn} of target {target} (check its trust policy and ExternalId)"
    )]
    AssumeRole {
        target: String,
        role_arn: String,
        source: aws_credential_types::provider::error::CredentialsError,
    },

    #[error(
        "Lambda cannot assume the execution role {role_arn}: {message} (it must exist and trust lambda.amazonaws.com; a new role can take a minute to propagate)"
    )]
    RoleNotAssumable { role_arn: String, message: String },

    #[error("function {function} is being updated by someone else; try again when it is done")]
    Conflict { function: String },

    #[error("function {function} failed ({kind}{error_type}): {message}", error_type = if error_type.is_empty() { String::new() } else { format!(", {error_type}") })]
    FunctionError {
        function: String,
        kind: String,
        error_type: String,
        message: String,
    },

    #[error(
        "function {function} hit Lambda's timeout before answering: {message} (raise [function].timeout_seconds or lower the job's --timeout)"
    )]
    FunctionTimeout { function: String, message: String },

    #[error("function {function} answered something that is not a result: {body}")]
    BadResponse { function: String, body: String },

    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// An SDK error with everything it knows (the SDK's own Display is terse).
    pub(crate) fn aws<E: std::error::Error>(operation: &'static str, e: E) -> Error {
        Error::Aws {
            operation,
            message: chain(&e),
        }
    }
}

pub use pyexec_runtime::error::chain;
