//! moto server (AWS API emulator) from the project venv, plus minimal
//! path-style S3 helpers over plain HTTP (moto does not check signatures).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{TestDir, percent_encode, read_lossy, require_peer, stop_group, wait_until};

/// A running `moto_server` on 127.0.0.1.
#[derive(Debug)]
pub struct Moto {
    dir: TestDir,
    port: u16,
    agent: ureq::Agent,
    child: Child,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = require_peer(
            "moto_server",
            &crate::cache_dir().join("venv/bin/moto_server"),
        );
        let dir = TestDir::new("moto");
        let log_path = dir.path().join("moto.log");
        let mut log = File::create(&log_path).unwrap();
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto_server: {e}"));

        // Werkzeug prints " * Running on http://127.0.0.1:PORT" on stderr;
        // a thread copies stderr to the log and reports the port.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if let Some(port) = parse_port(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                stop_group(&mut child, libc::SIGKILL, Duration::ZERO);
                panic!("moto_server printed no port:\n{}", read_lossy(&log_path));
            }
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let moto = Moto {
            dir,
            port,
            agent,
            child,
        };
        let ready_url = format!("{}/moto-api/data.json", moto.endpoint());
        wait_until(
            Duration::from_secs(30),
            || {
                moto.agent
                    .get(&ready_url)
                    .timeout(Duration::from_secs(2))
                    .call()
                    .is_ok_and(|r| r.status() == 200)
            },
            || format!("moto_server not ready:\n{}", read_lossy(&log_path)),
        );
        moto
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// moto's log (for diagnostics).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("moto.log"))
    }

    fn object_url(&self, bucket: &str, key: &str) -> String {
        format!(
            "{}/{}/{}",
            self.endpoint(),
            percent_encode(bucket, false),
            percent_encode(key, true)
        )
    }

    fn expect_ok(&self, what: &str, result: Result<ureq::Response, ureq::Error>) -> ureq::Response {
        match result {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => panic!(
                "moto {what}: HTTP {code}: {}",
                r.into_string().unwrap_or_default()
            ),
            Err(e) => panic!("moto {what}: {e}"),
        }
    }

    /// An S3 request with a syntactically valid SigV4 Authorization header
    /// (moto does not verify it, but denies anonymous reads).
    fn s3(&self, method: &str, url: &str) -> ureq::Request {
        self.agent.request(method, url).set(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0000",
        )
    }

    pub fn create_bucket(&self, name: &str) {
        let url = format!("{}/{}", self.endpoint(), percent_encode(name, false));
        self.expect_ok(
            &format!("create bucket {name}"),
            self.s3("PUT", &url).call(),
        );
    }

    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let url = self.object_url(bucket, key);
        self.expect_ok(
            &format!("put {bucket}/{key}"),
            self.s3("PUT", &url).send_bytes(body),
        );
    }

    /// The object's bytes, or None when it does not exist.
    pub fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let url = self.object_url(bucket, key);
        match self.s3("GET", &url).call() {
            Ok(r) => {
                let mut body = Vec::new();
                r.into_reader()
                    .read_to_end(&mut body)
                    .expect("reading object body");
                Some(body)
            }
            Err(ureq::Error::Status(404, _)) => None,
            other => {
                self.expect_ok(&format!("get {bucket}/{key}"), other);
                unreachable!()
            }
        }
    }

    /// All keys under `prefix`, in S3's (lexicographic) order.
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/{}?list-type=2&prefix={}",
                self.endpoint(),
                percent_encode(bucket, false),
                percent_encode(prefix, false)
            );
            if let Some(t) = &token {
                url.push_str(&format!("&continuation-token={}", percent_encode(t, false)));
            }
            let body = self
                .expect_ok(
                    &format!("list {bucket}/{prefix}"),
                    self.s3("GET", &url).call(),
                )
                .into_string()
                .expect("reading list body");
            keys.extend(xml_values(&body, "Key"));
            let truncated =
                xml_values(&body, "IsTruncated").first().map(String::as_str) == Some("true");
            token = xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next();
            if !truncated || token.is_none() {
                return keys;
            }
        }
    }

    /// Resets all of moto's state (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let url = format!("{}/moto-api/reset", self.endpoint());
        self.expect_ok("reset", self.agent.post(&url).call());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop_group(&mut self.child, libc::SIGTERM, Duration::from_secs(2));
    }
}

fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("Running on http://")? + "Running on http://".len()..];
    let hostport = rest.split(|c: char| c == '/' || c.is_whitespace()).next()?;
    hostport.rsplit(':').next()?.parse().ok()
}

/// The text of every `<tag>…</tag>` element, XML-unescaped.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(xml_unescape(&rest[..end]));
        rest = &rest[end + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if entity.starts_with("#x") => u32::from_str_radix(&entity[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_and_xml() {
        assert_eq!(
            parse_port(" * Running on http://127.0.0.1:37353"),
            Some(37353)
        );
        assert_eq!(parse_port("Press CTRL+C"), None);
        let xml = "<a><Key>x&amp;y</Key><Key>a&#x20;b</Key><IsTruncated>false</IsTruncated></a>";
        assert_eq!(xml_values(xml, "Key"), vec!["x&y", "a b"]);
        assert_eq!(xml_values(xml, "IsTruncated"), vec!["false"]);
    }
}
