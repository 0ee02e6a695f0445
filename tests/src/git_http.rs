//! Git smart HTTP(S) server: nginx + fcgiwrap + `git http-backend`, with
//! optional Basic auth (nginx `auth_basic`) and TLS from a test CA.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TestDir, free_port, read_lossy, require_peer, run_ok, stop_group, wait_until};

const NGINX: &str = "/usr/sbin/nginx";
const FCGIWRAP: &str = "/usr/sbin/fcgiwrap";
const OPENSSL: &str = "/usr/bin/openssl";

/// Options for [`GitHttpServer::start`].
#[derive(Debug, Clone, Default)]
pub struct HttpOpts {
    /// Serve HTTPS with a server cert for 127.0.0.1/localhost from a test CA.
    pub tls: bool,
    /// Require Basic auth with this user and password.
    pub auth: Option<(String, String)>,
}

/// A running nginx serving every bare repository under a root directory.
#[derive(Debug)]
pub struct GitHttpServer {
    dir: TestDir,
    port: u16,
    tls: bool,
    nginx: Child,
    fcgiwrap: Child,
}

impl GitHttpServer {
    pub fn start(root: &Path, opts: HttpOpts) -> GitHttpServer {
        let nginx = require_peer("nginx", Path::new(NGINX));
        let fcgiwrap_bin = require_peer("fcgiwrap", Path::new(FCGIWRAP));
        let backend = http_backend_path();
        let root = std::fs::canonicalize(root)
            .unwrap_or_else(|e| panic!("git root {}: {e}", root.display()));

        let dir = TestDir::new("git-http");
        let d = dir.path().to_path_buf();
        std::fs::create_dir_all(d.join("tmp")).unwrap();

        // fcgiwrap, restricted to git-http-backend, on a unix socket.
        let sock = d.join("fcgiwrap.sock");
        let fcgi_log = File::create(d.join("fcgiwrap.log")).unwrap();
        let mut fcgiwrap = Command::new(&fcgiwrap_bin)
            .arg("-c")
            .arg("4")
            .arg("-f")
            .arg("-s")
            .arg(format!("unix:{}", sock.display()))
            .arg("-p")
            .arg(&backend)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(fcgi_log.try_clone().unwrap())
            .stderr(fcgi_log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting fcgiwrap: {e}"));
        wait_until(
            Duration::from_secs(10),
            || sock.exists() || matches!(fcgiwrap.try_wait(), Ok(Some(_))),
            || format!("fcgiwrap did not create {}", sock.display()),
        );
        if let Ok(Some(status)) = fcgiwrap.try_wait() {
            panic!(
                "fcgiwrap exited ({status}):\n{}",
                read_lossy(&d.join("fcgiwrap.log"))
            );
        }

        let auth = match &opts.auth {
            Some((user, password)) => {
                let hash = openssl_passwd(password);
                std::fs::write(d.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
                format!(
                    "auth_basic \"git\";\n            auth_basic_user_file {};",
                    d.join("htpasswd").display()
                )
            }
            None => String::new(),
        };
        let tls = if opts.tls {
            make_certs(&d);
            format!(
                "ssl_certificate {};\n        ssl_certificate_key {};\n        ssl_protocols TLSv1.2 TLSv1.3;",
                d.join("server.pem").display(),
                d.join("server.key").display()
            )
        } else {
            String::new()
        };

        let port = free_port();
        let user = if crate::is_root() { "user root;" } else { "" };
        let conf = format!(
            r#"{user}
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    fastcgi_temp_path {d}/tmp/fastcgi;
    proxy_temp_path {d}/tmp/proxy;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port}{ssl};
        server_name localhost;
        {tls}
        location / {{
            {auth}
            fastcgi_pass unix:{sock};
            fastcgi_buffering off;
            fastcgi_read_timeout 300s;
            fastcgi_param SCRIPT_FILENAME {backend};
            fastcgi_param GIT_PROJECT_ROOT {root};
            fastcgi_param GIT_HTTP_EXPORT_ALL 1;
            fastcgi_param PATH_INFO $uri;
            fastcgi_param QUERY_STRING $args;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param HTTP_CONTENT_ENCODING $http_content_encoding;
        }}
    }}
}}
"#,
            d = d.display(),
            ssl = if opts.tls { " ssl" } else { "" },
            sock = sock.display(),
            backend = backend.display(),
            root = root.display(),
        );
        let conf_path = d.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();

        let nginx_out = File::create(d.join("nginx.out")).unwrap();
        let mut nginx = Command::new(&nginx)
            .arg("-p")
            .arg(&d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .stdout(nginx_out.try_clone().unwrap())
            .stderr(nginx_out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting nginx: {e}"));
        let log = || {
            format!(
                "{}{}",
                read_lossy(&d.join("nginx.out")),
                read_lossy(&d.join("error.log"))
            )
        };
        crate::wait_for_port("nginx", &mut nginx, port, Duration::from_secs(10), log);

        GitHttpServer {
            dir,
            port,
            tls: opts.tls,
            nginx,
            fcgiwrap,
        }
    }

    /// `http(s)://127.0.0.1:PORT/<name>.git`
    pub fn url(&self, repo_name: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{repo_name}.git", self.port)
    }

    /// PEM of the test CA when serving TLS.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("ca.pem"))
    }

    /// `127.0.0.1:PORT`
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        stop_group(&mut self.nginx, libc::SIGTERM, Duration::from_secs(5));
        stop_group(&mut self.fcgiwrap, libc::SIGTERM, Duration::from_secs(2));
    }
}

/// `git http-backend` from the git on PATH (its exec path), else Debian's.
fn http_backend_path() -> PathBuf {
    let from_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("git-http-backend"));
    match from_path {
        Some(p) if p.is_file() => p,
        _ => require_peer(
            "git-http-backend",
            Path::new("/usr/lib/git-core/git-http-backend"),
        ),
    }
}

/// An apr1 (htpasswd MD5) hash of `password`.
fn openssl_passwd(password: &str) -> String {
    let openssl = require_peer("openssl", Path::new(OPENSSL));
    let mut child = Command::new(openssl)
        .args(["passwd", "-apr1", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl passwd");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl passwd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Writes `ca.pem`/`ca.key` (a test CA) and `server.pem`/`server.key` (for
/// IP 127.0.0.1 and DNS localhost, signed by the CA) into `d`.
fn make_certs(d: &Path) {
    let openssl = require_peer("openssl", Path::new(OPENSSL));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_ok(
        Command::new(&openssl)
            .current_dir(d)
            .args(["req", "-x509"])
            .args(ec)
            .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"])
            .args(["-subj", "/CN=pyexec test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    run_ok(
        Command::new(&openssl)
            .current_dir(d)
            .arg("req")
            .args(ec)
            .args(["-keyout", "server.key", "-out", "server.csr"])
            .args(["-subj", "/CN=127.0.0.1"]),
    );
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run_ok(
        Command::new(&openssl)
            .current_dir(d)
            .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem"])
            .args(["-CAkey", "ca.key", "-CAcreateserial", "-days", "2"])
            .args(["-extfile", "server.ext", "-out", "server.pem"]),
    );
}
