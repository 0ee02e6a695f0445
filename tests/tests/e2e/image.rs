//! The container images, built offline and run the way Lambda runs them.
//!
//! The base image (`image/Dockerfile`) is built FROM a Debian bookworm root
//! file system made with mmdebstrap and imported into Docker
//! (`image/build-test-base`, what `scripts/test` prepares), with boto3 from
//! wheels downloaded on the host, and `docker build --network none`. The
//! custom image (`image/examples/custom`) is built FROM that. Both are built
//! once per test binary run.
//!
//! Every container runs through `image/run-local` (the documented local test
//! mode): AWS's RIE mounted as the entrypoint with `bootstrap` as its
//! argument, a read-only root, a tmpfs /tmp of 512 MiB, user 993:990, no
//! capabilities, no-new-privileges, and the host's network so that the job
//! reaches the git server and moto on 127.0.0.1.
//!
//! Docker is required: without it these tests fail, they never skip.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use pyexec_tests::fixture::RepoBuilder;
use pyexec_tests::git_http::{GitHttpServer, HttpOpts};
use pyexec_tests::moto::Moto;
use pyexec_tests::{TestDir, free_port, run_ok, target_dir, wait_until, workspace_root};
use serde_json::{Value, json};

use crate::util::{
    KILL_RUNTIME, TOKEN, USER, assert_runtime_untouched, function_env, pyexec, tail,
};

/// Tags of the images these tests build (stable: a second run reuses the
/// cached layers).
const BASE_TAG: &str = "pyexec-e2e:base";
const CUSTOM_TAG: &str = "pyexec-e2e:custom";
/// The imported mmdebstrap root file system (`image/build-test-base`).
const TEST_BASE: &str = "pyexec-test-base:bookworm";
/// Containers started by this process carry this label with our pid, so a
/// later run can remove what a killed run left behind.
const LABEL: &str = "pyexec-e2e-pid";
/// The base image adds at most this much for the runtime.
const BOOTSTRAP_LAYER_BUDGET: u64 = 20_000_000;

// ---------------------------------------------------------------------------
// Images, built once.

struct Images {
    base: String,
    custom: String,
}

fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        require_docker();
        remove_stale_containers();
        let root = workspace_root();
        let started = Instant::now();
        run_ok(&mut Command::new(root.join("image/build-test-base")));
        let bootstrap = image_bootstrap();
        // Rebuilding the base leaves its previous version untagged, still
        // the parent of the previous custom image: removed once both are
        // rebuilt (image/build removes what it can itself).
        let previous_base = image_id(BASE_TAG);
        run_ok(
            Command::new(root.join("image/build"))
                .args(["--base", TEST_BASE, "--tag", BASE_TAG, "--bootstrap"])
                .arg(&bootstrap),
        );
        run_ok(
            Command::new(root.join("image/build"))
                .args(["--custom"])
                .arg(root.join("image/examples/custom"))
                .args(["--base", BASE_TAG, "--tag", CUSTOM_TAG]),
        );
        if let Some(previous) = previous_base
            && image_id(BASE_TAG).as_ref() != Some(&previous)
        {
            let _ = docker(&["image", "rm", &previous]);
        }
        eprintln!("images built in {:?}", started.elapsed());
        Images {
            base: BASE_TAG.to_owned(),
            custom: CUSTOM_TAG.to_owned(),
        }
    })
}

/// The id of the image a tag names, if any.
fn image_id(tag: &str) -> Option<String> {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", tag]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn require_docker() {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the Docker engine is required for the image tests: docker version failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("the Docker engine is required for the image tests: docker: {e}"),
    }
}

/// `<target>/image/bootstrap`, the runtime built for the image by
/// `image/build-bootstrap` (which `scripts/test` runs); refused when older
/// than the runtime's sources (the image would test stale code).
fn image_bootstrap() -> PathBuf {
    let path = target_dir().join("image/bootstrap");
    let rebuild = "build it with image/build-bootstrap (scripts/test does)";
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}: {rebuild}", path.display()));
    let root = workspace_root();
    let mut sources = vec![root.join("Cargo.lock"), root.join("runtime/Cargo.toml")];
    collect_files(&root.join("runtime/src"), &mut sources);
    for src in sources {
        let modified = std::fs::metadata(&src)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        assert!(
            modified <= built,
            "{} is older than {}: {rebuild}",
            path.display(),
            src.display()
        );
    }
    path
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes containers a killed earlier run of these tests left running.
fn remove_stale_containers() {
    let out = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}"),
    ]);
    for line in out.lines() {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}

