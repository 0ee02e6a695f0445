//! What every fuzz input must satisfy, shared by the fuzz targets
//! (`fuzz_targets/`) and their corpus replay under `cargo test`
//! (`runtime/tests/fuzz_corpus.rs`), so the two cannot drift apart.

use std::path::Component;

use pyexec_runtime::job::normalize_script;
use pyexec_runtime::{Args, Job, Settings};

/// Any payload gives a job or an error, never a panic: parsing, then
/// validation under the Lambda runtime's and the local CLI's policies.
pub fn job(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(job) = Job::parse(value) {
        let lambda = Settings::for_lambda(|name| {
            (name == "PYEXEC_ALLOWED_GIT_HOSTS").then(|| "github.com,127.0.0.1".to_owned())
        });
        let _ = job.validate(&lambda);
        let _ = job.validate(&Settings::local());
    }
}

/// The POSIX-shell splitting of a string `args`: a vector or an error.
pub fn args(line: String) {
    if let Ok(args) = Args::Line(line).to_vec() {
        assert!(args.iter().all(|a| !a.contains('\0')));
    }
}

/// The script-path resolver: a path inside the checkout (no `..`, not
/// absolute, not empty) or an error.
pub fn script_path(script: &str) {
    if let Ok(path) = normalize_script(script) {
        assert!(!path.as_os_str().is_empty());
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "{script:?} -> {path:?}"
        );
    }
}
