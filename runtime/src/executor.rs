//! One job end to end: validate → clone → run → capture → upload → clean up
//! → result. Shared by the Lambda runtime and `pyexec run`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;

use crate::capture::{Capture, Captured, LiveLog};
use crate::checkout::{self, CheckoutRequest, Credentials};
use crate::cleanup::{self, DirSweep};
use crate::confine::Confinement;
use crate::error::Error;
use crate::job::{Auth, Job, Secret, ValidJob};
use crate::process::{self, Limits, ScriptCommand, ScriptExit};
use crate::redact::Redactor;
use crate::result::{ExecutionStatus, JobResult, Timings};
use crate::secrets::Resolver;
use crate::settings::Settings;
use crate::upload::{self, LogUpload};

/// One job at a time per process: the executor owns every child process and
/// the swept directory while a job runs.
static JOB_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One invocation's identity and limits.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// What the script sees as `PYEXEC_REQUEST_ID`. Deliberately not Lambda's
    /// request id: with that, a script could post its own response to the
    /// Runtime API (127.0.0.1:9001 in every Lambda sandbox) and forge the result.
    pub job_id: String,
    /// Lambda's deadline; `None` locally.
    pub deadline: Option<SystemTime>,
    pub cancel: CancellationToken,
}

/// Makes the live-log sink for a request (the request id goes into JSON logs).
pub type LiveLogFactory = Box<dyn Fn(&Invocation) -> Box<dyn LiveLog> + Send + Sync>;

pub struct Executor {
    settings: Settings,
    live: LiveLogFactory,
    s3: OnceCell<aws_sdk_s3::Client>,
    resolver: Resolver,
    sweep: Option<DirSweep>,
    /// The progress of the current job, for a spinner.
    phase: watch::Sender<&'static str>,
}

impl Executor {
    /// Sets process-wide state: subreaper, non-dumpable.
    pub fn new(settings: Settings, live: LiveLogFactory) -> Result<Executor, Error> {
        cleanup::harden_supervisor().map_err(Error::io(
            "cannot set up process supervision for",
            "/proc/self",
        ))?;
        let sweep = match &settings.sweep_dir {
            Some(dir) => {
                Some(DirSweep::snapshot(dir).map_err(Error::io("cannot read", dir.clone()))?)
            }
            None => None,
        };
        Ok(Executor {
            settings,
            live,
            s3: OnceCell::new(),
            resolver: Resolver::default(),
            sweep,
            phase: watch::Sender::new("starting"),
        })
    }