// ---------------------------------------------------------------------------
// A container under RIE.

/// An image running under RIE with Lambda's restrictions, on the host's
/// network; removed on drop.
struct Container {
    name: String,
    port: u16,
    agent: ureq::Agent,
}

impl Container {
    fn start(image: &str, env: &[(&str, &str)], function_timeout: u32) -> Container {
        Container::start_with(image, env, function_timeout, &[])
    }

    /// With extra `docker run` options.
    fn start_with(
        image: &str,
        env: &[(&str, &str)],
        function_timeout: u32,
        docker_opts: &[&str],
    ) -> Container {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pyexec-e2e-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let port = free_port();
        let mut api_port = free_port();
        while api_port == port {
            api_port = free_port();
        }
        let mut cmd = Command::new(workspace_root().join("image/run-local"));
        cmd.args(["--detach", "--host-network", "--name", &name])
            .args(["--port", &port.to_string()])
            .args(["--api-port", &api_port.to_string()])
            .args(["--timeout", &function_timeout.to_string()]);
        for (k, v) in env {
            cmd.args(["--env", &format!("{k}={v}")]);
        }
        cmd.arg(image)
            .arg("--")
            .args(["--label", &format!("{LABEL}={}", std::process::id())])
            .args(docker_opts);
        run_ok(&mut cmd);
        let container = Container {
            name,
            port,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(u64::from(function_timeout) + 60))
                .build(),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until(
            Duration::from_secs(30),
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            || {
                format!(
                    "the RIE in {} did not listen on {addr}:\n{}",
                    container.name,
                    container.logs()
                )
            },
        );
        container
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (HTTP status, body) of a synchronous invoke.
    fn invoke_raw(&self, payload: &Value) -> (u16, String) {
        let url = format!(
            "{}/2015-03-31/functions/function/invocations",
            self.endpoint()
        );
        let resp = match self.agent.post(&url).send_string(&payload.to_string()) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("invoking {}: {e}\n{}", self.name, self.logs()),
        };
        (
            resp.status(),
            resp.into_string().expect("reading the response"),
        )
    }

    /// Invokes and checks the execution status; returns the result.
    fn expect(&self, payload: &Value, status: &str) -> Value {
        let (code, body) = self.invoke_raw(payload);
        assert_eq!(code, 200, "{body}\n{}", tail(&self.logs()));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {body}\n{}", tail(&self.logs())));
        assert_eq!(
            v["execution_status"],
            status,
            "{v:#}\n--- container log ---\n{}",
            tail(&self.logs())
        );
        v
    }

    /// What the RIE and the runtime printed (the function's CloudWatch log).
    fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The runtime's cold start: from its process start to its first
    /// `GET /runtime/invocation/next`, as the RIE reports it
    /// (`INIT REPORT(durationMs: …)`).
    fn init_duration_ms(&self) -> Option<f64> {
        let logs = self.logs();
        let rest = &logs[logs.find("INIT REPORT(durationMs: ")? + 24..];
        rest[..rest.find(')')?].trim().parse().ok()
    }

