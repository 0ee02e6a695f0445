//! Keep the script's hands off the process that supervises it. The script
//! runs as the same user as `bootstrap` (Lambda has no other), so without this
//! it could signal the runtime away: the platform starts a fresh one, outside
//! whose subreaper the job's daemons live on and whose /tmp snapshot takes the
//! job's files for its own. A seccomp filter, installed between fork and exec
//! and inherited by everything the script starts, makes every way to signal
//! the runtime, its threads, its process group and its parent (the Runtime
//! API server) fail with EPERM; ptrace and /proc writes are already closed by
//! the runtime being non-dumpable. The script is also the first choice of the
//! OOM killer, so a memory-hungry job does not take the runtime with it.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use nix::libc;
use nix::unistd::{Pid, getpgid, getpgrp, getppid};
use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

/// Blocking-pool threads of the runtime, all started before any script.
const BLOCKING_THREADS: usize = 4;

// Not in the libc crate for glibc targets: set the owner of a file or socket,
// which then receives SIGIO (or any signal F_SETSIG picks) and SIGURG
// (<asm-generic/fcntl.h>, <asm-generic/sockios.h>).
const F_SETOWN_EX: i32 = 15;
const FIOSETOWN: u64 = 0x8901;
const SIOCSPGRP: u64 = 0x8902;

/// The filter for a script started now by this process.
pub struct Confinement {
    program: BpfProgram,
}

impl Confinement {
    /// Protects the threads this process has now (see [`runtime`]), its
    /// parent's, and both process groups.
    pub fn protecting_this_process() -> Result<Confinement, BackendError> {
        let parent = getppid();
        let mut pids = threads_of("self");
        pids.push(std::process::id() as i32);
        pids.push(parent.as_raw());
        pids.extend(threads_of(&parent.to_string()));
        pids.retain(|&p| p > 0);
        pids.sort_unstable();
        pids.dedup();
        let mut groups = vec![getpgrp().as_raw()];
        groups.extend(getpgid(Some(parent)).ok().map(Pid::as_raw));
        groups.retain(|&g| g > 0);
        Confinement::protecting(&pids, &groups)
    }

    /// `pids`: processes and threads the script must not signal; `groups`:
    /// process groups it must not signal.
    pub fn protecting(pids: &[i32], groups: &[i32]) -> Result<Confinement, BackendError> {
        let eq = |arg: u8, value: i32| {
            // Dword: pids are C ints; compare the low 32 bits only.
            SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(value as u32),
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        };
        let any_of = |arg: u8, values: &[i32]| -> Result<Vec<SeccompRule>, BackendError> {
            values.iter().map(|&v| eq(arg, v)).collect()
        };
        // kill(2) and fcntl(F_SETOWN): a pid, or a group as its negative;
        // kill(-1) signals every process the caller may signal.
        let mut targets: Vec<i32> = pids.to_vec();
        targets.extend(pids.iter().chain(groups).map(|p| -p));
        targets.push(-1);

        let mut setown = Vec::new();
        for &t in &targets {
            setown.push(SeccompRule::new(vec![
                SeccompCondition::new(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    libc::F_SETOWN as u64,
                )?,
                SeccompCondition::new(
                    2,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    u64::from(t as u32),
                )?,
            ])?);
        }
        // F_SETOWN_EX takes a pointer the filter cannot read: refused.
        setown.push(eq(1, F_SETOWN_EX)?);

        let mut tgkill = any_of(0, pids)?;
        tgkill.extend(any_of(1, pids)?);

        let rules: BTreeMap<i64, Vec<SeccompRule>> = [
            (libc::SYS_kill, any_of(0, &targets)?),
            (libc::SYS_tkill, any_of(0, pids)?),
            (libc::SYS_tgkill, tgkill.clone()),
            (libc::SYS_rt_sigqueueinfo, any_of(0, pids)?),
            (libc::SYS_rt_tgsigqueueinfo, tgkill),
            // A pidfd can also come from open("/proc/<pid>"), which the
            // filter cannot see: sending through any pidfd is refused.
            (libc::SYS_pidfd_send_signal, Vec::new()),
            // RLIMIT_CPU or RLIMIT_AS set on the runtime would end it.
            (libc::SYS_prlimit64, any_of(0, pids)?),
            (libc::SYS_fcntl, setown),
            (
                libc::SYS_ioctl,
                [FIOSETOWN, SIOCSPGRP]
                    .into_iter()
                    .map(|cmd| {
                        SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, cmd)
                            .and_then(|c| SeccompRule::new(vec![c]))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        ]
        .into_iter()
        .collect();
        let arch = std::env::consts::ARCH
            .try_into()
            .map_err(|_| BackendError::InvalidTargetArch(std::env::consts::ARCH.to_owned()))?;
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch,
        )?;
        Ok(Confinement {
            program: filter.try_into()?,
        })
    }

    /// In the child, between fork and exec: only async-signal-safe calls, no
    /// allocation. Sets no_new_privs (required for an unprivileged filter).
    pub fn apply(&self) -> io::Result<()> {
        raise_oom_score();
        seccompiler::apply_filter(&self.program).map_err(|e| match e {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
            _ => io::Error::from_raw_os_error(libc::EINVAL),
        })
    }
}

/// Best effort: an unprivileged process may always raise its own score.
fn raise_oom_score() {
    let path = c"/proc/self/oom_score_adj";
    let value = b"1000";
    // SAFETY: plain syscalls on a static path and buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, value.as_ptr().cast(), value.len());
            libc::close(fd);
        }
    }
}

