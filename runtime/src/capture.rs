//! The script's output: stdout and stderr merged line by line in arrival
//! order, redacted, streamed live (CloudWatch or a terminal) and to the S3 log,
//! with only a bounded tail and a bounded copy of stdout kept in memory.

use std::collections::VecDeque;
use std::io::Write;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::redact::Redactor;

/// A line longer than this is cut (after redaction) so memory stays bounded.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Where log lines go as they arrive. `data` always holds whole lines
/// (or a cut piece of an over-long line), already redacted.
pub trait LiveLog: Send {
    fn write(&mut self, stream: Stream, data: &[u8]);
}

/// Raw lines to a writer: the terminal of `pyexec run`, or the function's
/// stdout in Lambda's text log format.
pub struct RawLog<W: Write + Send>(pub W);

impl<W: Write + Send> LiveLog for RawLog<W> {
    fn write(&mut self, _stream: Stream, data: &[u8]) {
        // A closed stdout must not stop the job; the log still reaches the result and S3.
        let _ = self.0.write_all(data).and_then(|_| self.0.flush());
    }
}

/// One JSON object per line, for `AWS_LAMBDA_LOG_FORMAT=JSON`.
pub struct JsonLog<W: Write + Send> {
    pub out: W,
    pub request_id: String,
}

/// One line of the function's log in JSON, borrowing what it shows. Fields in
/// the order they have always been written (alphabetical).
#[derive(serde::Serialize)]
struct Record<'a> {
    level: &'static str,
    message: &'a str,
    #[serde(rename = "requestId")]
    request_id: &'a str,
    stream: &'static str,
    timestamp: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<W: Write + Send> LiveLog for JsonLog<W> {
    fn write(&mut self, stream: Stream, data: &[u8]) {
        let timestamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut buf = Vec::with_capacity(data.len() + 128);
        for line in data.split_inclusive(|&b| b == b'\n') {
            let message = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line));
            let record = Record {
                level: "INFO",
                message: &message,
                request_id: &self.request_id,
                stream: stream.name(),
                timestamp: &timestamp,
                kind: "script",
            };
            if serde_json::to_writer(&mut buf, &record).is_ok() {
                buf.push(b'\n');
            }
        }
        let _ = self.out.write_all(&buf).and_then(|_| self.out.flush());
    }
}

/// Splits one stream into lines, redacting each before it leaves.
struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    fn new() -> Self {
        LineSplitter { buf: Vec::new() }
    }

    /// Append `data` and move every complete line (redacted) to `out`,
    /// which holds nothing else yet. Each byte is copied once on its way
    /// (a partial line twice); a chunk is scanned once for its last newline.
    fn push(&mut self, data: &[u8], redactor: &Redactor, out: &mut Vec<u8>) {
        debug_assert!(out.is_empty());
        match memchr::memrchr(b'\n', data) {
            Some(end) => {
                out.extend_from_slice(&self.buf);
                out.extend_from_slice(&data[..=end]);
                self.buf.clear();
                self.buf.extend_from_slice(&data[end + 1..]);
                redactor.redact(out);
            }
            None => self.buf.extend_from_slice(data),
        }
        if self.buf.len() > MAX_LINE {
            // Redact first, then keep back a possible secret prefix at the end.
            redactor.redact(&mut self.buf);
            let keep = redactor.longest().saturating_sub(1).min(self.buf.len());
            let rest = self.buf.split_off(self.buf.len() - keep);
            out.append(&mut self.buf);
            self.buf = rest;
        }
    }

    fn finish(&mut self, redactor: &Redactor, out: &mut Vec<u8>) {
        redactor.redact(&mut self.buf);
        out.append(&mut self.buf);
    }
}

/// What the capture kept once the script is done.
#[derive(Debug)]
pub struct Captured {
    /// The last `log_tail_bytes` of the merged log.
    pub tail: Vec<u8>,
    pub log_truncated: bool,
    /// The whole of stdout, or `None` when it was larger than the cap.
    pub stdout: Option<Vec<u8>>,
}

pub struct Capture {
    redactor: Redactor,
    splitters: [LineSplitter; 2],
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
    stdout: Vec<u8>,
    stdout_cap: usize,
    stdout_overflow: bool,
    live: Box<dyn LiveLog>,
    upload: Option<mpsc::Sender<Bytes>>,
    scratch: Vec<u8>,
}

impl Capture {
    pub fn new(
        redactor: Redactor,
        tail_cap: usize,
        stdout_cap: usize,
        live: Box<dyn LiveLog>,
        upload: Option<mpsc::Sender<Bytes>>,
    ) -> Capture {
        Capture {
            redactor,
            splitters: [LineSplitter::new(), LineSplitter::new()],
            tail: VecDeque::new(),
            tail_cap,
            total: 0,
            stdout: Vec::new(),
            stdout_cap,
            stdout_overflow: false,
            live,
            upload,
            scratch: Vec::new(),
        }
    }