    /// The container's processes as the host sees them (`docker top`):
    /// (user, command) pairs.
    fn processes(&self) -> Vec<(String, String)> {
        docker_ok(&["top", &self.name, "-o", "pid,user,args"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                let _pid = fields.next()?;
                let user = fields.next()?.to_owned();
                Some((user, fields.collect::<Vec<_>>().join(" ")))
            })
            .collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

fn log_of(v: &Value) -> &str {
    v["log"].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Job repositories.

/// A git server (Basic auth with [`TOKEN`]) serving `jobs.git`.
struct Repo {
    _dir: TestDir,
    git: GitHttpServer,
}

impl Repo {
    fn start(name: &str, files: &[(&str, &str)]) -> Repo {
        let dir = TestDir::new(name);
        let mut repo = RepoBuilder::new(dir.path(), "jobs");
        for (path, body) in files {
            repo.file(path, body);
        }
        repo.commit("jobs");
        let git = GitHttpServer::start(
            dir.path(),
            HttpOpts {
                tls: false,
                auth: Some((USER.to_owned(), TOKEN.to_owned())),
            },
        );
        Repo { _dir: dir, git }
    }

    fn job(&self, script: &str) -> Value {
        json!({
            "repository": {"url": self.git.url("jobs"), "token": TOKEN},
            "script": script,
        })
    }
}

const BOTO: &str = r#"import sys, boto3, botocore
s3 = boto3.client("s3")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
print("boto3", boto3.__version__, "botocore", botocore.__version__, "python", sys.version.split()[0])
print("buckets:", ",".join(names))
"#;

const OUTPUT: &str = r#"import json, os, shutil
free = shutil.disk_usage("/tmp").free
with open(os.environ["PYEXEC_OUTPUT"], "w") as f:
    json.dump({"deleted": 3, "tmp_free": free, "uid": os.getuid()}, f)
print("not the output")
"#;

/// Tries to write outside /tmp; every attempt must fail.
const WRITE_OUTSIDE: &str = r#"import glob, os
targets = ["/pwned", "/var/task/pwned", "/var/runtime/bootstrap", "/etc/passwd",
           "/usr/local/bin/pwned", "/root/pwned", "/dev/shm/pwned"]
targets += glob.glob("/usr/lib/python3*/json/__init__.py")
targets += glob.glob("/usr/local/lib/python3*/*-packages/boto3/__init__.py")
written = []
for t in targets:
    try:
        with open(t, "a") as f:
            f.write("x")
        written.append(t)
        print("WROTE", t)
    except OSError as e:
        print("refused", t, "-", e.strerror)
if written:
    raise SystemExit("wrote outside /tmp: " + ", ".join(written))
open("/var/task/pwned", "w")  # fails: the traceback is the job's log
"#;

/// Fills /tmp until the file system is full, from the job's TMPDIR and /tmp.
const FILL_TMP: &str = r#"import errno, os
chunk = b"x" * (1 << 20)
written = 0
for path in (os.path.join(os.environ["TMPDIR"], "fill"), "/tmp/fill-the-disk"):
    try:
        with open(path, "wb") as f:
            while True:
                f.write(chunk)
                written += 1
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
print(f"filled /tmp with {written} MiB: no space left", flush=True)
"#;

/// Runs into Lambda's limits of 1,024 processes and file descriptors, and
/// leaves the processes running.
const LIMITS: &str = r#"import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(3600)
            os._exit(0)
        n += 1
except OSError as e:
    print("forked", n, "then:", e.strerror, flush=True)
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    print("opened", len(fds), "then:", e.strerror, flush=True)
"#;

const SLEEP: &str = "import time\nprint('sleeping', flush=True)\ntime.sleep(1000)\n";

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn base_image_layers_fit_the_budget() {
    let img = images();
    let history = docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Size}}\t{{.CreatedBy}}",
        &img.base,
    ]);
    eprintln!("docker history {}:\n{history}", img.base);
    let layers = layer_sizes(&img.base);
    let base_layers = layer_sizes(TEST_BASE);
    let added = &layers[base_layers.len()..];
    eprintln!("layers added to {TEST_BASE} (bytes): {added:?}");
    let inspect: Value =
        serde_json::from_str(&docker_ok(&["image", "inspect", &img.base])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["Entrypoint"],
        json!(["/var/runtime/bootstrap"]),
        "Lambda's contract: the runtime is the entrypoint"
    );
    // image/Dockerfile adds two layers with content, in order: boto3 (with
    // bytecode), then the runtime; the rest is metadata.
    let content: Vec<u64> = added.iter().copied().filter(|&s| s > 0).collect();
    let [boto3_layer, bootstrap_layer] = content[..] else {
        panic!("expected two layers with content, got {added:?}");
    };
    eprintln!(
        "bootstrap layer {:.1} MB, boto3 layer {:.1} MB, base image {:.1} MB, total {:.1} MB",
        bootstrap_layer as f64 / 1e6,
        boto3_layer as f64 / 1e6,
        base_layers.iter().sum::<u64>() as f64 / 1e6,
        layers.iter().sum::<u64>() as f64 / 1e6,
    );
    assert!(
        bootstrap_layer <= BOOTSTRAP_LAYER_BUDGET,
        "the runtime's layer is {bootstrap_layer} bytes, over the 20 MB budget"
    );

    // No git: libgit2 is inside bootstrap. The runtime loads with the
    // image's glibc, as the non-root Lambda user.
    let sh = |script: &str| {
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "--user",
            "993:990",
            "--entrypoint",
            "/bin/sh",
            &img.base,
            "-c",
            script,
        ])
    };
    // The shell ran (a failing `docker run` prints nothing) and found no git.
    let git = sh("command -v git || echo no git");
    assert_eq!(
        String::from_utf8_lossy(&git.stdout),
        "no git\n",
        "{}",
        String::from_utf8_lossy(&git.stderr)
    );
    let ldd = sh("ldd /var/runtime/bootstrap");
    let ldd_out = String::from_utf8_lossy(&ldd.stdout);
    assert!(
        ldd.status.success() && !ldd_out.contains("not found"),
        "{ldd_out}"
    );
    // boto3 imports with plain python3, no PYTHONPATH, and its bytecode is
    // in the image (a read-only root cannot cache it).
    let py = sh(
        "env -i PATH=\"$PATH\" python3 -c 'import boto3, botocore.client, importlib.util as u, os, sys; \
         f = botocore.client.__file__; assert os.path.exists(u.cache_from_source(f)), f; \
         print(boto3.__version__)'",
    );
    assert!(
        py.status.success(),
        "{}{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );
}

