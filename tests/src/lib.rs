//! Test support for pyexec's end-to-end tests: starts REAL peers on
//! 127.0.0.1 (nginx + `git http-backend`, OpenSSH's sshd, moto server, AWS's
//! Lambda Runtime Interface Emulator) and builds fixture repositories.
//!
//! Peers are installed by `scripts/install-peers`; a missing peer panics with
//! a message naming that script. Tests never skip.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub mod fixture;
pub mod git_http;
pub mod moto;
pub mod procfs_util;
pub mod rie;
pub mod ssh;

/// The workspace root (parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `<root>/.cache`: where `scripts/install-peers` puts downloaded peers.
pub fn cache_dir() -> PathBuf {
    workspace_root().join(".cache")
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative ones are taken
/// from the workspace root), else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// `<target_dir>/debug/<name>`; panics when it has not been built.
pub fn bin_path(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.is_file(),
        "binary {name} not found at {}: build it with cargo build --workspace",
        path.display()
    );
    path
}

/// A fresh directory under `<target_dir>/test-tmp/` (not /tmp: the runtime
/// under test gets a private /tmp and must still see fixtures). Removed on drop.
#[derive(Debug)]
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let base = target_dir().join("test-tmp");
        std::fs::create_dir_all(&base)
            .unwrap_or_else(|e| panic!("creating {}: {e}", base.display()));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("creating a temp dir in {}: {e}", base.display()));
        TestDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

// ---------------------------------------------------------------------------
// Shared helpers for the peer modules.

/// Panics with the standard message when a peer's binary is missing.
pub(crate) fn require_peer(peer: &str, path: &Path) -> PathBuf {
    if !path.exists() {
        panic!(
            "{peer} not found at {}: run scripts/install-peers",
            path.display()
        );
    }
    path.to_path_buf()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// Polls until `cond` holds, or panics after `timeout` with `what()`.
pub fn wait_until(
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{}", what());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Waits until `child` accepts TCP connections on 127.0.0.1:`port`; panics
/// with `log()` when it exits first or never comes up.
pub fn wait_for_port(
    peer: &str,
    child: &mut Child,
    port: u16,
    timeout: Duration,
    log: impl Fn() -> String,
) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut exited = None;
    wait_until(
        timeout,
        || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        },
        || {
            format!(
                "{peer} did not listen on {addr} within {timeout:?}:\n{}",
                log()
            )
        },
    );
    if let Some(status) = exited {
        panic!("{peer} exited early ({status}):\n{}", log());
    }
}

/// Reads a file to a string, lossily; empty when it cannot be read.
pub(crate) fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs a command to completion and returns its stdout; panics with its
/// stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `sig` to the process group led by `child` (peers are spawned with
/// `process_group(0)`), waits up to `grace`, then SIGKILLs the group and
/// reaps the child.
pub(crate) fn stop_group(child: &mut Child, sig: libc::c_int, grace: Duration) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    if matches!(child.try_wait(), Ok(None)) {
        // SAFETY: kill(2) with a negative pid signals the process group.
        unsafe { libc::kill(-pid, sig) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Whatever is left in the group (workers, CGI children) goes too.
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.wait();
}

/// SIGKILL one process (gone already is fine).
pub fn kill_pid(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The name of the user this process runs as.
pub(crate) fn current_user() -> String {
    let out = run_ok(Command::new("id").arg("-un"));
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/`
/// when `keep_slash`).
pub(crate) fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
