//! A temp dir and a `pyexec` command per test, with exit-code asserts, and
//! the fixture repository every test clones.

use std::path::Path;
use std::process::Command;

use pyexec_tests::fixture::RepoBuilder;
use pyexec_tests::{TestDir, bin_path};
use serde_json::{Value, json};

/// The token every authenticated server checks.
pub const TOKEN: &str = "ghp_e2eTestTokenValue0123456789abcdef";
/// What the runtime sends with a token to a host that is not a known forge.
pub const USER: &str = "git";

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Assert the exit code and the execution status, and return the result.
    pub fn expect(&self, code: i32, status: &str) -> Value {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let v = self.json();
        assert_eq!(v["execution_status"], status, "{v:#}");
        v
    }
}

/// `pyexec --json <args>` in `dir`, with `env` added to a clean environment.
pub fn pyexec(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    pyexec_text(dir, &[&["--json"][..], args].concat(), env)
}

/// `pyexec <args>`, for its text output: otherwise as [`pyexec`].
pub fn pyexec_text(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(bin_path("pyexec"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        // Tests talk to 127.0.0.1 only: never to the EC2 metadata service.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .envs(env.iter().copied())
        .output()
        .expect("run pyexec");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Shas of the fixture repository's interesting commits.
pub struct Fixture {
    pub main: String,
    pub feature: String,
    pub tagged: String,
}

/// The repository `ops.git` under `root`: `main` (two commits, the first
/// tagged `v1`) and a `feature` branch, with the scripts the tests run.
pub fn ops_repo(root: &Path) -> Fixture {
    let mut repo = RepoBuilder::new(root, "ops");
    repo.file(
        "jobs/hello.py",
        "import sys\nprint('hello from', sys.argv[1:])\nprint('to stderr', file=sys.stderr)\n",
    );
    repo.file("version.py", "print('v1')\n");
    let tagged = repo.commit("first");
    repo.tag("v1");
    repo.file("version.py", "print('v2')\n");
    repo.file(
        "jobs/exit3.py",
        "import sys\nprint('failing')\nsys.exit(3)\n",
    );
    repo.file("jobs/output.py", "import json, os\nopen(os.environ['PYEXEC_OUTPUT'], 'w').write(json.dumps({'deleted': 3}))\nprint('not the output')\n");
    repo.file("jobs/json_stdout.py", "print('{\"a\": [1, 2]}')\n");
    repo.file("jobs/sleep.py", "import time, sys\nprint('sleeping', flush=True)\ntime.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 1000)\n");
    repo.file(
        "jobs/env.py",
        "import json, os\nprint(json.dumps(dict(os.environ)))\n",
    );
    repo.file("jobs/big.py", "import sys\nchunk = ('x' * 1023 + '\\n') * 1024\nfor i in range(int(sys.argv[1])):\n    sys.stdout.write(chunk)\nprint('last line')\n");
    let main = repo.commit("second");
    repo.branch("feature");
    repo.file("version.py", "print('feature')\n");
    let feature = repo.commit("feature");
    Fixture {
        main,
        feature,
        tagged,
    }
}

pub fn test_dir(name: &str) -> TestDir {
    TestDir::new(name)
}

/// A job that leaves a daemon and a file in /tmp, then tries every way to end
/// the runtime (its parent) that a same-user process has, and reports each
/// errno. `kill(-1)` uses signal 0: the tests run as root, where a filter that
/// failed would otherwise signal the whole machine.
pub const KILL_RUNTIME: &str = r#"import ctypes, errno, fcntl, json, os, platform, resource, signal, subprocess
runtime = os.getppid()
above = int(open(f"/proc/{runtime}/stat").read().rsplit(")", 1)[1].split()[1])
open("/tmp/left-by-killer", "w").write("x")
subprocess.Popen(["python3", "-c", "import time; time.sleep(3600)  # trace-killer"],
                 start_new_session=True)
libc = ctypes.CDLL(None, use_errno=True)
TGKILL = {"x86_64": 234, "aarch64": 131}[platform.machine()]
def tgkill(tgid, tid, sig):
    if libc.syscall(TGKILL, tgid, tid, sig) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def attempt(f):
    try:
        f()
        return "done"
    except OSError as e:
        return errno.errorcode[e.errno]
def read(path):
    with open(path, "rb") as f:
        f.read(1)
tids = [int(t) for t in os.listdir(f"/proc/{runtime}/task")]
r, w = os.pipe()
tried = {
    "kill": attempt(lambda: os.kill(runtime, signal.SIGKILL)),
    "kill_thread": sorted({attempt(lambda t=t: os.kill(t, signal.SIGKILL)) for t in tids}),
    "tgkill": sorted({attempt(lambda t=t: tgkill(runtime, t, signal.SIGKILL)) for t in tids}),
    "killpg": attempt(lambda: os.killpg(os.getpgid(runtime), signal.SIGKILL)),
    "kill_all": attempt(lambda: os.kill(-1, 0)),
    "pidfd": attempt(lambda: signal.pidfd_send_signal(os.open(f"/proc/{runtime}", os.O_RDONLY), signal.SIGKILL)),
    "prlimit": attempt(lambda: resource.prlimit(runtime, resource.RLIMIT_CPU, (0, 0))),
    "setown": attempt(lambda: fcntl.fcntl(r, fcntl.F_SETOWN, runtime)),
    "parent": attempt(lambda: os.kill(above, signal.SIGTERM)),
    "environ": attempt(lambda: read(f"/proc/{runtime}/environ")),
    "mem": attempt(lambda: read(f"/proc/{runtime}/mem")),
}
json.dump(tried, open(os.environ["PYEXEC_OUTPUT"], "w"))
"#;

/// Every signal the job tried to send at the runtime or its parent was
/// refused (the reads of its memory are the caller's to check: root may).
pub fn assert_runtime_untouched(result: &Value) {
    let refused = json!({
        "kill": "EPERM", "kill_thread": ["EPERM"], "tgkill": ["EPERM"], "killpg": "EPERM",
        "kill_all": "EPERM", "pidfd": "EPERM", "prlimit": "EPERM", "setown": "EPERM",
        "parent": "EPERM",
    });
    for (attempt, want) in refused.as_object().into_iter().flatten() {
        assert_eq!(&result["output"][attempt], want, "{attempt}: {result:#}");
    }
}

/// The function's environment for a runtime that clones from 127.0.0.1
/// over plain HTTP and never asks the EC2 metadata service for credentials.
pub fn function_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("PYEXEC_ALLOW_HTTP", "1"),
        ("PYEXEC_ALLOWED_GIT_HOSTS", "127.0.0.1"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    env.extend_from_slice(extra);
    env
}

/// The result is an error of `kind` whose message mentions `needle`.
pub fn assert_error(v: &Value, kind: &str, needle: &str) {
    assert_eq!(v["error"]["kind"], kind, "{v:#}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in: {v:#}");
}

/// The end of a peer's log for a failure message, cut on a character boundary.
pub fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(6000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// An SDK configuration for moto at `endpoint`: its "testing" account, one
/// attempt per call (moto never throttles; a failure should show at once).
pub async fn moto_sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await
}
