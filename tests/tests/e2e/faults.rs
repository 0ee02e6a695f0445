//! Faults, with nothing lost: a fault-injecting TCP proxy on 127.0.0.1 in
//! front of the real git server and of moto's S3. Each fault gives a result
//! with the right status and a clear error, the log reaches the reply or the
//! function's log, and the runtime serves the next invocation.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use pyexec_tests::fixture::RepoBuilder;
use serde_json::{Value, json};

use crate::lambda::{BUCKET, Stack};
use crate::util::*;

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Once the client has sent `trigger`, forward this many response bytes, then stop sending (keep the socket open).
    StallAfter(usize),
    /// Same, then close the connection.
    DropAfter(usize),
    /// Answer `trigger` requests with a 500.
    Status500,
    /// Hold `trigger` requests this long before forwarding them.
    Delay(Duration),
}

/// Forwards 127.0.0.1:<port> to `upstream`, applying `fault` to connections
/// on which the client sent `trigger` (e.g. "POST /ops.git/git-upload-pack").
struct FaultProxy {
    port: u16,
}

impl FaultProxy {
    fn start(upstream: String, trigger: &'static str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = upstream.clone();
                std::thread::spawn(move || proxy(client, &upstream, trigger, fault));
            }
        });
        FaultProxy { port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn proxy(mut client: TcpStream, upstream: &str, trigger: &'static str, fault: Fault) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let triggered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = triggered.clone();
    // Client → server, watching for the trigger.
    let up = std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match c2.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if String::from_utf8_lossy(&buf[..n]).contains(trigger) {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                match fault {
                    Fault::Status500 => {
                        let _ = c2.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 5\r\nconnection: close\r\n\r\nfault");
                        let _ = c2.shutdown(Shutdown::Both);
                        let _ = s2.shutdown(Shutdown::Both);
                        return;
                    }
                    Fault::Delay(d) => std::thread::sleep(d),
                    _ => {}
                }
            }
            if s2.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s2.shutdown(Shutdown::Write);
    });
    // Server → client, cut short once triggered.
    let mut buf = [0u8; 16384];
    let mut sent_after = 0usize;
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut n = n;
        if triggered.load(std::sync::atomic::Ordering::SeqCst)
            && let Fault::StallAfter(limit) | Fault::DropAfter(limit) = fault
        {
            n = n.min(limit.saturating_sub(sent_after));
            sent_after += n;
            if client.write_all(&buf[..n]).is_err() {
                break;
            }
            if sent_after >= limit {
                if let Fault::StallAfter(_) = fault {
                    // Hold the connection open, silent, until the client gives up.
                    let mut sink = [0u8; 1024];
                    while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
                }
                break;
            }
            continue;
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}

fn big_repo(root: &std::path::Path) {
    let mut repo = RepoBuilder::new(root, "big");
    // Incompressible, so the pack really is large.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..2_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    repo.file("noise.bin", noise);
    repo.file("ok.py", "print('ok')\n");
    repo.commit("big");
}

/// A job that clones `ops` through the proxy in front of the git server.
fn through(s: &Stack, proxy: &FaultProxy, script: &str) -> Value {
    let url = s.git.url("ops").replacen(
        &format!("http://{}", s.git.host_port()),
        &proxy.endpoint(),
        1,
    );
    json!({"repository": {"url": url, "token": TOKEN}, "script": script})
}

#[test]
fn git_server_faults_give_clear_errors() {
    let s = Stack::start(
        "faults-git",
        60,
        &[
            ("PYEXEC_CLONE_TIMEOUT_SECONDS", "4"),
            ("PYEXEC_CLONE_MAX_BYTES", "500000"),
        ],
        big_repo,
    );
    let upstream = s.git.host_port();
    let cases = [
        (Fault::StallAfter(300), "clone_timeout", "took longer than"),
        (Fault::DropAfter(300), "clone_failed", "cloning"),
        (Fault::Status500, "clone_failed", "500"),
    ];
    for (fault, kind, needle) in cases {
        let proxy = FaultProxy::start(upstream.clone(), "POST /", fault);
        let started = std::time::Instant::now();
        let v = s.expect(&through(&s, &proxy, "/jobs/hello.py"), "ERROR");
        assert_eq!(v["error"]["kind"], kind, "{fault:?}: {v:#}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{fault:?}: {v:#}"
        );
        assert!(!v.to_string().contains(TOKEN));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{fault:?} took {:?}",
            started.elapsed()
        );
        s.expect(&s.job("/jobs/hello.py"), "SUCCEEDED");
    }
    // A pack larger than the cap (500 kB here) is stopped, and says so.
    let v = s.expect(
        &json!({"repository": {"url": s.git.url("big"), "token": TOKEN}, "script": "ok.py"}),
        "ERROR",
    );
    assert_error(&v, "clone_too_large", "PYEXEC_CLONE_MAX_BYTES");
    s.expect(&s.job("/jobs/hello.py"), "SUCCEEDED");
}

#[test]
fn the_deadline_during_a_stalled_clone_still_answers() {
    // Lambda's timeout is 6 s with 2 s kept back: the clone is stopped at
    // about 4 s (libgit2's socket timeout follows the deadline), well before
    // Lambda would kill the runtime.
    let s = Stack::start(
        "faults-clone-deadline",
        6,
        &[("PYEXEC_RESERVE_MS", "2000")],
        |_| {},
    );
    let proxy = FaultProxy::start(s.git.host_port(), "POST /", Fault::StallAfter(300));
    let started = std::time::Instant::now();
    let v = s.expect(&through(&s, &proxy, "/jobs/hello.py"), "ERROR");
    assert_eq!(v["error"]["kind"], "clone_timeout", "{v:#}");
    assert!(started.elapsed() < Duration::from_secs(6));
    s.expect(&s.job("/jobs/hello.py"), "SUCCEEDED");
}

#[test]
fn s3_faults_keep_the_log() {
    // moto behind the proxy: PUTs fail (500), or hang past the deadline.
    let moto = pyexec_tests::moto::Moto::start();
    let upstream = format!("127.0.0.1:{}", moto.port());
    moto.create_bucket(BUCKET);
    for (fault, timeout) in [
        (Fault::Status500, 60),
        (Fault::Delay(Duration::from_secs(30)), 8),
    ] {
        let proxy = FaultProxy::start(upstream.clone(), "PUT /", fault);
        let endpoint = proxy.endpoint();
        let s = Stack::start(
            "faults-s3",
            timeout,
            &[
                ("AWS_ENDPOINT_URL", &endpoint),
                ("PYEXEC_RESERVE_MS", "3000"),
            ],
            |_| {},
        );
        let mut job = s.job("/jobs/hello.py");
        job["s3_bucket"] = json!(BUCKET);
        let started = std::time::Instant::now();
        let v = s.expect(&job, "ERROR");
        assert_eq!(v["error"]["kind"], "upload_failed", "{fault:?}: {v:#}");
        assert_eq!(v["exit_code"], 0, "the script itself ran");
        assert!(
            v["log"].as_str().unwrap().contains("hello from"),
            "the log is in the reply: {v:#}"
        );
        assert!(
            s.rie.logs().contains("hello from"),
            "and in the function's log"
        );
        assert!(
            started.elapsed() < Duration::from_secs(timeout as u64),
            "{fault:?}: answered before Lambda's deadline"
        );
        // Without a bucket the runtime carries on.
        s.expect(&s.job("/jobs/hello.py"), "SUCCEEDED");
    }
}
