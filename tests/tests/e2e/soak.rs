//! Soak: many mixed jobs (pass, fail, timeout, hostile) through one warm
//! `bootstrap` under RIE; the runtime's RSS, open files, threads and /tmp stay
//! flat. The test command runs a short soak; `PYEXEC_SOAK_JOBS=1000
//! cargo test -p pyexec-tests --test e2e soak -- --nocapture` runs the full one.

use pyexec_tests::fixture::RepoBuilder;
use pyexec_tests::procfs_util::{proc_children_of, tcp_remote_ports, vm_rss_kib};
use serde_json::json;

use crate::lambda::Stack;
use crate::util::*;

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    rss_kib: u64,
    /// What each open descriptor points to, but the Runtime API connections.
    fds: Vec<String>,
    /// Connections to the Runtime API: the runtime client's pool, which
    /// holds one or two depending on how requests overlapped.
    api_connections: usize,
    threads: u64,
    tmp_entries: usize,
}

fn sample(pid: u32, api_port: u16) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let ports = tcp_remote_ports();
    let (api, mut fds): (Vec<String>, Vec<String>) = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .partition(|t| {
            t.strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']')?.parse().ok())
                .and_then(|inode| ports.get(&inode))
                == Some(&api_port)
        });
    fds.sort();
    Sample {
        rss_kib: vm_rss_kib(pid).unwrap(),
        fds,
        api_connections: api.len(),
        threads,
        // The runtime's own /tmp: its private mount, seen through /proc.
        tmp_entries: std::fs::read_dir(format!("/proc/{pid}/root/tmp"))
            .unwrap()
            .count(),
    }
}

#[test]
fn warm_runtime_stays_flat() {
    let jobs: usize = std::env::var("PYEXEC_SOAK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let s = Stack::start("soak", 60, &[("PYEXEC_KILL_GRACE_MS", "200")], |root| {
        let mut repo = RepoBuilder::new(root, "soak");
        repo.file("daemon.py", "import os, subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\nopen('/tmp/left-%d' % os.getpid(), 'w').write('x' * 100000)\nprint('left things behind')\n");
        repo.commit("soak");
    });
    let soak = |script: &str, extra: serde_json::Value| {
        let mut j =
            json!({"repository": {"url": s.git.url("soak"), "token": TOKEN}, "script": script});
        if let (Some(j), Some(e)) = (j.as_object_mut(), extra.as_object()) {
            j.extend(e.clone());
        }
        j
    };
    let mix = [
        (s.job("/jobs/hello.py"), "SUCCEEDED"),
        (s.job("/jobs/exit3.py"), "FAILED"),
        (soak("daemon.py", json!({})), "SUCCEEDED"),
        (
            {
                let mut j = s.job("/jobs/sleep.py");
                j["timeout_seconds"] = json!(1);
                j
            },
            "TIMED_OUT",
        ),
        (
            json!({"repository": {"url": s.git.url("ops")}, "script": 1}),
            "ERROR",
        ),
    ];
    let api_port = s.rie.api_port();
    let mut at_10 = None;
    let mut last = None;
    for i in 1..=jobs {
        let (payload, status) = &mix[i % mix.len()];
        s.expect(payload, status);
        let pid = s.rie.runtime_pid().expect("runtime alive");
        assert_eq!(
            proc_children_of(pid),
            Vec::<u32>::new(),
            "job {i}: processes left"
        );
        let now = sample(pid, api_port);
        assert_eq!(now.tmp_entries, 0, "job {i}: /tmp not clean");
        if i == 10 {
            at_10 = Some(now.clone());
        }
        last = Some(now);
    }
    let (first, last) = (at_10.unwrap(), last.unwrap());
    eprintln!("soak of {jobs} jobs: job 10 {first:?}, job {jobs} {last:?}");
    assert_eq!(
        first.fds.len(),
        last.fds.len(),
        "open files: {first:?} {last:?}"
    );
    assert!(
        (1..=2).contains(&last.api_connections),
        "Runtime API connections: {last:?}"
    );
    assert_eq!(first.threads, last.threads, "threads");
    assert!(
        last.rss_kib <= first.rss_kib + 4096,
        "RSS grew from {} to {} KiB",
        first.rss_kib,
        last.rss_kib
    );
}
