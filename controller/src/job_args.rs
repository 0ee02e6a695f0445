//! The job options shared by `run`, `invoke` and `schedule create`, and how
//! they become a job: repository from pyexec.toml or a URL, token from the
//! environment or a reference the runtime resolves.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Args;
use pyexec_runtime::{Job, Repository, Secret, Settings};

use crate::config::{Config, RepoConfig};
use crate::error::Error;

#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    /// Repository: an alias from pyexec.toml or an https:// / ssh:// URL
    /// (`pyexec run` also takes a local path or file:// URL).
    #[arg(long)]
    pub repo: String,
    /// Branch, tag or full commit SHA (default: the remote's default branch).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// Script path from the repository root (a leading / means the root).
    #[arg(long)]
    pub script: String,
    /// Environment variable that holds the Git token for a URL given with --repo.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Upload result.json, log.txt and artifacts to this S3 bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Key prefix in the bucket (default python-exec/).
    #[arg(long)]
    pub prefix: Option<String>,
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

/// Where a job's token may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// Read `token_env` now and put the token in the payload (one call).
    FromEnv,
    /// The payload is stored (schedules): only references are allowed.
    ReferencesOnly,
}

impl JobArgs {
    /// The repository: a `[repositories]` alias, else the URL (or path) as given.
    pub fn repository(&self, config: &Config, local: bool) -> Result<RepoConfig, Error> {
        if let Some(r) = config.repositories.get(&self.repo) {
            let mut r = r.clone();
            if self.token_env.is_some() {
                r.token_env = self.token_env.clone();
                r.token_ssm = None;
                r.token_secret = None;
            }
            return Ok(r);
        }
        let url = if local && Path::new(&self.repo).exists() {
            // Absolute, so the job means the same wherever it runs.
            std::fs::canonicalize(&self.repo)
                .map_err(Error::io("cannot read", &self.repo))?
                .to_string_lossy()
                .into_owned()
        } else if self.repo.contains("://") || self.repo.contains('@') {
            self.repo.clone()
        } else {
            return Err(Error::UnknownRepository {
                alias: self.repo.clone(),
                known: config
                    .repositories
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        Ok(RepoConfig {
            url,
            git_ref: None,
            username: None,
            token_env: self.token_env.clone(),
            token_ssm: None,
            token_secret: None,
        })
    }

    /// The job; with `settings`, checked as the runtime would check it
    /// (but for the host list, which is the function's to decide).
    pub fn job(
        &self,
        repo: RepoConfig,
        tokens: Tokens,
        settings: Option<&Settings>,
    ) -> Result<Job, Error> {
        let token = match (&repo.token_env, tokens) {
            (Some(var), Tokens::FromEnv) => Some(Secret::new(
                std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Error::TokenEnv { var: var.clone() })?,
            )),
            (Some(var), Tokens::ReferencesOnly) => {
                return Err(Error::PlaintextTokenInSchedule { var: var.clone() });
            }
            (None, _) => None,
        };
        let token_ref = repo
            .token_ssm
            .as_ref()
            .map(|p| format!("ssm:{p}"))
            .or_else(|| {
                repo.token_secret
                    .as_ref()
                    .map(|s| format!("secretsmanager:{s}"))
            });
        let job = Job {
            repository: Repository {
                url: repo.url,
                git_ref: self.git_ref.clone().or(repo.git_ref),
                token,
                token_ref,
                username: repo.username,
                ..Repository::default()
            },
            script: self.script.clone(),
            args: pyexec_runtime::Args::List(self.args.clone()),
            env: self.env.iter().cloned().collect::<BTreeMap<_, _>>(),
            timeout_seconds: self.timeout,
            s3_bucket: self.bucket.clone(),
            s3_prefix: self.prefix.clone(),
        };
        if let Some(settings) = settings {
            job.validate(settings)?;
        }
        Ok(job)
    }
}

/// What `invoke` and `schedule` check a job against before sending it.
pub fn remote_settings() -> Settings {
    let mut settings = Settings::local();
    settings.allow_local = false;
    settings
}
