//! A TCP relay between a runtime and the RIE's Runtime API that notes when
//! the runtime first asks for work (`GET /2018-06-01/runtime/invocation/next`):
//! the end of its cold start.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use crate::stats::monotonic_ns;

pub struct NextProxy {
    addr: SocketAddr,
    first_next_ns: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl NextProxy {
    pub fn start(upstream: SocketAddr) -> NextProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let first_next_ns = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (first, stopped) = (first_next_ns.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let first = first.clone();
                thread::spawn(move || relay(client, server, Some(first)));
                thread::spawn(move || relay(s2, c2, None));
            }
        });
        NextProxy {
            addr,
            first_next_ns,
            stop,
        }
    }

    /// `127.0.0.1:PORT`, for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// CLOCK_MONOTONIC ns when the first `/next` arrived (0: not yet).
    pub fn first_next_ns(&self) -> u64 {
        self.first_next_ns.load(Ordering::SeqCst)
    }
}

impl Drop for NextProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn relay(mut from: TcpStream, mut to: TcpStream, watch: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(first) = &watch {
            let now = monotonic_ns();
            if first.load(Ordering::SeqCst) == 0
                && memchr::memmem::find(&buf[..n], b"/runtime/invocation/next").is_some()
            {
                let _ = first.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
