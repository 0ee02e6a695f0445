//! Any payload gives a job or an error, never a panic: parsing, then
//! validation under the Lambda runtime's and the local CLI's policies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyexec_runtime::{Job, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(job) = Job::parse(value) {
        let lambda = Settings::for_lambda(|name| (name == "PYEXEC_ALLOWED_GIT_HOSTS").then(|| "github.com,127.0.0.1".to_owned()));
        let _ = job.validate(&lambda);
        let _ = job.validate(&Settings::local());
    }
});
