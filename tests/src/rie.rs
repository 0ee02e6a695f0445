//! AWS's Lambda Runtime Interface Emulator running a runtime `bootstrap`,
//! inside a private mount namespace with its own tmpfs /tmp (like Lambda).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::procfs_util::{is_alive, proc_children_of};
use crate::{TestDir, free_port, read_lossy, require_peer};

const UNSHARE: &str = "/usr/bin/unshare";

/// A running emulator. The runtime starts on the first invoke.
#[derive(Debug)]
pub struct Rie {
    dir: TestDir,
    bootstrap: PathBuf,
    port: u16,
    api_port: u16,
    timeout: Duration,
    agent: ureq::Agent,
    child: Child,
}

/// The emulator, with the ports it serves invocations and the Runtime API
/// on, in a private mount namespace with a tmpfs /tmp of `tmp_size` (like
/// Lambda's); the runtime's command line is the caller's to add.
pub fn emulator_command(tmp_size: &str) -> (Command, u16, u16) {
    let rie = require_peer(
        "aws-lambda-rie",
        &crate::cache_dir().join("bin/aws-lambda-rie"),
    );
    let unshare = require_peer("unshare", Path::new(UNSHARE));
    let port = free_port();
    let api_port = loop {
        let p = free_port();
        if p != port {
            break p;
        }
    };
    let mut cmd = Command::new(unshare);
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            r#"mount -t tmpfs -o size={tmp_size} tmpfs /tmp && exec "$@""#
        ))
        .arg("sh")
        .arg(rie)
        .arg("--runtime-interface-emulator-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{api_port}"));
    (cmd, port, api_port)
}

impl Rie {
    /// Starts the emulator for `bootstrap` with only PATH/HOME/LANG from
    /// this process's environment, plus `env` and
    /// `AWS_LAMBDA_FUNCTION_TIMEOUT=function_timeout_secs`.
    pub fn start(bootstrap: &Path, env: &[(&str, &str)], function_timeout_secs: u32) -> Rie {
        let bootstrap = std::fs::canonicalize(bootstrap)
            .unwrap_or_else(|e| panic!("bootstrap {}: {e}", bootstrap.display()));

        let dir = TestDir::new("rie");
        let log_path = dir.path().join("rie.log");
        let log = File::create(&log_path).unwrap();
        let (mut cmd, port, api_port) = emulator_command("512m");
        cmd.arg(&bootstrap).env_clear();
        for keep in ["PATH", "HOME", "LANG"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.env(
            "AWS_LAMBDA_FUNCTION_TIMEOUT",
            function_timeout_secs.to_string(),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the RIE: {e}"));
        crate::wait_for_port(
            "aws-lambda-rie",
            &mut child,
            port,
            Duration::from_secs(10),
            || read_lossy(&log_path),
        );

        let timeout = Duration::from_secs(u64::from(function_timeout_secs) + 60);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(timeout)
            .build();
        Rie {
            dir,
            bootstrap,
            port,
            api_port,
            timeout,
            agent,
            child,
        }
    }

    /// `http://127.0.0.1:PORT` (usable as `AWS_ENDPOINT_URL_LAMBDA`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` of the Runtime API the bootstrap talks to.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    pub fn runtime_api(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    /// Invokes the function synchronously: (HTTP status, body). Non-2xx
    /// statuses are returned, not panicked.
    pub fn invoke(&self, payload: &[u8]) -> (u16, Vec<u8>) {
        let url = format!(
            "{}/2015-03-31/functions/function/invocations",
            self.endpoint()
        );
        let resp = match self.agent.post(&url).send_bytes(payload) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!(
                "invoking the RIE (timeout {:?}): {e}\n--- RIE log ---\n{}",
                self.timeout,
                self.logs()
            ),
        };
        let status = resp.status();
        let mut body = Vec::new();
        resp.into_reader()
            .read_to_end(&mut body)
            .expect("reading the invoke response");
        (status, body)
    }

    /// Everything the RIE and the function printed so far ("CloudWatch").
    pub fn logs(&self) -> String {
        read_lossy(&self.dir.path().join("rie.log"))
    }

    /// Pid of the running bootstrap, if the runtime has started: the
    /// descendant of the RIE whose executable (or, for a script, whose
    /// argv[0]/argv[1]) is the bootstrap.
    pub fn runtime_pid(&self) -> Option<u32> {
        let descendants = proc_children_of(self.child.id());
        let by_exe = descendants.iter().copied().find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == self.bootstrap)
        });
        by_exe.or_else(|| {
            descendants.iter().copied().find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                    cmdline
                        .split(|&b| b == 0)
                        .take(2)
                        .any(|arg| Path::new(OsStr::from_bytes(arg)) == self.bootstrap)
                })
            })
        })
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        // The runtime and whatever it started may live outside the RIE's
        // process group: kill every descendant, then the group.
        let killed = crate::procfs_util::kill_descendants(self.child.id());
        crate::stop_group(&mut self.child, libc::SIGKILL, Duration::ZERO);
        crate::wait_until(
            Duration::from_secs(5),
            || !killed.iter().any(|&pid| is_alive(pid)),
            || format!("processes {killed:?} of the RIE survived SIGKILL"),
        );
    }
}