    /// What the current job is doing ("cloning", "running", "uploading").
    pub fn phases(&self) -> watch::Receiver<&'static str> {
        self.phase.subscribe()
    }

    fn set_phase(&self, phase: &'static str) {
        self.phase.send_replace(phase);
    }

    /// Run a job payload. Never fails: every problem is an `ERROR` result.
    pub async fn run(&self, payload: serde_json::Value, inv: &Invocation) -> JobResult {
        let _one_at_a_time = JOB_LOCK.lock().await;
        let started = Instant::now();
        let job = match Job::parse(payload).and_then(|j| j.validate(&self.settings)) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(request_id = %inv.request_id, error = %e.chain(), "invalid job");
                return JobResult::error(&inv.request_id, &e);
            }
        };
        let token = match &job.auth {
            Auth::TokenRef { reference, .. } => match self.resolver.resolve(reference).await {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::warn!(request_id = %inv.request_id, error = %e.chain(), "token_ref not resolved");
                    return JobResult::error(&inv.request_id, &e);
                }
            },
            _ => None,
        };
        let mut secrets = job.secrets();
        secrets.extend(token.as_ref().map(|t| t.expose().to_owned()));
        let mut result = match tempfile::Builder::new()
            .prefix("pyexec-")
            .tempdir_in(&self.settings.scratch_dir)
        {
            Ok(dir) => {
                let dir = dir.keep();
                let r = self.run_in(&job, token, inv, &dir, started, &secrets).await;
                cleanup::kill_job_processes(None);
                if let Err(e) = cleanup::remove_tree(&dir) {
                    tracing::warn!(path = %dir.display(), error = %e, "could not remove the job directory");
                }
                r
            }
            Err(e) => JobResult::error(
                &inv.request_id,
                &Error::io(
                    "cannot create a job directory in",
                    &self.settings.scratch_dir,
                )(e),
            ),
        };
        if let Some(sweep) = &self.sweep {
            let removed = sweep.sweep();
            if removed > 0 {
                tracing::info!(
                    removed,
                    "removed what the job left in {}",
                    sweep.dir().display()
                );
            }
        }
        result.timings_ms.total = millis(started.elapsed());
        tracing::info!(request_id = %inv.request_id, status = ?result.execution_status, exit_code = ?result.exit_code, total_ms = result.timings_ms.total, "job done");
        self.set_phase("done");
        result
    }

    async fn run_in(
        &self,
        job: &ValidJob,
        token: Option<Secret>,
        inv: &Invocation,
        dir: &Path,
        started: Instant,
        secrets: &[String],
    ) -> JobResult {
        let redactor = Redactor::new(secrets);
        let mut timings = Timings::default();
        let deadline = self.deadline(job, inv, started);
        let fail = |e: Error, timings: Timings, commit: Option<String>| {
            let mut r = JobResult::error(&inv.request_id, &e);
            r.error
                .iter_mut()
                .for_each(|info| info.message = redactor.redact_str(&info.message));
            r.timings_ms = timings;
            r.commit = commit;
            r
        };

        // Clone.
        self.set_phase("cloning");
        let t = Instant::now();
        let checkout = match self.clone_repo(job, token, dir, deadline, inv).await {
            Ok(c) => c,
            Err(e) => {
                timings.clone = millis(t.elapsed());
                return fail(e, timings, None);
            }
        };
        timings.clone = millis(t.elapsed());
        tracing::info!(commit = %checkout.commit, bytes = checkout.received_bytes, ms = timings.clone, "cloned");
        let repo_dir = dir.join("repo");
        let script = match resolve_script(&repo_dir, job) {
            Ok(s) => s,
            Err(e) => return fail(e, timings, Some(checkout.commit)),
        };

        let home = dir.join("home");
        let tmp = dir.join("tmp");
        let artifacts_dir = dir.join("artifacts");
        let output_file = dir.join("output");
        for d in [&home, &tmp, &artifacts_dir] {
            if let Err(e) = std::fs::create_dir(d) {
                return fail(
                    Error::io("cannot create", d.as_path())(e),
                    timings,
                    Some(checkout.commit),
                );
            }
        }
        let env = self.script_env(
            job,
            inv,
            &checkout.commit,
            &home,
            &tmp,
            &output_file,
            &artifacts_dir,
        );
        // The threads to protect: all of them, started up front (confine::runtime).
        let confinement = match Confinement::protecting_this_process() {
            Ok(c) => c,
            Err(source) => return fail(Error::Confine { source }, timings, Some(checkout.commit)),
        };

        // Run, streaming the log to S3 as it comes.
        let s3 = match &job.s3_bucket {
            Some(bucket) => Some((
                self.s3_client().await.clone(),
                bucket.clone(),
                format!("{}{}/", job.s3_prefix, inv.request_id),
            )),
            None => None,
        };
        let log_upload = s3.as_ref().map(|(client, bucket, base)| {
            LogUpload::start(client.clone(), bucket.clone(), format!("{base}log.txt"))
        });
        let mut capture = Capture::new(
            redactor.clone(),
            self.settings.log_tail_bytes,
            self.settings.max_output_bytes,
            (self.live)(inv),
            log_upload.as_ref().map(|u| u.sender.clone()),
        );
        self.set_phase("running");
        let t = Instant::now();
        let limits = Limits {
            deadline: deadline.map(tokio::time::Instant::from_std),
            grace: self.settings.kill_grace,
            cancel: &inv.cancel,
        };
        let cmd = ScriptCommand {
            python: &self.settings.python,
            script: &script,
            args: &job.args,
            cwd: &repo_dir,
            env,
            confinement,
        };
        let exit = process::run_script(cmd, limits, &mut capture).await;
        timings.script = millis(t.elapsed());
        let output_from_file = read_output(&output_file, self.settings.max_output_bytes, &redactor);
        let captured = capture.finish().await;

        // Upload.
        if s3.is_some() {
            self.set_phase("uploading");
        }
        let t = Instant::now();
        let mut upload_error = None;
        let mut log_key = None;
        if let Some(upload) = log_upload {
            match in_time(inv, upload.finish()).await {
                Ok(key) => log_key = Some(key),
                Err(e) => upload_error = Some(e),
            }
        }
        let mut artifacts = (Vec::new(), false);
        if let Some((client, bucket, base)) = &s3
            && upload_error.is_none()
        {
            match in_time(
                inv,
                upload::artifacts(
                    client,
                    bucket,
                    &format!("{base}artifacts/"),
                    &artifacts_dir,
                    self.settings.max_artifact_bytes,
                ),
            )
            .await
            {
                Ok(a) => artifacts = a,
                Err(e) => upload_error = Some(e),
            }
        }
        timings.upload = millis(t.elapsed());

        let mut result = build_result(
            inv,
            exit,
            output_from_file,
            captured,
            checkout.commit,
            timings,
        );
        result.artifacts = artifacts.0;
        result.artifacts_truncated = artifacts.1;
        result.log_key = log_key;
        if let Some((client, bucket, base)) = &s3 {
            result.bucket = Some(bucket.clone());
            let key = format!("{base}result.json");
            if upload_error.is_none() {
                result.key = Some(key.clone());
                result.timings_ms.total = millis(started.elapsed());
                let body = serde_json::to_vec_pretty(&result).unwrap_or_default();
                if let Err(e) = in_time(
                    inv,
                    upload::put(client, bucket, &key, body, "application/json"),
                )
                .await
                {
                    result.key = None;
                    upload_error = Some(e);
                }
            }
        }
        if let Some(e) = upload_error {
            tracing::error!(error = %e.chain(), "upload failed; the full log went to the function's log");
            result.execution_status = ExecutionStatus::Error;
            result.error = Some((&e).into());
        }
        result.fit_response_limit();
        result
    }

    /// The script's limit: the job's, and never past the invocation deadline
    /// less the reserve for upload and reply.
    fn deadline(&self, job: &ValidJob, inv: &Invocation, started: Instant) -> Option<Instant> {
        let from_job = job
            .timeout_seconds
            .map(|s| started + Duration::from_secs(s));
        let from_lambda = inv.deadline.map(|d| {
            let left = d.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left.saturating_sub(self.settings.reserve)
        });
        match (from_job, from_lambda) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn s3_client(&self) -> &aws_sdk_s3::Client {
        self.s3.get_or_init(upload::client).await
    }

    async fn clone_repo(
        &self,
        job: &ValidJob,
        token: Option<Secret>,
        dir: &Path,
        deadline: Option<Instant>,
        inv: &Invocation,
    ) -> Result<checkout::Checkout, Error> {
        let clone_deadline = {
            let own = Instant::now() + self.settings.clone_timeout;
            deadline.map_or(own, |d| d.min(own))
        };
        let left = clone_deadline.saturating_duration_since(Instant::now());
        let timeout_seconds = left.as_secs();
        // A stalled server is the one case the progress callbacks never see:
        // libgit2's socket timeouts end it at the clone's deadline.
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: process-wide libgit2 options; one job runs at a time
        // (JOB_LOCK) and no clone is under way while they are set.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms.min(30_000));
            let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
        }
        let job = job.clone();
        let dest = dir.join("repo");
        let max_bytes = self.settings.clone_max_bytes;
        let cancel = inv.cancel.clone();
        let work = tokio::task::spawn_blocking(move || {
            let req = CheckoutRequest {
                repo: &job.repo,
                git_ref: &job.git_ref,
                credentials: Credentials::from_auth(&job.auth, token.as_ref().map(Secret::expose)),
                dest: &dest,
                max_bytes,
                deadline: clone_deadline,
                timeout_seconds,
            };
            checkout::checkout(&req)
        });
        tokio::select! {
            r = work => r.unwrap_or_else(|e| Err(Error::io("clone task failed in", dir)(std::io::Error::other(e.to_string())))),
            () = cancel.cancelled() => Err(Error::Cancelled),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn script_env(
        &self,
        job: &ValidJob,
        inv: &Invocation,
        commit: &str,
        home: &Path,
        tmp: &Path,
        output: &Path,
        artifacts: &Path,
    ) -> Vec<(String, String)> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut env = self.settings.base_env.clone();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        if !env.iter().any(|(k, _)| k == "LANG") {
            env.push(("LANG".into(), "C.UTF-8".into()));
        }
        env.extend([
            ("HOME".into(), path(home)),
            ("TMPDIR".into(), path(tmp)),
            ("PYEXEC_OUTPUT".into(), path(output)),
            ("PYEXEC_ARTIFACTS".into(), path(artifacts)),
            ("PYEXEC_REQUEST_ID".into(), inv.job_id.clone()),
            ("PYEXEC_COMMIT".into(), commit.to_owned()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ]);
        // The job's own variables win over the defaults above (never over
        // the reserved PYEXEC_* names: validation refused those).
        env.retain(|(k, _)| !job.env.contains_key(k));
        env.extend(job.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

/// The script inside the checkout, following symlinks only within it.
fn resolve_script(repo_dir: &Path, job: &ValidJob) -> Result<PathBuf, Error> {
    let display = || job.script_display.clone();
    let root = repo_dir
        .canonicalize()
        .map_err(Error::io("cannot read", repo_dir))?;
    let joined = root.join(&job.script);
    // A dangling link or missing file; a link that leaves the tree is
    // reported as such even when its target does not exist.
    let target = match joined.canonicalize() {
        Ok(t) => t,
        Err(_) => {
            return match std::fs::read_link(&joined) {
                Ok(_) => Err(Error::ScriptOutsideCheckout { script: display() }),
                Err(_) => Err(Error::ScriptNotFound { script: display() }),
            };
        }
    };
    if !target.starts_with(&root) || target.starts_with(root.join(".git")) {
        return Err(Error::ScriptOutsideCheckout { script: display() });
    }
    if !target.is_file() {
        return Err(Error::ScriptNotFile { script: display() });
    }
    Ok(target
        .strip_prefix(&root)
        .map(Path::to_path_buf)
        .unwrap_or(target))
}

/// `$PYEXEC_OUTPUT`: `Ok(None)` when the script did not write it,
/// `Err(())` when it is larger than the cap.
fn read_output(
    path: &Path,
    cap: usize,
    redactor: &Redactor,
) -> Option<Result<serde_json::Value, ()>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > cap as u64 {
        return Some(Err(()));
    }
    let mut data = std::fs::read(path).ok()?;
    redactor.redact(&mut data);
    Some(Ok(parse_output(&data)))
}

/// JSON when the whole text is one JSON document, else the text.
fn parse_output(data: &[u8]) -> serde_json::Value {
    serde_json::from_slice(data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(data).into_owned()))
}

fn build_result(
    inv: &Invocation,
    exit: Result<ScriptExit, Error>,
    from_file: Option<Result<serde_json::Value, ()>>,
    captured: Captured,
    commit: String,
    timings: Timings,
) -> JobResult {
    let mut result = JobResult::empty(&inv.request_id);
    result.commit = Some(commit);
    result.timings_ms = timings;
    result.log = String::from_utf8_lossy(&captured.tail).into_owned();
    result.log_truncated = captured.log_truncated;
    match from_file {
        Some(Ok(v)) => result.output = v,
        Some(Err(())) => result.output_truncated = true,
        None => match &captured.stdout {
            Some(out) if out.is_empty() => {}
            Some(out) => result.output = parse_output(out),
            None => result.output_truncated = true,
        },
    }
    match exit {
        Err(e) => {
            result.execution_status = ExecutionStatus::Error;
            result.error = Some((&e).into());
        }
        Ok(exit) => {
            result.exit_code = exit.exit_code;
            result.signal = exit.signal;
            result.execution_status = if exit.cancelled {
                result.error = Some((&Error::Cancelled).into());
                ExecutionStatus::Error
            } else if exit.timed_out {
                ExecutionStatus::TimedOut
            } else if exit.exit_code == Some(0) {
                ExecutionStatus::Succeeded
            } else {
                ExecutionStatus::Failed
            };
        }
    }
    result
}

/// Kept from the deadline for the reply itself once S3 is given up on.
const REPLY_MARGIN: Duration = Duration::from_millis(500);

/// An S3 step bounded by the invocation deadline: a slow S3 must not cost
/// the result (the log already went to the function's log as it came).
async fn in_time<T>(
    inv: &Invocation,
    step: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(deadline) = inv.deadline else {
        return step.await;
    };
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(REPLY_MARGIN);
    tokio::time::timeout(left, step)
        .await
        .unwrap_or_else(|_| Err(Error::UploadDeadline))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