/// Sizes of an image's layers, oldest first, from `docker history`.
fn layer_sizes(image: &str) -> Vec<u64> {
    let raw = docker_ok(&["history", "--human=false", "--format", "{{.Size}}", image]);
    let mut sizes: Vec<u64> = raw.lines().map(|l| l.trim().parse().unwrap()).collect();
    sizes.reverse();
    sizes
}

#[test]
fn base_image_runs_jobs_under_lambda_restrictions() {
    let img = images();
    let moto = Moto::start();
    moto.create_bucket("inventory");
    let repo = Repo::start(
        "image-jobs",
        &[
            ("jobs/boto.py", BOTO),
            ("jobs/output.py", OUTPUT),
            ("jobs/write_outside.py", WRITE_OUTSIDE),
            ("jobs/fill_tmp.py", FILL_TMP),
            ("jobs/limits.py", LIMITS),
        ],
    );
    let endpoint = moto.endpoint();
    let c = Container::start(
        &img.base,
        &function_env(&[("AWS_ENDPOINT_URL_S3", &endpoint)]),
        120,
    );

    // boto3, imported by plain python3, acts with the function's
    // credentials (moto's S3 here); the runtime uploads the result and the
    // log from inside the container.
    let mut job = repo.job("/jobs/boto.py");
    job["s3_bucket"] = json!("inventory");
    let v = c.expect(&job, "SUCCEEDED");
    assert!(log_of(&v).contains("boto3 1."), "{v:#}");
    assert!(log_of(&v).contains("buckets: inventory"), "{v:#}");
    let log_key = v["log_key"].as_str().expect("log_key");
    let stored = moto
        .get_object("inventory", log_key)
        .expect("log.txt in S3");
    assert!(
        String::from_utf8_lossy(&stored).contains("buckets: inventory"),
        "{v:#}"
    );
    let init = c.init_duration_ms().expect("the RIE's INIT REPORT");
    eprintln!(
        "cold start (bootstrap start to its first /next): {init} ms; first job timings {}",
        v["timings_ms"]
    );
    assert!(init < 5000.0, "cold start of {init} ms");

    // $PYEXEC_OUTPUT is the result's output; the script runs as Lambda's
    // user.
    let v = c.expect(&repo.job("/jobs/output.py"), "SUCCEEDED");
    assert_eq!(v["output"]["deleted"], 3, "{v:#}");
    assert_eq!(v["output"]["uid"], 993);
    let free_before = v["output"]["tmp_free"].as_u64().unwrap();

    // Writing outside /tmp fails, and the log says why.
    let v = c.expect(&repo.job("/jobs/write_outside.py"), "FAILED");
    let log = log_of(&v);
    assert!(!log.contains("WROTE"), "{log}");
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(log.contains("refused /var/runtime/bootstrap"), "{log}");
    assert!(log.contains("/var/task/pwned"), "{log}");

    // A job that fills /tmp; the next one still runs, with /tmp free again.
    let v = c.expect(&repo.job("/jobs/fill_tmp.py"), "SUCCEEDED");
    assert!(log_of(&v).contains("no space left"), "{v:#}");
    let v = c.expect(&repo.job("/jobs/output.py"), "SUCCEEDED");
    let free_after = v["output"]["tmp_free"].as_u64().unwrap();
    assert!(
        free_after + (8 << 20) >= free_before,
        "/tmp was not swept: {free_before} bytes free before, {free_after} after"
    );
    let v = c.expect(&repo.job("/jobs/boto.py"), "SUCCEEDED");
    assert!(log_of(&v).contains("buckets: inventory"), "{v:#}");

    // A job that hits the process and file-descriptor limits; its
    // processes are killed and the next job runs.
    let v = c.expect(&repo.job("/jobs/limits.py"), "SUCCEEDED");
    let log = log_of(&v);
    assert!(
        log.contains("then: Resource temporarily unavailable"),
        "{log}"
    );
    assert!(log.contains("then: Too many open files"), "{log}");
    c.expect(&repo.job("/jobs/output.py"), "SUCCEEDED");
    let procs = c.processes();
    assert_eq!(procs.len(), 2, "RIE and bootstrap only: {procs:?}");

    // The script's log reached the function's stdout (CloudWatch).
    assert!(c.logs().contains("filled /tmp with"), "{}", tail(&c.logs()));
}

