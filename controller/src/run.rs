//! `pyexec run`: a job on this machine through the same executor as Lambda.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Args;
use pyexec_runtime::{Executor, Invocation, Job, JobResult, Secret, Settings};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Error;
use crate::job_args::{JobArgs, Tokens};
use crate::progress::{Progress, TeeLog};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// OpenSSH private key file, for ssh:// and git@host:path repositories.
    #[arg(long, value_name = "FILE", requires = "known_hosts")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file pinning the SSH server's host key.
    #[arg(long, value_name = "FILE", requires = "ssh_key")]
    pub known_hosts: Option<PathBuf>,
    /// Where result.json and log.txt go (default ./pyexec-out/<id>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl RunArgs {
    /// The job this command describes; the executor validates it, so that a
    /// bad job is an ERROR result like anywhere else.
    pub fn job(&self, config: &Config) -> Result<Job, Error> {
        let repo = self.job.repository(config, true)?;
        let mut job = self.job.job(repo, Tokens::FromEnv, None)?;
        let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(Error::io("cannot read", p));
        job.repository.ssh_private_key = self
            .ssh_key
            .as_ref()
            .map(read)
            .transpose()?
            .map(Secret::new);
        job.repository.ssh_known_hosts = self.known_hosts.as_ref().map(read).transpose()?;
        Ok(job)
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
    config: &Config,
    request_id: String,
    progress: Progress,
) -> Result<RunOutcome, Error> {
    let job = args.job(config)?;
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
    let executor = Executor::new(Settings::local(), live)?;
    let inv = Invocation {
        // No Runtime API here to forge an answer to: one id serves both.
        job_id: request_id.clone(),
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
