//! `bootstrap` under AWS's Runtime Interface Emulator, cloning from a real
//! git server and uploading to moto's S3.

use std::path::Path;

use pyexec_tests::git_http::{GitHttpServer, HttpOpts};
use pyexec_tests::moto::Moto;
use pyexec_tests::procfs_util::vm_hwm_kib;
use pyexec_tests::rie::Rie;
use pyexec_tests::{TestDir, bin_path};
use serde_json::{Value, json};

use crate::util::*;

pub const BUCKET: &str = "pyexec-results";

/// A git server with the fixture repo, moto, and the runtime under RIE.
pub struct Stack {
    pub dir: TestDir,
    pub git: GitHttpServer,
    pub moto: Moto,
    pub rie: Rie,
    pub fixture: Fixture,
}

impl Stack {
    /// `secret` is in no S3 object (there must be some) and not in the
    /// function's log.
    pub fn assert_secret_not_stored(&self, secret: &str) {
        let keys = self.moto.list_keys(BUCKET, "");
        assert!(!keys.is_empty(), "nothing in s3://{BUCKET} to check");
        for key in keys {
            let body = self.moto.get_object(BUCKET, &key).unwrap();
            assert!(
                !body.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret in s3://{BUCKET}/{key}"
            );
        }
        assert!(
            !self.rie.logs().contains(secret),
            "secret in the function's log"
        );
    }

    pub fn start(
        name: &str,
        function_timeout: u32,
        extra_env: &[(&str, &str)],
        build: impl FnOnce(&Path),
    ) -> Stack {
        let dir = test_dir(name);
        let fixture = ops_repo(dir.path());
        build(dir.path());
        let git = GitHttpServer::start(
            dir.path(),
            HttpOpts {
                tls: false,
                auth: Some((USER.to_owned(), TOKEN.to_owned())),
            },
        );
        let moto = Moto::start();
        moto.create_bucket(BUCKET);
        let endpoint = moto.endpoint();
        // S3, SSM and Secrets Manager all in moto.
        let mut env = function_env(&[("AWS_ENDPOINT_URL", endpoint.as_str())]);
        env.extend_from_slice(extra_env);
        let rie = Rie::start(&bin_path("bootstrap"), &env, function_timeout);
        Stack {
            dir,
            git,
            moto,
            rie,
            fixture,
        }
    }

    pub fn job(&self, script: &str) -> Value {
        json!({"repository": {"url": self.git.url("ops"), "token": TOKEN, "ref": "main"}, "script": script})
    }

