//! AWS's Lambda Runtime Interface Emulator for the bench: like
//! `pyexec_tests::rie::Rie` (a private mount namespace with its own tmpfs
//! /tmp, as in Lambda), but the runtime is any command, started through
//! `bench __launch` so its pid and exec time are known, and the function's
//! stdout can go to /dev/null.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pyexec_tests::procfs_util::is_alive;
use pyexec_tests::rie::emulator_command;
use pyexec_tests::{kill_pid, wait_for_port};

use crate::proxy::NextProxy;

pub struct RieOpts<'a> {
    /// The runtime command (program and arguments).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: &'a Path,
    /// Where the RIE's and the function's stdout/stderr go (`None`: /dev/null).
    pub log: Option<PathBuf>,
    /// Relay the Runtime API through a [`NextProxy`] to time the cold start.
    pub proxy: bool,
}

pub struct BenchRie {
    child: Child,
    port: u16,
    launch_log: PathBuf,
    proxy: Option<NextProxy>,
    agent: ureq::Agent,
}

impl BenchRie {
    pub fn start(bench_exe: &Path, work: &Path, opts: RieOpts) -> BenchRie {
        let (mut cmd, port, api_port) = emulator_command("2g");
        let launch_log = work.join(format!("launch-{port}.log"));
        let _ = std::fs::remove_file(&launch_log);
        let proxy = opts
            .proxy
            .then(|| NextProxy::start(SocketAddr::from(([127, 0, 0, 1], api_port))));
        cmd.arg(bench_exe)
            .arg("__launch")
            .args(&opts.argv)
            .current_dir(opts.cwd)
            .env_clear()
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_FUNCTION_TIMEOUT", "600")
            .env("BENCH_LAUNCH_LOG", &launch_log)
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(p) = &proxy {
            cmd.env("BENCH_PROXY_API", p.addr());
        }
        match &opts.log {
            Some(path) => {
                let f = std::fs::File::create(path).expect("creating the RIE log");
                cmd.stdout(f.try_clone().unwrap()).stderr(f);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let mut child = cmd.spawn().expect("starting the RIE");
        wait_for_port(
            "aws-lambda-rie",
            &mut child,
            port,
            Duration::from_secs(10),
            String::new,
        );
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(900))
            .build();
        BenchRie {
            child,
            port,
            launch_log,
            proxy,
            agent,
        }
    }

    /// Invokes the function; panics unless the RIE answers 200.
    pub fn invoke(&self, payload: &serde_json::Value) -> serde_json::Value {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/function/invocations",
            self.port
        );
        let body = serde_json::to_vec(payload).unwrap();
        let resp = match self.agent.post(&url).send_bytes(&body) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "the RIE answered {code}: {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("invoking the RIE: {e}"),
        };
        let mut out = Vec::new();
        resp.into_reader().read_to_end(&mut out).unwrap();
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "the function's reply is not JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// (pid, exec time in CLOCK_MONOTONIC ns) of the runtime, once started.
    pub fn launched(&self) -> Option<(u32, u64)> {
        let text = std::fs::read_to_string(&self.launch_log).ok()?;
        let line = text.lines().last()?;
        let (pid, ns) = line.split_once(' ')?;
        Some((pid.parse().ok()?, ns.parse().ok()?))
    }

    /// Exec to first `/next`, when started with the proxy.
    pub fn cold_start(&self) -> Option<Duration> {
        let (_, exec_ns) = self.launched()?;
        let next = self.proxy.as_ref()?.first_next_ns();
        (next > exec_ns).then(|| Duration::from_nanos(next - exec_ns))
    }

    /// Peak RSS (VmHWM) of the runtime process, in KiB.
    pub fn runtime_hwm_kib(&self) -> Option<u64> {
        let (pid, _) = self.launched()?;
        pyexec_tests::procfs_util::vm_hwm_kib(pid)
    }
}

impl Drop for BenchRie {
    fn drop(&mut self) {
        let killed = pyexec_tests::procfs_util::kill_descendants(self.child.id());
        kill_pid(self.child.id());
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while killed.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(&self.launch_log);
    }
}