#[test]
fn base_image_clones_over_https_with_the_system_trust_store() {
    // A private CA in place of the image's CA bundle: the runtime (libgit2
    // with its own OpenSSL) trusts what the image's system store trusts, and
    // nothing else.
    let img = images();
    let dir = TestDir::new("image-https");
    let mut repo = RepoBuilder::new(dir.path(), "jobs");
    repo.file("jobs/output.py", OUTPUT);
    repo.commit("jobs");
    let git = GitHttpServer::start(
        dir.path(),
        HttpOpts {
            tls: true,
            auth: Some((USER.to_owned(), TOKEN.to_owned())),
        },
    );
    let ca = git.ca_cert().unwrap();
    let job = json!({"repository": {"url": git.url("jobs"), "token": TOKEN}, "script": "/jobs/output.py"});
    let env = [
        ("PYEXEC_ALLOWED_GIT_HOSTS", "127.0.0.1"),
        ("AWS_REGION", "us-east-1"),
    ];
    let mount = format!("{}:/etc/ssl/certs/ca-certificates.crt:ro", ca.display());
    let trusted = Container::start_with(&img.base, &env, 60, &["--volume", &mount]);
    let v = trusted.expect(&job, "SUCCEEDED");
    assert_eq!(v["output"]["deleted"], 3, "{v:#}");
    drop(trusted);
    let untrusted = Container::start(&img.base, &env, 60);
    let v = untrusted.expect(&job, "ERROR");
    assert_eq!(v["error"]["kind"], "tls_failed", "{v:#}");
}

#[test]
fn base_image_stops_a_job_at_the_deadline() {
    let img = images();
    let repo = Repo::start(
        "image-timeout",
        &[("jobs/sleep.py", SLEEP), ("jobs/output.py", OUTPUT)],
    );
    // Lambda's timeout 8 s, 2 s kept for the reply: stopped after ~6 s.
    // As some other user than Lambda's: the image works for any.
    let c = Container::start_with(
        &img.base,
        &function_env(&[("PYEXEC_RESERVE_MS", "2000")]),
        8,
        &["--user", "4242:4242"],
    );
    let started = Instant::now();
    let v = c.expect(&repo.job("/jobs/sleep.py"), "TIMED_OUT");
    let took = started.elapsed();
    assert!(log_of(&v).contains("sleeping"), "{v:#}");
    assert!(
        took < Duration::from_secs(8),
        "the result came back after {took:?}, past Lambda's timeout"
    );
    // The same runtime serves the next job, and the sleeper is gone.
    let v = c.expect(&repo.job("/jobs/output.py"), "SUCCEEDED");
    assert_eq!(v["output"]["uid"], 4242);
    let procs = c.processes();
    assert!(
        !procs.iter().any(|(_, cmd)| cmd.contains("python3")),
        "{procs:?}"
    );
    assert!(procs.iter().all(|(user, _)| user == "4242"), "{procs:?}");
}

