//! Run the script: its own process group, an allow-listed environment, output
//! captured as it arrives, SIGTERM then SIGKILL at the time limit.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::capture::{Capture, Stream};
use crate::cleanup::{kill_job_processes, signal_group};
use crate::confine::Confinement;
use crate::error::Error;

pub struct ScriptCommand<'a> {
    pub python: &'a std::ffi::OsStr,
    pub script: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    /// Installed in the child before exec; see [`crate::confine`].
    pub confinement: Confinement,
}

#[derive(Debug, Default)]
pub struct ScriptExit {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
}

/// What ends a script early.
pub struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub grace: Duration,
    pub cancel: &'a CancellationToken,
}

enum Phase {
    Running,
    Terminating,
    Killed,
}

pub async fn run_script(
    cmd: ScriptCommand<'_>,
    limits: Limits<'_>,
    capture: &mut Capture,
) -> Result<ScriptExit, Error> {
    let mut command = Command::new(cmd.python);
    command
        .arg(cmd.script)
        .args(cmd.args)
        .current_dir(cmd.cwd)
        .env_clear()
        .envs(cmd.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let confinement = cmd.confinement;
    // SAFETY: `apply` only makes async-signal-safe calls, without allocating.
    unsafe { command.pre_exec(move || confinement.apply()) };
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        python: cmd.python.to_string_lossy().into_owned(),
        source,
    })?;
    let pgid = child.id();
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both pipes were requested");
    };
    // Bigger pipes: a script that prints a lot fills 64 KiB pipes in
    // microseconds and then waits for the runtime at every chunk.
    grow_pipe(&stdout);
    grow_pipe(&stderr);

    let mut exit = ScriptExit::default();
    let (mut out_open, mut err_open) = (true, true);
    let mut status = None;
    let mut phase = Phase::Running;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let timer = tokio::time::sleep_until(limits.deadline.unwrap_or(far));
    tokio::pin!(timer);
    let mut obuf = vec![0u8; READ_BUF];
    let mut ebuf = vec![0u8; READ_BUF];

    while out_open || err_open || status.is_none() {
        tokio::select! {
            r = stdout.read(&mut obuf), if out_open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => capture.push(Stream::Stdout, &obuf[..n]).await,
            },
            r = stderr.read(&mut ebuf), if err_open => match r {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => capture.push(Stream::Stderr, &ebuf[..n]).await,
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s.map_err(|source| Error::Spawn { python: cmd.python.to_string_lossy().into_owned(), source })?);
                // The script is done: whatever it left running goes now, which
                // also closes the pipes those processes held open.
                kill_job_processes(pgid);
            },
            () = &mut timer, if status.is_none() && !matches!(phase, Phase::Killed) => {
                match phase {
                    Phase::Running => {
                        if limits.cancel.is_cancelled() { exit.cancelled = true } else { exit.timed_out = true }
                        let why = if exit.cancelled { "cancelled" } else { "time limit reached" };
                        capture.note(&format!("{why}: SIGTERM to the script's process group, SIGKILL in {} ms", limits.grace.as_millis())).await;
                        signal_group(pgid, Signal::SIGTERM);
                        phase = Phase::Terminating;
                        timer.as_mut().reset(Instant::now() + limits.grace);
                    }
                    Phase::Terminating | Phase::Killed => {
                        signal_group(pgid, Signal::SIGKILL);
                        phase = Phase::Killed;
                    }
                }
            },
            () = limits.cancel.cancelled(), if matches!(phase, Phase::Running) && status.is_none() => {
                timer.as_mut().reset(Instant::now());
            },
        }
    }
    let status = status.unwrap_or_default();
    exit.exit_code = status.code();
    exit.signal = status.signal();
    Ok(exit)
}

/// Bytes asked of a pipe per read (small enough that the buffer and the
/// capture's copy of it stay in cache), and the pipe size asked of the kernel
/// (Linux allows 1 MiB without privileges, `/proc/sys/fs/pipe-max-size`).
const READ_BUF: usize = 128 * 1024;
const PIPE_SIZE: i32 = 1 << 20;

fn grow_pipe(pipe: &impl std::os::fd::AsFd) {
    // Best effort: the default size still works, only slower.
    let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
}