fn threads_of(pid: &str) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The Tokio runtime for a process that runs scripts: every thread it will
/// ever have is started here, so the threads a script's filter protects are
/// all there are (a blocking thread born while the script runs would be
/// unprotected, and signalling any thread ends the whole process).
pub fn runtime() -> io::Result<tokio::runtime::Runtime> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        // Idle blocking threads never exit, so none is ever started again.
        .thread_keep_alive(Duration::MAX)
        .build()?;
    // Each task waits until all of them run at once: one thread each.
    let barrier = Arc::new(std::sync::Barrier::new(BLOCKING_THREADS));
    rt.block_on(async {
        let tasks: Vec<_> = (0..BLOCKING_THREADS)
            .map(|_| {
                let barrier = barrier.clone();
                tokio::task::spawn_blocking(move || {
                    barrier.wait();
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(io::Error::other)?;
        }
        Ok::<_, io::Error>(())
    })?;
    Ok(rt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Runs `python3 -c code` under a filter protecting this test process;
    /// its arguments are the threads the filter knows of (the test harness
    /// starts and ends threads at any time, unlike the runtime).
    fn confined_python(code: &str) -> String {
        let tids = threads_of("self");
        let confinement = Confinement::protecting_this_process().unwrap();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", code]);
        cmd.args(tids.iter().map(i32::to_string));
        // SAFETY: `apply` only makes async-signal-safe calls.
        unsafe { cmd.pre_exec(move || confinement.apply()) };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_script_cannot_signal_its_supervisor() {
        // Signal 0: the permission check without the signal, so a failing
        // filter does not take the test runner down.
        let out = confined_python(
            r#"
import os, signal, sys
me, parent = os.getpid(), os.getppid()
def errno(f):
    try:
        f()
        return "allowed"
    except OSError as e:
        return e.errno
tids = [int(t) for t in sys.argv[1:]]
print(errno(lambda: os.kill(parent, 0)),
      {errno(lambda: os.kill(t, 0)) for t in tids},
      errno(lambda: os.killpg(os.getpgid(parent), 0)),
      errno(lambda: os.kill(-1, 0)),
      errno(lambda: signal.pidfd_send_signal(os.pidfd_open(me), 0)),
      errno(lambda: os.kill(me, 0)),
      errno(lambda: os.killpg(0, 0)),
      open("/proc/self/oom_score_adj").read().strip(),
      open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0])
"#,
        );
        assert_eq!(out.trim(), "1 {1} 1 1 1 allowed allowed 1000 1");
    }

    #[test]
    fn the_script_still_signals_its_own_children() {
        let out = confined_python(
            "import subprocess\np = subprocess.Popen(['sleep', '100'])\np.kill()\nprint(p.wait())",
        );
        assert_eq!(out.trim(), "-9");
    }
}
