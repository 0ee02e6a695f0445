//! The controller's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] pyexec_runtime::Error),

    #[error("{action} {path}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },

    #[error("environment variable {var} (named by --token-env) is not set")]
    TokenEnv { var: String },

    #[error("cannot encode the result")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }
}
