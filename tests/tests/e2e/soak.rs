//! Soak: many mixed jobs (pass, fail, timeout, hostile) through one warm
//! `bootstrap` under RIE; the runtime's RSS, open files, threads and /tmp stay
//! flat. The test command runs a short soak; `PYEXEC_SOAK_JOBS=1000
//! cargo test -p pyexec-tests --test e2e soak -- --nocapture` runs the full one.

use pyexec_tests::fixture::RepoBuilder;
use pyexec_tests::procfs_util::{proc_children_of, vm_rss_kib};
use serde_json::json;

use crate::lambda::Stack;
use crate::util::*;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    threads: u64,
    tmp_entries: usize,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    Sample {
        rss_kib: vm_rss_kib(pid).unwrap(),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
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
        let now = sample(pid);
        assert_eq!(now.tmp_entries, 0, "job {i}: /tmp not clean");
        if i == 10 {
            at_10 = Some(now);
        }
        last = Some(now);
    }
    let (first, last) = (at_10.unwrap(), last.unwrap());
    eprintln!("soak of {jobs} jobs: job 10 {first:?}, job {jobs} {last:?}");
    assert_eq!(first.fds, last.fds, "open files");
    assert_eq!(first.threads, last.threads, "threads");
    assert!(
        last.rss_kib <= first.rss_kib + 4096,
        "RSS grew from {} to {} KiB",
        first.rss_kib,
        last.rss_kib
    );
}
