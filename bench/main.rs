//! `scripts/bench`: pyexec side by side with its baselines, each measured in
//! the same run — job overhead, cold start, memory, clone speed, output
//! capture and warm throughput. Prints a table of medians with min–max and
//! the ratio of each row to its baseline. See BENCHMARKS.md.
//!
//! Everything runs on this machine against real peers on 127.0.0.1: nginx +
//! fcgiwrap + `git http-backend` over HTTPS (test CA), AWS's Lambda Runtime
//! Interface Emulator, the git CLI, and a Python executor built on
//! awslambdaric (`bench/python_executor/handler.py`).

mod launch;
mod proxy;
mod repos;
mod rie;
mod stats;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pyexec_runtime::checkout::{self, CheckoutRequest, Credentials};
use pyexec_runtime::job::{GitRef, RepoUrl, Transport};
use pyexec_tests::git_http::{GitHttpServer, HttpOpts};
use pyexec_tests::procfs_util::{proc_children_of, status_field_kib};
use serde_json::{Value, json};

use crate::rie::{BenchRie, RieOpts};
use crate::stats::{Series, clock_ticks, comm, cpu_ticks};

const USAGE: &str = "\
usage: scripts/bench [--quick] [--rows 1,2,3,4,5] [--runs N] [--clone-dir DIR]
                     [--bootstrap PATH]

  --quick          fewer repetitions (under a minute of measuring once built)
  --rows LIST      only these rows (1 job overhead, 2 Python executor,
                   3 clone, 4 output capture, 5 warm throughput)
  --runs N         rounds of rows 1-2 (default: 15, quick: 5); rows 3-4 take
                   N up to 9 (default: 5, quick: 2)
  --clone-dir DIR  where row 3 clones (default: a tmpfs under /dev/shm)
  --bootstrap PATH the runtime to measure (default: target/release/bootstrap;
                   image/build-bootstrap makes the image's, target/image/bootstrap)
";

struct Opts {
    quick: bool,
    rows: Vec<u32>,
    runs: Option<usize>,
    clone_dir: Option<PathBuf>,
    bootstrap: Option<PathBuf>,
}

fn parse_opts(args: &[String]) -> Opts {
    let mut o = Opts {
        quick: false,
        rows: vec![1, 2, 3, 4, 5],
        runs: None,
        clone_dir: None,
        bootstrap: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next().cloned().unwrap_or_else(|| {
                eprint!("{a} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--rows" => {
                o.rows = value()
                    .split(',')
                    .filter_map(|r| r.trim().parse().ok())
                    .collect()
            }
            "--runs" => o.runs = value().parse().ok().filter(|&n| n > 0),
            "--clone-dir" => o.clone_dir = Some(PathBuf::from(value())),
            "--bootstrap" => {
                // The emulator starts it from another directory.
                let p = PathBuf::from(value());
                o.bootstrap = Some(std::fs::canonicalize(&p).unwrap_or(p));
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0)
            }
            other => {
                eprint!("unknown argument {other}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__launch") {
        launch::main(&args[1..]);
    }
    let opts = parse_opts(&args);
    let ctx = Ctx::new(&opts);
    let mut report = Report::default();
    let started = Instant::now();

    let wants = |r: u32| opts.rows.contains(&r);
    let warm = (wants(1) || wants(2) || wants(5)).then(|| ctx.warm_runtimes());
    if wants(1) || wants(2) {
        ctx.row_jobs(warm.as_ref().unwrap(), &opts, &mut report);
    }
    if wants(2) {
        ctx.row_cold(&mut report);
    }
    if wants(5) {
        ctx.row_throughput(warm.as_ref().unwrap(), &mut report);
    }
    drop(warm);
    if wants(3) {
        ctx.row_clone(&opts, &mut report);
    }
    if wants(4) {
        ctx.row_capture(&mut report);
    }
    let text = report.render(&ctx, started.elapsed());
    println!("{text}");
    let out = ctx.cache.join("last.md");
    if std::fs::write(&out, &text).is_ok() {
        eprintln!("bench: table saved to {}", out.display());
    }
}

// ---------------------------------------------------------------------------
// The setting: binaries, repositories, the git server, environments.

struct Ctx {
    /// Rounds of rows 1-2.
    runs: usize,
    /// Rounds of rows 3-4 (a clone of the medium repository, 1 GiB of output).
    heavy_runs: usize,
    quick: bool,
    root: PathBuf,
    cache: PathBuf,
    /// A tmpfs directory for every checkout and job directory (removed at the end).
    work: WorkDir,
    bench_exe: PathBuf,
    pyexec: PathBuf,
    bootstrap: PathBuf,
    venv_python: PathBuf,
    repos: repos::Repos,
    server: GitHttpServer,
    ca: PathBuf,
    /// PATH, HOME, LANG: the environment every side starts from.
    base_env: Vec<(String, String)>,
}

struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Ctx {
    /// Row 5: how many windows, of how many seconds.
    fn throughput_windows(&self) -> (usize, f64) {
        if self.quick { (3, 1.5) } else { (5, 3.0) }
    }

    fn new(opts: &Opts) -> Ctx {
        let root = pyexec_tests::workspace_root();
        let cache = root.join(".cache/bench");
        std::fs::create_dir_all(&cache).unwrap();
        let release = pyexec_tests::target_dir().join("release");
        let need = |p: PathBuf, how: &str| {
            assert!(p.exists(), "{} not found: {how}", p.display());
            p
        };
        let pyexec = need(release.join("pyexec"), "run scripts/bench (it builds it)");
        let bootstrap = need(
            opts.bootstrap
                .clone()
                .unwrap_or_else(|| release.join("bootstrap")),
            "run scripts/bench (it builds it)",
        );
        let venv_python = need(
            cache.join("venv/bin/python"),
            "run scripts/bench (it installs awslambdaric)",
        );
        let work = PathBuf::from(format!("/dev/shm/pyexec-bench-{}", std::process::id()));
        std::fs::create_dir_all(work.join("home")).unwrap();
        std::fs::create_dir_all(work.join("tmp")).unwrap();
        let repos = repos::ensure(&cache);
        let server = GitHttpServer::start(
            &repos.root,
            HttpOpts {
                tls: true,
                auth: None,
            },
        );
        let ca = server.ca_cert().expect("a TLS server has a CA");
        // SAFETY: no other thread runs yet; libgit2 (in this process, for
        // row 3) reads the CA through OpenSSL's default paths.
        unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
        let base_env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), work.join("home").display().to_string()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        Ctx {
            runs: opts.runs.unwrap_or(if opts.quick { 5 } else { 15 }),
            heavy_runs: if opts.quick {
                2
            } else {
                opts.runs.unwrap_or(5).min(9)
            },
            quick: opts.quick,
            root,
            cache,
            work: WorkDir(work),
            bench_exe: std::env::current_exe().unwrap(),
            pyexec,
            bootstrap,
            venv_python,
            repos,
            server,
            ca,
            base_env,
        }
    }

    fn work(&self) -> &Path {
        &self.work.0
    }

    fn url(&self, name: &str) -> String {
        self.server.url(name)
    }

    fn small_job(&self) -> Value {
        json!({"repository": {"url": self.url("small")}, "script": "/hello.py"})
    }

    /// The environment of the git CLI and the scripts it runs by hand.
    fn hand_env(&self) -> Vec<(String, String)> {
        let mut env = self.base_env.clone();
        env.push(("GIT_SSL_CAINFO".into(), self.ca.display().to_string()));
        env
    }

    /// The function's environment, the same for both runtimes.
    fn function_env(&self) -> Vec<(String, String)> {
        let mut env = self.hand_env();
        env.extend([
            ("SSL_CERT_FILE".into(), self.ca.display().to_string()),
            ("PYEXEC_ALLOWED_GIT_HOSTS".into(), "127.0.0.1".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            (
                "PYTHONPATH".into(),
                self.root
                    .join("bench/python_executor")
                    .display()
                    .to_string(),
            ),
        ]);
        env
    }

    fn start_runtime(&self, kind: Runtime, proxy: bool, log: Option<PathBuf>) -> BenchRie {
        let argv = match kind {
            Runtime::Bootstrap => vec![self.bootstrap.display().to_string()],
            Runtime::Python => vec![
                self.venv_python.display().to_string(),
                "-m".into(),
                "awslambdaric".into(),
                "handler.handler".into(),
            ],
        };
        BenchRie::start(
            &self.bench_exe,
            self.work(),
            RieOpts {
                argv,
                env: self.function_env(),
                cwd: &self.root.join("bench/python_executor"),
                log,
                proxy,
            },
        )
    }

    fn warm_runtimes(&self) -> Warm {
        let boot = self.start_runtime(
            Runtime::Bootstrap,
            false,
            Some(self.work().join("rie-bootstrap.log")),
        );
        let py = self.start_runtime(
            Runtime::Python,
            false,
            Some(self.work().join("rie-python.log")),
        );
        for _ in 0..2 {
            expect_ok(&boot.invoke(&self.small_job()), "bootstrap warm-up");
            expect_ok(&py.invoke(&self.small_job()), "python executor warm-up");
        }
        Warm { boot, py }
    }

    /// `git clone --depth 1` + `python3 script.py`, timed; then cleaned up.
    fn by_hand(&self, repo: &str, script: &str) -> Duration {
        let dest = self.work().join("by-hand");
        let _ = std::fs::remove_dir_all(&dest);
        let t = Instant::now();
        let clone = Command::new("git")
            .args(["clone", "-q", "--depth", "1", &self.url(repo)])
            .arg(&dest)
            .env_clear()
            .envs(self.hand_env())
            .stdin(Stdio::null())
            .output()
            .expect("git clone");
        assert!(
            clone.status.success(),
            "git clone: {}",
            String::from_utf8_lossy(&clone.stderr)
        );
        let run = Command::new("python3")
            .arg(script)
            .current_dir(&dest)
            .env_clear()
            .envs(self.hand_env())
            .stdin(Stdio::null())
            .output()
            .expect("python3");
        let d = t.elapsed();
        assert!(run.status.success(), "python3 {script} failed");
        let _ = std::fs::remove_dir_all(&dest);
        d
    }

    /// `pyexec run` (release build) of the small job, timed.
    fn pyexec_run(&self) -> Duration {
        let out_dir = self.work().join("pyexec-out");
        let t = Instant::now();
        let out = Command::new(&self.pyexec)
            .args(["--json", "run", "--repo", &self.url("small")])
            .args(["--script", "/hello.py", "--out"])
            .arg(&out_dir)
            .env_clear()
            .envs(self.function_env())
            .env("TMPDIR", self.work().join("tmp"))
            .stdin(Stdio::null())
            .output()
            .expect("pyexec run");
        let d = t.elapsed();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "pyexec run printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        expect_ok(&v, "pyexec run");
        let _ = std::fs::remove_dir_all(&out_dir);
        d
    }

    /// CPU time of the git server (nginx, fcgiwrap and the `git
    /// http-backend`/`upload-pack`/`pack-objects` children they reaped).
    fn server_ticks(&self) -> u64 {
        proc_children_of(std::process::id())
            .into_iter()
            .filter(|&p| matches!(comm(p).as_str(), "nginx" | "fcgiwrap"))
            .filter_map(cpu_ticks)
            .sum()
    }

    fn ticks_ms(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e3 / clock_ticks()
    }

    // -----------------------------------------------------------------------
    // Rows 1 and 2 (warm): the small job four ways, interleaved.

    fn row_jobs(&self, warm: &Warm, opts: &Opts, report: &mut Report) {
        eprintln!("bench: rows 1-2: the small job, {} rounds", self.runs);
        let job = self.small_job();
        let (mut hand, mut run, mut boot, mut py) = Default::default();
        let (mut server, mut hand_total) = (0u64, Duration::ZERO);
        let (mut boot_clone, mut boot_script) = (Series::default(), Series::default());
        for i in 0..self.runs {
            for k in 0..4 {
                match (i + k) % 4 {
                    0 => {
                        let s = self.server_ticks();
                        let d = self.by_hand("small", "hello.py");
                        server += self.server_ticks() - s;
                        hand_total += d;
                        Series::push_ms(&mut hand, d);
                    }
                    1 => Series::push_ms(&mut run, self.pyexec_run()),
                    2 => {
                        let t = Instant::now();
                        let v = warm.boot.invoke(&job);
                        Series::push_ms(&mut boot, t.elapsed());
                        expect_ok(&v, "bootstrap");
                        let ms = |k: &str| v["timings_ms"][k].as_f64().unwrap_or(f64::NAN);
                        boot_clone.push(ms("clone"));
                        boot_script.push(ms("script"));
                    }
                    _ => {
                        let t = Instant::now();
                        let v = warm.py.invoke(&job);
                        Series::push_ms(&mut py, t.elapsed());
                        expect_ok(&v, "python executor");
                    }
                }
            }
        }
        let server_ms = self.ticks_ms(server) / self.runs as f64;
        let share = self.ticks_ms(server) / (hand_total.as_secs_f64() * 1e3);
        report.note(format!(
            "git server CPU per small clone: {server_ms:.1} ms ({:.0}% of the by-hand job)",
            share * 100.0
        ));
        report.note(format!(
            "bootstrap's own timings for the small job (medians): clone {:.0} ms, script {:.0} ms",
            boot_clone.median(),
            boot_script.median()
        ));
        for (name, rie) in [("bootstrap", &warm.boot), ("Python executor", &warm.py)] {
            if let Some((pid, _)) = rie.launched() {
                report.note(format!(
                    "{name} after {} warm jobs: {}",
                    self.runs + 2,
                    memory_breakdown(pid)
                ));
            }
        }
        let hand = Cell::ms("by hand: git clone --depth 1 + python3", hand);
        if opts.rows.contains(&1) {
            report.row(
                "1a",
                "job overhead, small repo (200 files): `pyexec run`",
                Cell::ms("pyexec run", run),
                hand.clone(),
                Goal::RatioAtMost(1.03),
            );
            report.row(
                "1b",
                "job overhead, small repo: `bootstrap` under RIE, warm",
                Cell::ms("bootstrap (warm)", boot.clone()),
                hand.clone(),
                Goal::RatioAtMost(1.03),
            );
        }
        if opts.rows.contains(&2) {
            report.row(
                "2a",
                "warm job: Python executor under RIE",
                Cell::ms("awslambdaric + git + subprocess", py.clone()),
                hand,
                Goal::Info,
            );
            report.row(
                "2b",
                "warm job: `bootstrap` vs the Python executor",
                Cell::ms("bootstrap (warm)", boot),
                Cell::ms("Python executor (warm)", py),
                Goal::RatioAtMost(1.0),
            );
        }
    }

    // Row 2 (cold): fresh emulators, exec → first /next, and peak RSS.

    fn row_cold(&self, report: &mut Report) {
        eprintln!("bench: row 2: cold starts, {} rounds", self.runs);
        let job = self.small_job();
        let (mut boot_cold, mut py_cold, mut boot_rss, mut py_rss) = (
            Series::default(),
            Series::default(),
            Series::default(),
            Series::default(),
        );
        for i in 0..self.runs {
            for k in 0..2 {
                let kind = if (i + k) % 2 == 0 {
                    Runtime::Bootstrap
                } else {
                    Runtime::Python
                };
                let rie = self.start_runtime(kind, true, None);
                expect_ok(&rie.invoke(&job), "cold invoke");
                let cold = rie.cold_start().expect("the runtime asked for /next");
                let rss = rie.runtime_hwm_kib().expect("VmHWM") as f64 / 1024.0;
                let (c, r) = match kind {
                    Runtime::Bootstrap => (&mut boot_cold, &mut boot_rss),
                    Runtime::Python => (&mut py_cold, &mut py_rss),
                };
                c.push_ms(cold);
                r.push(rss);
            }
        }
        report.row(
            "2c",
            "cold start: exec → first `/next`",
            Cell::ms("bootstrap", boot_cold),
            Cell::ms("Python executor", py_cold),
            Goal::RatioAtMost(0.1),
        );
        report.row(
            "2d",
            "runtime peak RSS after the small job (children not counted)",
            Cell::mb("bootstrap", boot_rss),
            Cell::mb("Python executor", py_rss),
            Goal::RatioAtMost(1.0),
        );
    }

    // Row 3: the medium repository, the runtime's clone vs the git CLI.

    fn row_clone(&self, opts: &Opts, report: &mut Report) {
        let runs = self.heavy_runs;
        let dir = opts
            .clone_dir
            .clone()
            .unwrap_or_else(|| self.work().join("clones"));
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!(
            "bench: row 3: medium repository, {runs} rounds, into {}",
            dir.display()
        );
        let url = self.url("medium");
        let (mut cli, mut git2) = (Series::default(), Series::default());
        let (mut cli_server, mut git2_server) = (Series::default(), Series::default());
        for i in 0..runs {
            for k in 0..2 {
                let dest = dir.join(format!("clone-{i}-{k}"));
                let s = self.server_ticks();
                let t = Instant::now();
                let use_cli = (i + k) % 2 == 0;
                if use_cli {
                    let out = Command::new("git")
                        .args(["clone", "-q", "--depth", "1", &url])
                        .arg(&dest)
                        .env_clear()
                        .envs(self.hand_env())
                        .output()
                        .expect("git clone");
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                } else {
                    clone_with_runtime(&url, &dest);
                }
                let d = t.elapsed();
                let server = self.ticks_ms(self.server_ticks() - s);
                let files = count_files(&dest);
                assert!(
                    files >= self.repos.medium_files,
                    "{} has {files} files",
                    dest.display()
                );
                let (series, share) = if use_cli {
                    (&mut cli, &mut cli_server)
                } else {
                    (&mut git2, &mut git2_server)
                };
                series.push_ms(d);
                share.push(server / (d.as_secs_f64() * 1e3));
                let _ = std::fs::remove_dir_all(&dest);
            }
        }
        report.note(format!(
            "medium repository: {} files, {:.0} MB of packed history, {:.0} MB at the tip; \
             git server CPU share of a clone: {:.0}% (git CLI), {:.0}% (runtime)",
            self.repos.medium_files,
            self.repos.medium_pack_bytes as f64 / 1e6,
            self.repos.medium_tip_bytes as f64 / 1e6,
            cli_server.median() * 100.0,
            git2_server.median() * 100.0,
        ));
        report.row(
            "3",
            "clone --depth 1, medium repo over HTTPS",
            Cell::ms("runtime (git2)", git2),
            Cell::ms("git CLI", cli),
            Goal::RatioAtMost(1.0),
        );
    }

    // Row 4: 1 GiB of stdout through the runtime.

    fn row_capture(&self, report: &mut Report) {
        let runs = self.heavy_runs;
        const MIB: u64 = 1024;
        eprintln!("bench: row 4: {MIB} MiB of stdout, {runs} rounds");
        let script = self.work().join("big.py");
        std::fs::write(&script, repos::BIG_PY).unwrap();
        let job = json!({
            "repository": {"url": self.url("small")},
            "script": "/big.py",
            "args": [MIB.to_string()],
        });
        let mbs = |d: Duration| (MIB as f64 * 1_048_576.0 / 1e6) / d.as_secs_f64();
        let (mut ours, mut base, mut rss, mut floor) = (
            Series::default(),
            Series::default(),
            Series::default(),
            Series::default(),
        );
        for i in 0..runs {
            // The floor of any capture: the same bytes through a pipe to
            // the cheapest reader there is.
            let t = Instant::now();
            let mut py = Command::new("python3")
                .arg(&script)
                .arg(MIB.to_string())
                .env_clear()
                .envs(self.hand_env())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3");
            let cat = Command::new("cat")
                .stdin(Stdio::from(py.stdout.take().unwrap()))
                .stdout(Stdio::null())
                .status()
                .expect("cat");
            assert!(py.wait().unwrap().success() && cat.success());
            floor.push(mbs(t.elapsed()));
            for k in 0..2 {
                if (i + k) % 2 == 0 {
                    let t = Instant::now();
                    let st = Command::new("python3")
                        .arg(&script)
                        .arg(MIB.to_string())
                        .env_clear()
                        .envs(self.hand_env())
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .status()
                        .expect("python3");
                    base.push(mbs(t.elapsed()));
                    assert!(st.success());
                } else {
                    // The function's stdout (CloudWatch) goes to /dev/null too.
                    let rie = self.start_runtime(Runtime::Bootstrap, false, None);
                    let v = rie.invoke(&job);
                    expect_ok(&v, "1 GiB job");
                    let ms = v["timings_ms"]["script"].as_u64().unwrap_or(0).max(1);
                    ours.push(mbs(Duration::from_millis(ms)));
                    rss.push(rie.runtime_hwm_kib().expect("VmHWM") as f64 / 1024.0);
                }
            }
        }
        report.row(
            "4a",
            "output capture: a script writing 1 GiB to stdout",
            Cell::mbs("bootstrap (capture + CloudWatch)", ours.clone()),
            Cell::mbs("python3 script.py > /dev/null", base),
            Goal::RatioAtLeast(0.9),
        );
        report.row(
            "4b",
            "output capture vs the pipe floor",
            Cell::mbs("bootstrap", ours.clone()),
            Cell::mbs("python3 script.py \\| cat > /dev/null", floor),
            Goal::Info,
        );
        report.row(
            "4c",
            "runtime peak RSS during the 1 GiB job",
            Cell::mb("bootstrap", rss),
            Cell::none(),
            Goal::AbsAtMost(32.0),
        );
    }

    // Row 5: jobs per second through one warm bootstrap.

    fn row_throughput(&self, warm: &Warm, report: &mut Report) {
        let (windows, secs) = self.throughput_windows();
        eprintln!("bench: row 5: warm throughput, {windows} windows of {secs} s");
        let window = Duration::from_secs_f64(secs);
        let job = self.small_job();
        let rate = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            let mut n = 0u32;
            while t.elapsed() < window {
                f();
                n += 1;
            }
            f64::from(n) / t.elapsed().as_secs_f64()
        };
        let (mut boot, mut py, mut hand) =
            (Series::default(), Series::default(), Series::default());
        for _ in 0..windows {
            boot.push(rate(&mut || {
                expect_ok(&warm.boot.invoke(&job), "bootstrap")
            }));
            hand.push(rate(&mut || {
                self.by_hand("small", "hello.py");
            }));
            py.push(rate(&mut || expect_ok(&warm.py.invoke(&job), "python")));
        }
        report.row(
            "5a",
            "warm throughput, trivial script: one `bootstrap`",
            Cell::rate("bootstrap", boot),
            Cell::rate("by hand, one after another", hand),
            Goal::RatioAtLeast(1.0 / 1.03),
        );
        report.row(
            "5b",
            "warm throughput: the Python executor",
            Cell::rate("Python executor", py),
            Cell::none(),
            Goal::Info,
        );
    }
}

#[derive(Clone, Copy)]
enum Runtime {
    Bootstrap,
    Python,
}

struct Warm {
    boot: BenchRie,
    py: BenchRie,
}

fn expect_ok(v: &Value, what: &str) {
    assert_eq!(
        v["execution_status"], "SUCCEEDED",
        "{what}: the job did not succeed: {v:#}"
    );
}

/// The runtime's own clone (`pyexec_runtime::checkout`), in this process.
fn clone_with_runtime(url: &str, dest: &Path) {
    let repo = RepoUrl {
        url: url.to_owned(),
        transport: Transport::Https,
        host: Some("127.0.0.1".into()),
        ssh_user: None,
    };
    let req = CheckoutRequest {
        repo: &repo,
        git_ref: &GitRef::Default,
        credentials: Credentials::None,
        dest,
        max_bytes: 4 << 30,
        deadline: Instant::now() + Duration::from_secs(600),
        timeout_seconds: 600,
    };
    checkout::checkout(&req).unwrap_or_else(|e| panic!("runtime clone of {url}: {e}"));
}

/// VmHWM, and what the resident set is made of now (/proc/PID/status).
fn memory_breakdown(pid: u32) -> String {
    let field = |name: &str| {
        status_field_kib(pid, name).map_or("?".to_owned(), |kib| {
            format!("{:.1} MB", kib as f64 / 1024.0)
        })
    };
    format!(
        "peak RSS {}, now {} = {} anonymous + {} file-backed (the binary and its libraries)",
        field("VmHWM:"),
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:")
    )
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(e.path());
                }
            } else {
                n += 1;
            }
        }
    }
    n
}

