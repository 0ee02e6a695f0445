//! `pyexec run`: a job on this machine through the same executor as Lambda.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use pyexec_runtime::{Executor, Invocation, Job, JobResult, Repository, Secret, Settings};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::progress::{Progress, TeeLog};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Repository: https:// or ssh:// URL, file:// URL or a local path.
    #[arg(long)]
    pub repo: String,
    /// Branch, tag or full commit SHA (default: the remote's default branch).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// Script path from the repository root (a leading / means the root).
    #[arg(long)]
    pub script: String,
    /// Environment variable that holds the Git token (never the token itself).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// OpenSSH private key file, for ssh:// and git@host:path repositories.
    #[arg(long, value_name = "FILE", requires = "known_hosts")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file pinning the SSH server's host key.
    #[arg(long, value_name = "FILE", requires = "ssh_key")]
    pub known_hosts: Option<PathBuf>,
    /// Upload result.json, log.txt and artifacts to this S3 bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Key prefix in the bucket.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Where result.json and log.txt go (default ./pyexec-out/<id>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Time limit for the script, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Extra environment for the script.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Arguments for the script.
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl RunArgs {
    /// The job this command describes. A local path becomes absolute so the
    /// job means the same wherever it runs.
    pub fn job(&self) -> Result<Job, Error> {
        let url = if Path::new(&self.repo).exists() {
            std::fs::canonicalize(&self.repo)
                .map_err(Error::io("cannot read", &self.repo))?
                .to_string_lossy()
                .into_owned()
        } else {
            self.repo.clone()
        };
        let token = match &self.token_env {
            Some(var) => Some(Secret::new(
                std::env::var(var).map_err(|_| Error::TokenEnv { var: var.clone() })?,
            )),
            None => None,
        };
        let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(Error::io("cannot read", p));
        let ssh_private_key = self
            .ssh_key
            .as_ref()
            .map(read)
            .transpose()?
            .map(Secret::new);
        let ssh_known_hosts = self.known_hosts.as_ref().map(read).transpose()?;
        Ok(Job {
            repository: Repository {
                url,
                git_ref: self.git_ref.clone(),
                token,
                ssh_private_key,
                ssh_known_hosts,
                ..Repository::default()
            },
            script: self.script.clone(),
            args: pyexec_runtime::Args::List(self.args.clone()),
            env: self.env.iter().cloned().collect::<BTreeMap<_, _>>(),
            timeout_seconds: self.timeout,
            s3_bucket: self.bucket.clone(),
            s3_prefix: self.prefix.clone(),
        })
    }
}

/// What `pyexec run` produced.
pub struct RunOutcome {
    pub result: JobResult,
    pub out_dir: PathBuf,
}

/// Run the job locally; `request_id` names the run (and its output folder).
pub async fn run(
    args: &RunArgs,
    request_id: String,
    progress: Progress,
) -> Result<RunOutcome, Error> {
    let job = args.job()?;
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("pyexec-out").join(&request_id));
    std::fs::create_dir_all(&out_dir).map_err(Error::io("cannot create", &out_dir))?;
    let log_path = out_dir.join("log.txt");
    let log_file =
        std::fs::File::create(&log_path).map_err(Error::io("cannot create", &log_path))?;
    // The factory is called once per job; hand the file over the first time.
    let file = Arc::new(Mutex::new(Some(std::io::BufWriter::new(log_file))));
    let live_progress = progress.clone();
    let live: pyexec_runtime::LiveLogFactory = Box::new(move |_inv| {
        Box::new(TeeLog {
            progress: live_progress.clone(),
            file: file.lock().ok().and_then(|mut f| f.take()),
        })
    });
    let executor = Arc::new(Executor::new(Settings::local(), live)?);
    let inv = Invocation {
        request_id,
        deadline: None,
        cancel: CancellationToken::new(),
    };

    let payload = serde_json::to_value(&job)?;
    let cancel = inv.cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let mut phases = executor.phases();
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            while phases.changed().await.is_ok() {
                let phase = *phases.borrow_and_update();
                progress.step(phase);
            }
        })
    };
    let result = executor.run(payload, &inv).await;
    ticker.abort();
    ctrl_c.abort();
    progress.finish();
    let result_path = out_dir.join("result.json");
    std::fs::write(&result_path, serde_json::to_vec_pretty(&result)?)
        .map_err(Error::io("cannot write", &result_path))?;
    Ok(RunOutcome { result, out_dir })
}
