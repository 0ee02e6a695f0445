//! The one error type of the runtime crate. Every variant maps to the
//! snake_case `error.kind` of a result.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid job: {field}: {reason}")]
    InvalidJob { field: String, reason: String },

    #[error(
        "git host {host} is not allowed (allowed: {allowed}); the function's PYEXEC_ALLOWED_GIT_HOSTS sets the list"
    )]
    HostNotAllowed { host: String, allowed: String },

    #[error("authentication to {url} failed: {reason}")]
    AuthFailed { url: String, reason: String },

    #[error("the host key of {host} does not match ssh_known_hosts")]
    HostKeyMismatch { host: String },

    #[error("ssh_known_hosts: {reason}")]
    KnownHosts { reason: String },

    #[error(
        "the TLS certificate of {url} is not trusted (for a private CA, set SSL_CERT_FILE in the function's environment)"
    )]
    Tls { url: String, source: git2::Error },

    #[error("{what} not found in {url}")]
    RefNotFound { what: String, url: String },

    #[error("the clone of {url} took longer than {seconds} s")]
    CloneTimeout { url: String, seconds: u64 },

    #[error("the clone of {url} received more than {limit} bytes (PYEXEC_CLONE_MAX_BYTES)")]
    CloneTooLarge { url: String, limit: u64 },

    #[error("cloning {url} failed")]
    Clone { url: String, source: git2::Error },

    #[error("token_ref {reference}: {reason}")]
    TokenRef { reference: String, reason: String },

    #[error(
        "script {script} not found in the repository (paths are relative to the repository root)"
    )]
    ScriptNotFound { script: String },

    #[error("script {script} is outside the checkout")]
    ScriptOutsideCheckout { script: String },

    #[error("script {script} is not a regular file")]
    ScriptNotFile { script: String },

    #[error("cannot build the seccomp filter that keeps the script off the runtime")]
    Confine { source: seccompiler::BackendError },

    #[error("cannot start {python:?}")]
    Spawn {
        python: String,
        source: std::io::Error,
    },

    #[error("upload to s3://{bucket}/{key} failed: {reason}")]
    Upload {
        bucket: String,
        key: String,
        reason: String,
    },

    #[error(
        "S3 did not answer before the invocation deadline; the full log went to the function's log"
    )]
    UploadDeadline,

    #[error("the job was cancelled")]
    Cancelled,

    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidJob {
            field: field.into(),
            reason: reason.into(),
        }
    }

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

    /// For `map_err`: a libgit2 failure while cloning `url`.
    pub(crate) fn clone_failed(url: &str) -> impl FnOnce(git2::Error) -> Error {
        let url = url.to_owned();
        move |source| Error::Clone { url, source }
    }

    /// The snake_case kind reported in `error.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidJob { .. } => "invalid_job",
            Error::HostNotAllowed { .. } => "host_not_allowed",
            Error::AuthFailed { .. } => "auth_failed",
            Error::HostKeyMismatch { .. } => "host_key_mismatch",
            Error::KnownHosts { .. } => "invalid_job",
            Error::Tls { .. } => "tls_failed",
            Error::RefNotFound { .. } => "ref_not_found",
            Error::CloneTimeout { .. } => "clone_timeout",
            Error::CloneTooLarge { .. } => "clone_too_large",
            Error::Clone { .. } => "clone_failed",
            Error::TokenRef { .. } => "token_ref_failed",
            Error::ScriptNotFound { .. } => "script_not_found",
            Error::ScriptOutsideCheckout { .. } => "script_outside_checkout",
            Error::ScriptNotFile { .. } => "script_not_file",
            Error::Spawn { .. } => "spawn_failed",
            Error::Upload { .. } | Error::UploadDeadline => "upload_failed",
            Error::Cancelled => "cancelled",
            Error::Io { .. } | Error::Confine { .. } => "internal",
        }
    }

    /// The message with its whole chain of causes, for `error.message`.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// An error and its causes on one line ("upload failed: dispatch failure:
/// connection refused"), skipping a cause its parent already quotes. The
/// AWS SDK's own Display stops at "service error".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}