    /// Take a chunk read from `stream`.
    pub async fn push(&mut self, stream: Stream, data: &[u8]) {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.splitters[stream as usize].push(data, &self.redactor, &mut out);
        self.emit(stream, out).await;
    }

    /// Add a line of the runtime's own (a timeout notice, say) to the log.
    pub async fn note(&mut self, line: &str) {
        let mut out = format!("[pyexec] {line}\n").into_bytes();
        self.redactor.redact(&mut out);
        self.emit(Stream::Stderr, out).await;
    }

    async fn emit(&mut self, stream: Stream, out: Vec<u8>) {
        if out.is_empty() {
            self.scratch = out;
            return;
        }
        self.total += out.len() as u64;
        // Only the part of a chunk that can stay in the tail is copied there.
        let keep = &out[out.len().saturating_sub(self.tail_cap)..];
        let excess = (self.tail.len() + keep.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
        self.tail.extend(keep);
        if stream == Stream::Stdout && !self.stdout_overflow {
            if self.stdout.len() + out.len() > self.stdout_cap {
                self.stdout_overflow = true;
                self.stdout = Vec::new();
            } else {
                self.stdout.extend_from_slice(&out);
            }
        }
        self.live.write(stream, &out);
        if let Some(tx) = &self.upload {
            // A failed upload task has dropped its receiver; the error is
            // reported when it is joined, and the live log still has it all.
            if tx.send(Bytes::copy_from_slice(&out)).await.is_err() {
                self.upload = None;
            }
        }
        self.scratch = out;
    }

    /// Flush partial lines and hand back what was kept.
    pub async fn finish(mut self) -> Captured {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut out = Vec::new();
            self.splitters[stream as usize].finish(&self.redactor, &mut out);
            self.emit(stream, out).await;
        }
        let mut tail: Vec<u8> = self.tail.into();
        let log_truncated = self.total > tail.len() as u64;
        if log_truncated {
            // Start the tail at a line boundary when one is near.
            if let Some(nl) = memchr::memchr(b'\n', &tail[..tail.len().min(4096)]) {
                tail.drain(..=nl);
            }
        }
        Captured {
            tail,
            log_truncated,
            stdout: (!self.stdout_overflow).then_some(self.stdout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl LiveLog for Shared {
        fn write(&mut self, _: Stream, data: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(data);
        }
    }

    #[tokio::test]
    async fn merges_lines_in_arrival_order_and_redacts() {
        let live = Shared::default();
        let mut c = Capture::new(
            Redactor::new(&["s3cr3t".into()]),
            1024,
            1024,
            Box::new(live.clone()),
            None,
        );
        c.push(Stream::Stdout, b"one s3").await;
        c.push(Stream::Stderr, b"err\n").await;
        c.push(Stream::Stdout, b"cr3t\ntwo").await;
        let got = c.finish().await;
        assert_eq!(got.tail, b"err\none ***\ntwo");
        assert_eq!(got.stdout.unwrap(), b"one ***\ntwo");
        assert_eq!(&*live.0.lock().unwrap(), b"err\none ***\ntwo");
    }

    #[tokio::test]
    async fn long_lines_are_cut_without_leaking_a_split_secret() {
        let secret = "TOPSECRETVALUE";
        let mut c = Capture::new(
            Redactor::new(&[secret.into()]),
            1 << 20,
            1 << 20,
            Box::new(Shared::default()),
            None,
        );
        let mut line = vec![b'x'; MAX_LINE - 5];
        line.extend_from_slice(secret.as_bytes());
        line.extend_from_slice(&vec![b'y'; MAX_LINE]);
        for piece in line.chunks(4000) {
            c.push(Stream::Stdout, piece).await;
        }
        let got = c.finish().await;
        assert!(memchr::memmem::find(&got.tail, secret.as_bytes()).is_none());
        assert!(memchr::memmem::find(&got.tail, b"x***y").is_some());
    }

    #[tokio::test]
    async fn tail_and_stdout_are_bounded() {
        let mut c = Capture::new(
            Redactor::new(&[]),
            100,
            50,
            Box::new(Shared::default()),
            None,
        );
        for i in 0..100 {
            c.push(Stream::Stdout, format!("line {i}\n").as_bytes())
                .await;
        }
        let got = c.finish().await;
        assert!(got.log_truncated);
        assert!(got.tail.len() <= 100);
        assert!(got.tail.ends_with(b"line 99\n"));
        assert!(got.tail.starts_with(b"line "));
        assert!(got.stdout.is_none());
    }
}