/// Leaves a file in /tmp and in $HOME, a daemon (double fork, own session)
/// and an environment variable.
const LEAVE_TRACES: &str = r#"import os, subprocess, sys
n = sys.argv[1]
open(f"/tmp/trace-{n}", "w").write(n)
open(os.path.join(os.environ["HOME"], f"trace-{n}"), "w").write(n)
os.makedirs(os.path.join(os.environ["HOME"], ".cache", "trace"), exist_ok=True)
os.environ[f"PYEXEC_TRACE_{n}"] = n
os.putenv(f"TRACE_{n}", n)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("python3", ["python3", "-c", f"import time; time.sleep(3600)  # trace-{n}"])
    os._exit(0)
os.wait()
subprocess.Popen(["python3", "-c", f"import time; time.sleep(3600)  # trace-{n}"],
                 start_new_session=True)
print("left traces", n)
"#;

/// Reports what this job can see of earlier ones: /tmp, $HOME, processes
/// (from /proc) and the environment.
const INSPECT: &str = r#"import json, os
home = os.environ["HOME"]
own = {os.path.realpath(p).split("/")[2] for p in (home, os.getcwd(), os.environ["TMPDIR"])}
tmp = sorted(set(os.listdir("/tmp")) - own)
procs = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        procs.append(cmd)
home_files = [os.path.join(d, f) for d, _, fs in os.walk(home) for f in fs]
env = sorted(k for k in os.environ if "TRACE" in k)
json.dump({"tmp": tmp, "own": sorted(own), "procs": procs, "home": home_files, "env": env,
           "environ": sorted(os.environ)}, open(os.environ["PYEXEC_OUTPUT"], "w"))
"#;

#[test]
fn a_warm_container_keeps_nothing_between_jobs() {
    let img = images();
    let repo = Repo::start(
        "image-warm",
        &[
            ("jobs/traces.py", LEAVE_TRACES),
            ("jobs/inspect.py", INSPECT),
        ],
    );
    let c = Container::start(&img.base, &function_env(&[]), 120);
    let started = Instant::now();
    for n in 1..=19 {
        let mut job = repo.job("/jobs/traces.py");
        job["args"] = json!([n.to_string()]);
        let v = c.expect(&job, "SUCCEEDED");
        assert!(log_of(&v).contains(&format!("left traces {n}")), "{v:#}");
    }
    let v = c.expect(&repo.job("/jobs/inspect.py"), "SUCCEEDED");
    eprintln!("20 jobs in one warm container: {:?}", started.elapsed());
    let seen = &v["output"];
    assert_eq!(seen["tmp"], json!([]), "files left in /tmp: {seen:#}");
    assert_eq!(seen["home"], json!([]), "files left in $HOME: {seen:#}");
    assert_eq!(seen["env"], json!([]), "variables left: {seen:#}");
    // Only the emulator and the runtime besides this job.
    let procs: Vec<&str> = seen["procs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        !procs
            .iter()
            .any(|p| p.contains("trace-") || p.contains("sleep")),
        "processes left: {procs:?}"
    );
    assert_eq!(procs.len(), 2, "RIE and bootstrap only: {procs:?}");
    assert!(
        procs.iter().any(|p| p.contains("aws-lambda-rie")),
        "{procs:?}"
    );
    assert!(
        procs.iter().any(|p| p.contains("/var/runtime/bootstrap")),
        "{procs:?}"
    );
    // The script's environment is the allow-list, nothing inherited from an
    // earlier job nor the runtime's own settings.
    let environ: Vec<&str> = seen["environ"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for hidden in [
        "AWS_LAMBDA_RUNTIME_API",
        "PYEXEC_ALLOW_HTTP",
        "PYEXEC_ALLOWED_GIT_HOSTS",
    ] {
        assert!(!environ.contains(&hidden), "{hidden} leaked: {environ:?}");
    }
    // From outside: after the job, the container runs the RIE and the
    // runtime only, as the non-root user.
    let procs = c.processes();
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert!(procs.iter().all(|(user, _)| user == "993"), "{procs:?}");
}

/// Leaves a file in /tmp and a daemon, then SIGKILLs the runtime (same uid:
/// allowed; non-dumpable does not stop signals).
#[test]
fn a_job_cannot_end_the_runtime_or_read_it() {
    // As Lambda's non-root user: the runtime and the script share it, so
    // only the runtime's seccomp filter on the script and its non-dumpable
    // flag stand in the way. A runtime signalled away would be replaced by
    // one that knows nothing of this job's daemon and files.
    let img = images();
    let repo = Repo::start(
        "image-kill",
        &[("jobs/kill.py", KILL_RUNTIME), ("jobs/inspect.py", INSPECT)],
    );
    let c = Container::start(&img.base, &function_env(&[]), 60);
    let v = c.expect(&repo.job("/jobs/kill.py"), "SUCCEEDED");
    assert_runtime_untouched(&v);
    assert_eq!(v["output"]["environ"], "EACCES", "{v:#}");
    assert_eq!(v["output"]["mem"], "EACCES", "{v:#}");
    let v = c.expect(&repo.job("/jobs/inspect.py"), "SUCCEEDED");
    let seen = &v["output"];
    assert_eq!(seen["tmp"], json!([]), "files left in /tmp: {seen:#}");
    let procs = seen["procs"].as_array().unwrap();
    assert!(
        !procs
            .iter()
            .any(|p| p.as_str().unwrap().contains("trace-killer")),
        "the killer's daemon survived: {procs:?}"
    );
}

#[test]
fn custom_image_adds_a_package_for_its_scripts() {
    let img = images();
    let moto = Moto::start();
    for bucket in ["logs-app", "logs-web", "other"] {
        moto.create_bucket(bucket);
    }
    moto.put_object("logs-app", "a.txt", b"12345");
    moto.put_object("logs-app", "b.txt", b"123");
    let report = std::fs::read_to_string(
        workspace_root().join("image/examples/custom/jobs/bucket_report.py"),
    )
    .unwrap();
    let repo = Repo::start("image-custom", &[("jobs/bucket_report.py", &report)]);
    let endpoint = moto.endpoint();
    let c = Container::start(
        &img.custom,
        &function_env(&[("AWS_ENDPOINT_URL_S3", &endpoint)]),
        120,
    );
    let mut job = repo.job("/jobs/bucket_report.py");
    job["args"] = json!(["--prefix", "logs-"]);
    let v = c.expect(&job, "SUCCEEDED");
    assert_eq!(
        v["output"],
        json!({"buckets": [
            {"bucket": "logs-app", "objects": 2, "bytes": 8},
            {"bucket": "logs-web", "objects": 0, "bytes": 0},
        ]}),
        "{v:#}"
    );
    // tabulate's table, in the log.
    let log = log_of(&v);
    assert!(log.contains("| bucket "), "{log}");
    assert!(log.contains("| logs-app |"), "{log}");

    // The base image does not have tabulate: the custom image added it.
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        &img.base,
        "-c",
        "import tabulate",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No module named 'tabulate'"),
        "tabulate in the base image: {stderr}"
    );
}

