//! The result (invocation response) as SPEC.md defines it.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Lambda's limit on a synchronous response is 6 MB; keep a margin.
pub const RESPONSE_LIMIT_BYTES: usize = 6_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Succeeded,
    Failed,
    TimedOut,
    Error,
}

impl std::fmt::Display for ExecutionStatus {
    /// The name in the result JSON, e.g. `TIMED_OUT`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Error => "ERROR",
        })
    }
}

impl ExecutionStatus {
    /// Exit code of the CLI for this status (SPEC.md).
    pub fn exit_code(self) -> i32 {
        match self {
            ExecutionStatus::Succeeded => 0,
            ExecutionStatus::Failed => 1,
            ExecutionStatus::TimedOut => 124,
            ExecutionStatus::Error => 2,
        }
    }

    /// Larger is worse: the exit code of a fan-out is the worst status.
    pub fn severity(self) -> u8 {
        match self {
            ExecutionStatus::Succeeded => 0,
            ExecutionStatus::Failed => 1,
            ExecutionStatus::TimedOut => 2,
            ExecutionStatus::Error => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: String,
    pub message: String,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> Self {
        ErrorInfo {
            kind: e.kind().to_owned(),
            message: e.chain(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub clone: u64,
    pub script: u64,
    pub upload: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub key: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub execution_status: ExecutionStatus,
    pub exit_code: Option<i32>,
    /// The signal that ended the script, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub output: serde_json::Value,
    #[serde(default)]
    pub output_truncated: bool,
    pub log: String,
    pub log_truncated: bool,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub log_key: Option<String>,
    pub commit: Option<String>,
    pub request_id: String,
    pub timings_ms: Timings,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    #[serde(default)]
    pub artifacts_truncated: bool,
    pub error: Option<ErrorInfo>,
}

impl JobResult {
    /// A result for a job that never ran its script.
    pub fn error(request_id: &str, error: &Error) -> JobResult {
        JobResult {
            error: Some(error.into()),
            ..JobResult::empty(request_id)
        }
    }

    /// A result with nothing in it yet (status `ERROR` until set).
    pub(crate) fn empty(request_id: &str) -> JobResult {
        JobResult {
            execution_status: ExecutionStatus::Error,
            exit_code: None,
            signal: None,
            output: serde_json::Value::Null,
            output_truncated: false,
            log: String::new(),
            log_truncated: false,
            bucket: None,
            key: None,
            log_key: None,
            commit: None,
            request_id: request_id.to_owned(),
            timings_ms: Timings::default(),
            artifacts: Vec::new(),
            artifacts_truncated: false,
            error: None,
        }
    }

    /// Keep the serialized response under Lambda's limit: the output goes
    /// first (it is complete in S3 or the log), flagged, never cut silently.
    pub fn fit_response_limit(&mut self) {
        let size = serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > RESPONSE_LIMIT_BYTES && !self.output.is_null() {
            self.output = serde_json::Value::Null;
            self.output_truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_displays_as_in_json() {
        use ExecutionStatus::*;
        for status in [Succeeded, Failed, TimedOut, Error] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.to_string());
        }
    }
}
