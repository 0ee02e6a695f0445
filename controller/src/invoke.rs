//! `pyexec invoke`: build the job, invoke the function synchronously in each
//! target (concurrently, bounded), and gather the results.

use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use clap::Args;
use futures::stream::{self, StreamExt};
use pyexec_runtime::{ExecutionStatus, Job, JobResult};
use serde::Serialize;

use crate::aws;
use crate::config::{Config, ResolvedTarget};
use crate::deploy::{self, DeployOptions, FunctionSpec, Plan};
use crate::error::Error;
use crate::job_args::{JobArgs, Tokens, remote_settings};

#[derive(Debug, Clone, Args)]
pub struct InvokeArgs {
    /// Target alias from pyexec.toml (repeat for several accounts).
    #[arg(long = "target", required_unless_present = "all_targets")]
    pub targets: Vec<String>,
    /// Every target in pyexec.toml.
    #[arg(long, conflicts_with = "targets")]
    pub all_targets: bool,
    #[command(flatten)]
    pub job: JobArgs,
    /// Replace the result's log tail with the complete log.txt from S3.
    #[arg(long)]
    pub full_log: bool,
    /// Deploy first when the function is missing or out of date.
    #[arg(long)]
    pub deploy: bool,
    /// Image for --deploy (default: [function].image_uri).
    #[arg(long)]
    pub image_uri: Option<String>,
    /// Targets invoked at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

/// One target's outcome: a result, or why there is none.
#[derive(Debug, Serialize)]
pub struct TargetOutcome {
    pub target: String,
    pub account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TargetOutcome {
    pub fn status(&self) -> ExecutionStatus {
        self.result
            .as_ref()
            .map_or(ExecutionStatus::Error, |r| r.execution_status)
    }
}

/// A job and its targets, checked before any AWS call.
#[derive(Debug)]
pub struct Prepared {
    pub job: Job,
    pub targets: Vec<ResolvedTarget>,
}

/// Check everything that can be checked offline: the job, the targets, and
/// the image when deploying.
pub fn prepare(args: &InvokeArgs, config: &Config, config_path: &Path) -> Result<Prepared, Error> {
    let aliases: Vec<String> = if args.all_targets {
        config.targets.keys().cloned().collect()
    } else {
        args.targets.clone()
    };
    if aliases.is_empty() {
        return Err(Error::NoTargets {
            path: config_path.to_path_buf(),
        });
    }
    let targets = aliases
        .iter()
        .map(|a| config.target(a, config_path))
        .collect::<Result<Vec<_>, _>>()?;
    let job = args.job.job(
        args.job.repository(config, false)?,
        Tokens::FromEnv,
        Some(&remote_settings()),
    )?;
    if args.deploy {
        for target in &targets {
            FunctionSpec::new(&config.function, target, args.image_uri.as_deref())?;
        }
    }
    Ok(Prepared { job, targets })
}

/// Invoke in every target, at most `concurrency` at once; one failing target
/// does not stop the others. Outcomes come back in the targets' order.
pub async fn invoke_all(
    args: &InvokeArgs,
    config: &Config,
    prepared: Prepared,
    base: &SdkConfig,
) -> Vec<TargetOutcome> {
    let job = &prepared.job;
    stream::iter(prepared.targets)
        .map(|target| async move {
            let account = target.account_id.clone();
            match invoke_target(args, config, base, &target, job).await {
                Ok(result) => TargetOutcome {
                    target: target.alias,
                    account,
                    result: Some(result),
                    error: None,
                },
                Err(e) => {
                    let message = crate::error::chain(&e);
                    tracing::warn!(target = %target.alias, error = %message, "target failed");
                    TargetOutcome {
                        target: target.alias,
                        account,
                        result: None,
                        error: Some(message),
                    }
                }
            }
        })
        .buffered(args.concurrency as usize)
        .collect()
        .await
}

async fn invoke_target(
    args: &InvokeArgs,
    config: &Config,
    base: &SdkConfig,
    target: &ResolvedTarget,
    job: &Job,
) -> Result<JobResult, Error> {
    let sdk = aws::target_config(base, target, "invoke").await?;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    if args.deploy {
        let spec = FunctionSpec::new(&config.function, target, args.image_uri.as_deref())?;
        let outcome =
            deploy::deploy(&lambda, target, &spec, false, &DeployOptions::default()).await?;
        if outcome.plan != Plan::NoChange {
            tracing::info!(target = %target.alias, plan = %outcome.plan.describe(), "deployed");
        }
    }
    let mut result = invoke(&lambda, &config.function.name, job).await?;
    if args.full_log
        && let (Some(bucket), Some(key)) = (&result.bucket, &result.log_key)
    {
        let obj = pyexec_runtime::upload::client_for(&sdk)
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Error::aws("s3:GetObject", e))?;
        let body = obj
            .body
            .collect()
            .await
            .map_err(|e| Error::aws("s3:GetObject (body)", e))?;
        result.log = String::from_utf8_lossy(&body.into_bytes()).into_owned();
        result.log_truncated = false;
    }
    Ok(result)
}

/// One synchronous invocation. A function error (the runtime crashed, or
/// Lambda stopped it at its timeout) is an error, not a result.
pub async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    job: &Job,
) -> Result<JobResult, Error> {
    let payload = serde_json::to_vec(job)?;
    let out = client
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| Error::aws("lambda:Invoke", e))?;
    let body = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    if let Some(kind) = out.function_error() {
        return Err(function_error(function, kind, &body));
    }
    serde_json::from_slice::<JobResult>(&body).map_err(|_| {
        // RIE and Lambda both answer a timeout with a plain message.
        let text = String::from_utf8_lossy(&body).into_owned();
        if text.contains("Task timed out") {
            Error::FunctionTimeout {
                function: function.to_owned(),
                message: text,
            }
        } else {
            Error::BadResponse {
                function: function.to_owned(),
                body: text.chars().take(500).collect(),
            }
        }
    })
}

fn function_error(function: &str, kind: &str, body: &[u8]) -> Error {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = v["errorMessage"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
    if message.contains("timed out") {
        return Error::FunctionTimeout {
            function: function.to_owned(),
            message,
        };
    }
    Error::FunctionError {
        function: function.to_owned(),
        kind: kind.to_owned(),
        error_type: v["errorType"].as_str().unwrap_or_default().to_owned(),
        message,
    }
}