// ---------------------------------------------------------------------------
// The table.

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Ms,
    Mb,
    MbPerSec,
    PerSec,
}

#[derive(Clone)]
struct Cell {
    label: String,
    series: Series,
    unit: Unit,
}

impl Cell {
    fn ms(label: &str, series: Series) -> Cell {
        Cell::new(label, series, Unit::Ms)
    }
    fn mb(label: &str, series: Series) -> Cell {
        Cell::new(label, series, Unit::Mb)
    }
    fn mbs(label: &str, series: Series) -> Cell {
        Cell::new(label, series, Unit::MbPerSec)
    }
    fn rate(label: &str, series: Series) -> Cell {
        Cell::new(label, series, Unit::PerSec)
    }
    fn none() -> Cell {
        Cell::new("", Series::default(), Unit::Ms)
    }
    fn new(label: &str, series: Series, unit: Unit) -> Cell {
        Cell {
            label: label.to_owned(),
            series,
            unit,
        }
    }

    fn fmt_value(&self, v: f64) -> String {
        match self.unit {
            Unit::Ms if v < 10.0 => format!("{v:.2}"),
            Unit::Ms => format!("{v:.0}"),
            Unit::Mb => format!("{v:.1}"),
            Unit::MbPerSec => format!("{v:.0}"),
            Unit::PerSec => format!("{v:.2}"),
        }
    }