    pub fn invoke(&self, payload: &Value) -> Value {
        let (status, body) = self.rie.invoke(payload.to_string().as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
    }

    /// Invoke and check the status.
    pub fn expect(&self, payload: &Value, status: &str) -> Value {
        let v = self.invoke(payload);
        assert_eq!(
            v["execution_status"],
            status,
            "{v:#}\nruntime log:\n{}",
            tail(&self.rie.logs())
        );
        v
    }
}

#[test]
fn jobs_run_and_upload_to_s3() {
    let s = Stack::start("lambda-basic", 60, &[], |_| {});
    let v = s.expect(&json!({"repository": {"url": s.git.url("ops"), "token": TOKEN}, "script": "/jobs/hello.py", "args": "--x 'a b'"}), "SUCCEEDED");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["commit"], s.fixture.main.as_str());
    assert!(
        v["log"]
            .as_str()
            .unwrap()
            .contains("hello from ['--x', 'a b']"),
        "{v:#}"
    );
    assert!(v["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(
        s.rie.logs().contains("hello from"),
        "the script's log reaches the function's stdout (CloudWatch)"
    );

    let v = s.expect(&s.job("/jobs/exit3.py"), "FAILED");
    assert_eq!(v["exit_code"], 3);
    let v = s.expect(&s.job("/jobs/output.py"), "SUCCEEDED");
    assert_eq!(v["output"], json!({"deleted": 3}));

    let mut job = s.job("/jobs/hello.py");
    job["s3_bucket"] = json!(BUCKET);
    job["s3_prefix"] = json!("runs");
    let v = s.expect(&job, "SUCCEEDED");
    let id = v["request_id"].as_str().unwrap();
    assert_eq!(v["bucket"], BUCKET);
    assert_eq!(v["key"], format!("runs/{id}/result.json"));
    assert_eq!(v["log_key"], format!("runs/{id}/log.txt"));
    let stored: Value = serde_json::from_slice(
        &s.moto
            .get_object(BUCKET, v["key"].as_str().unwrap())
            .expect("result.json in S3"),
    )
    .unwrap();
    assert_eq!(stored["execution_status"], "SUCCEEDED");
    assert_eq!(stored["commit"], v["commit"]);
    let log = String::from_utf8(
        s.moto
            .get_object(BUCKET, v["log_key"].as_str().unwrap())
            .expect("log.txt in S3"),
    )
    .unwrap();
    assert!(
        log.contains("hello from") && log.contains("to stderr"),
        "{log}"
    );
}

#[test]
fn bad_payloads_get_a_result_and_the_runtime_survives() {
    let s = Stack::start("lambda-bad", 60, &[], |_| {});
    let url = s.git.url("ops");
    let cases = [
        (json!({"repository": {"url": url}, "script": 5}), "script"),
        (
            json!({"repository": {"url": url}, "script": "/jobs/hello.py", "args": {"a": 1}}),
            "args",
        ),
        (
            json!({"repository": {"url": url}, "script": "/jobs/hello.py", "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"repository": {"url": url}}),
            "missing field `script`",
        ),
        (
            json!({"repository": {"url": "https://evil.example/x.git"}, "script": "x.py"}),
            "evil.example",
        ),
        (json!("just a string"), "JSON object"),
    ];
    for (payload, needle) in cases {
        let v = s.expect(&payload, "ERROR");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{payload}: {msg}");
        s.expect(&s.job("/jobs/hello.py"), "SUCCEEDED");
    }
    // Not JSON at all: Lambda's function-error reply, then business as usual.
    let (_, body) = s.rie.invoke(b"{not json");
    let err: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&body)));
    assert!(err["errorType"].as_str().is_some(), "{err:#}");
    assert!(err.get("execution_status").is_none());
    s.expect(&s.job("/jobs/hello.py"), "SUCCEEDED");
}

#[test]
fn the_invocation_deadline_stops_the_script() {
    // Lambda's timeout is 6 s; 2 s are kept for upload and reply, so the
    // script is stopped after about 4 s and the result still comes back.
    let s = Stack::start(
        "lambda-deadline",
        6,
        &[("PYEXEC_RESERVE_MS", "2000")],
        |_| {},
    );
    let started = std::time::Instant::now();
    let mut job = s.job("/jobs/sleep.py");
    job["s3_bucket"] = json!(BUCKET);
    let v = s.expect(&job, "TIMED_OUT");
    assert!(
        started.elapsed().as_secs() < 6,
        "answered before Lambda's own deadline"
    );
    assert!(v["log"].as_str().unwrap().contains("sleeping"), "{v:#}");
    assert!(
        s.moto
            .get_object(BUCKET, v["log_key"].as_str().unwrap())
            .is_some()
    );
    // The job's own timeout is honoured too, and the next job runs.
    let mut job = s.job("/jobs/sleep.py");
    job["timeout_seconds"] = json!(1);
    s.expect(&job, "TIMED_OUT");
    s.expect(&s.job("/jobs/hello.py"), "SUCCEEDED");
}

#[test]
fn a_gibibyte_of_output_keeps_memory_bounded() {
    let s = Stack::start("lambda-big", 300, &[], |_| {});
    let mut job = s.job("/jobs/big.py");
    job["args"] = json!(["1024"]);
    let v = s.expect(&job, "SUCCEEDED");
    let log = v["log"].as_str().unwrap();
    assert_eq!(v["log_truncated"], true);
    assert!(log.len() <= 256 * 1024, "{}", log.len());
    assert!(log.ends_with("last line\n"), "{}", &log[log.len() - 100..]);
    assert_eq!(v["output"], Value::Null);
    assert_eq!(v["output_truncated"], true);
    let pid = s.rie.runtime_pid().expect("bootstrap is running");
    let peak_kib = vm_hwm_kib(pid).expect("VmHWM");
    eprintln!("bootstrap peak RSS after 1 GiB of output: {peak_kib} KiB");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}