#[test]
fn pyexec_invoke_targets_the_local_container() {
    // The documented local test mode: `pyexec invoke` with
    // AWS_ENDPOINT_URL_LAMBDA at the container's RIE and the function named
    // "function"; STS (the target's role) in moto.
    let img = images();
    let moto = Moto::start();
    let repo = Repo::start("image-invoke", &[("jobs/output.py", OUTPUT)]);
    let c = Container::start(&img.base, &function_env(&[]), 60);
    let dir = TestDir::new("image-invoke-cli");
    std::fs::write(
        dir.path().join("pyexec.toml"),
        r#"[function]
name = "function"

[targets.local]
role_arn = "arn:aws:iam::111111111111:role/PyexecAssumeRole"
external_id = "local-test"
region = "us-east-1"
"#,
    )
    .unwrap();
    let url = repo.git.url("jobs");
    let lambda = c.endpoint();
    let sts = moto.endpoint();
    let r = pyexec(
        dir.path(),
        &[
            "invoke",
            "--target",
            "local",
            "--repo",
            &url,
            "--token-env",
            "GIT_TOKEN",
            "--script",
            "/jobs/output.py",
        ],
        &[
            ("AWS_ENDPOINT_URL", &sts),
            ("AWS_ENDPOINT_URL_LAMBDA", &lambda),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_MAX_ATTEMPTS", "1"),
            ("GIT_TOKEN", TOKEN),
        ],
    );
    let v = r.expect(0, "SUCCEEDED");
    assert_eq!(v["output"]["deleted"], 3, "{v:#}");
    assert_eq!(v["output"]["uid"], 993);
}
