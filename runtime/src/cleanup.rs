//! Leave nothing behind: every process a job started, its private directory,
//! and whatever it left in a directory this process owns alone (Lambda's /tmp).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// Make orphaned descendants (double-forked daemons) our children, so that
/// [`kill_job_processes`] can find and reap them, and make this process
/// non-dumpable so a script running as the same user cannot read its memory
/// or environment (the token) through /proc.
pub fn harden_supervisor() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
    nix::sys::prctl::set_dumpable(false).map_err(io::Error::from)?;
    Ok(())
}

/// Kill the job's process group, then every child of this process until none
/// is left: with the subreaper flag, every descendant that outlived its
/// parent is re-parented here. The executor runs one job at a time and starts
/// no other processes, so all our children belong to the job.
pub fn kill_job_processes(pgid: Option<u32>) {
    signal_group(pgid, Signal::SIGKILL);
    let me = std::process::id() as i32;
    // Bounded: a fork bomb refills the list, but every round kills what it
    // finds and Lambda caps the processes at 1,024.
    for _ in 0..10_000 {
        let children = children_of(me);
        if children.is_empty() {
            break;
        }
        for pid in children {
            let pid = Pid::from_raw(pid);
            // Stop it forking first, then kill and reap it (zombies too).
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Signal a process group (gone already is fine).
pub(crate) fn signal_group(pgid: Option<u32>, signal: Signal) {
    if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

fn children_of(parent: i32) -> Vec<i32> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.ppid == parent)
        .map(|s| s.pid)
        .collect()
}

/// Remove a tree the script may have made hard to remove (read-only
/// directories). `std::fs::remove_dir_all` gives up on those; no crate fixes
/// permissions on the way, hence this.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    make_writable(path);
    fs::remove_dir_all(path)
}

fn make_writable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}

/// What a directory held when the runtime started; everything added later is
/// removed after each job.
#[derive(Debug)]
pub struct DirSweep {
    dir: PathBuf,
    keep: HashSet<OsString>,
}

impl DirSweep {
    pub fn snapshot(dir: &Path) -> io::Result<DirSweep> {
        let keep = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        Ok(DirSweep {
            dir: dir.to_owned(),
            keep,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Remove what is new; returns how many entries were removed.
    pub fn sweep(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            if self.keep.contains(&entry.file_name()) {
                continue;
            }
            match remove_tree(&entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove what a job left")
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_read_only_trees_and_sweeps_new_entries() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("old"), "x").unwrap();
        let sweep = DirSweep::snapshot(root.path()).unwrap();
        let locked = root.path().join("new/locked");
        fs::create_dir_all(&locked).unwrap();
        fs::write(locked.join("f"), "x").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o500)).unwrap();
        fs::write(root.path().join("new-file"), "x").unwrap();
        assert_eq!(sweep.sweep(), 2);
        assert!(root.path().join("old").exists());
        assert!(!root.path().join("new").exists());
    }
}