    fn render(&self) -> String {
        if self.series.len() == 0 {
            return "—".into();
        }
        let unit = match self.unit {
            Unit::Ms => "ms",
            Unit::Mb => "MB",
            Unit::MbPerSec => "MB/s",
            Unit::PerSec => "jobs/s",
        };
        format!(
            "{}: **{} {unit}** ({}–{})",
            self.label,
            self.fmt_value(self.series.median()),
            self.fmt_value(self.series.min()),
            self.fmt_value(self.series.max())
        )
    }
}

enum Goal {
    RatioAtMost(f64),
    RatioAtLeast(f64),
    /// On the measured value itself (in the cell's unit).
    AbsAtMost(f64),
    Info,
}

struct Row {
    id: &'static str,
    what: &'static str,
    ours: Cell,
    base: Cell,
    goal: Goal,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, id: &'static str, what: &'static str, ours: Cell, base: Cell, goal: Goal) {
        self.rows.push(Row {
            id,
            what,
            ours,
            base,
            goal,
        });
    }

    fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    fn render(&self, ctx: &Ctx, took: Duration) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| # | measure | pyexec: median (min–max) | baseline: median (min–max) | ratio | goal | met |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let ratio =
                (r.base.series.len() > 0).then(|| r.ours.series.median() / r.base.series.median());
            let (goal, met) = match r.goal {
                Goal::RatioAtMost(g) => (format!("≤ {g}×"), ratio.map(|x| x <= g)),
                Goal::RatioAtLeast(g) => (format!("≥ {g:.2}×"), ratio.map(|x| x >= g)),
                Goal::AbsAtMost(g) => (
                    format!("≤ {g} MB"),
                    Some(r.ours.series.median() <= g && r.ours.series.max() <= g),
                ),
                Goal::Info => ("—".into(), None),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                r.what,
                r.ours.render(),
                r.base.render(),
                ratio.map_or("—".into(), |x| format!("{x:.2}×")),
                goal,
                match met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                }
            );
        }
        let _ = writeln!(s);
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(
            s,
            "- {} rounds for rows 1-2, {} for rows 3-4, {} windows of {} s for row 5{}; {}; {}; ran in {:.0} s",
            ctx.runs,
            ctx.heavy_runs,
            ctx.throughput_windows().0,
            ctx.throughput_windows().1,
            if ctx.quick { " (--quick)" } else { "" },
            machine(),
            tool_versions(),
            took.as_secs_f64()
        );
        s
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}

fn tool_versions() -> String {
    let v = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                if s.is_empty() {
                    s = String::from_utf8_lossy(&o.stderr).trim().to_owned();
                }
                s
            })
            .unwrap_or_default()
    };
    format!("{}, {}", v("git", "--version"), v("python3", "--version"))
}
