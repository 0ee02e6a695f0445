//! `pyexec schedule`: EventBridge Scheduler schedules that invoke the
//! function with a stored job. A stored job holds no plaintext secret: its
//! token is a reference (`token_ssm` / `token_secret`) the runtime resolves.

use aws_config::SdkConfig;
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use clap::{Args, Subcommand};
use pyexec_runtime::{Job, JobResult};
use serde::Serialize;

use crate::config::{Config, ResolvedTarget};
use crate::error::Error;
use crate::invoke;
use crate::job_args::{JobArgs, Tokens, remote_settings};

/// The schedule group that holds pyexec's schedules.
pub const GROUP: &str = "pyexec";

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule that runs a job.
    Create(Box<CreateArgs>),
    /// List the schedules in a target.
    List(TargetArg),
    /// Show a schedule and its stored job.
    Describe(NameArgs),
    /// Delete a schedule.
    Delete(NameArgs),
    /// Run a schedule's stored job once, now, and print the result.
    RunNow(NameArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TargetArg {
    /// Target alias from pyexec.toml.
    #[arg(long)]
    pub target: String,
}

#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    pub name: String,
    #[command(flatten)]
    pub target: TargetArg,
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Schedule name (letters, digits, . - _; up to 64).
    pub name: String,
    #[command(flatten)]
    pub target: TargetArg,
    /// A cron expression: "cron(0 3 * * ? *)" or just "0 3 * * ? *".
    #[arg(long, conflicts_with = "rate", required_unless_present = "rate")]
    pub cron: Option<String>,
    /// A rate expression: "rate(1 hour)" or just "1 hour".
    #[arg(long)]
    pub rate: Option<String>,
    /// Time zone of a cron expression (default UTC), e.g. Europe/Berlin.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Retries of a failed invocation (0-185).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=185))]
    pub retries: i32,
    /// Give up retrying an event older than this (60-86400 s).
    #[arg(long, value_parser = clap::value_parser!(i32).range(60..=86_400))]
    pub max_event_age: Option<i32>,
    /// SQS queue ARN for events that could not be delivered.
    #[arg(long, value_name = "ARN")]
    pub dead_letter_queue: Option<String>,
    /// Use this role for the scheduler instead of creating pyexec-scheduler-<function>.
    #[arg(long, value_name = "ARN")]
    pub scheduler_role_arn: Option<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

/// One schedule, as `list` and `describe` show it.
#[derive(Debug, Serialize)]
pub struct ScheduleInfo {
    pub name: String,
    pub state: String,
    pub expression: String,
    pub timezone: Option<String>,
    pub function_arn: String,
    pub role_arn: String,
    pub retries: Option<i32>,
    pub dead_letter_queue: Option<String>,
    /// The stored job.
    pub job: serde_json::Value,
}

/// `cron(...)`/`rate(...)`, wrapping a bare expression.
pub fn expression(args: &CreateArgs) -> Result<String, Error> {
    let (kind, raw) = match (&args.cron, &args.rate) {
        (Some(c), _) => ("cron", c),
        (None, Some(r)) => ("rate", r),
        (None, None) => {
            return Err(Error::Usage {
                flag: "--cron/--rate",
                reason: "give one".into(),
            });
        }
    };
    let raw = raw.trim();
    let expr = if raw.starts_with(&format!("{kind}(")) {
        raw.to_owned()
    } else {
        format!("{kind}({raw})")
    };
    let fields = expr
        .trim_start_matches(&format!("{kind}("))
        .trim_end_matches(')')
        .split_whitespace()
        .count();
    let ok = expr.ends_with(')')
        && if kind == "cron" {
            fields == 6
        } else {
            fields == 2
        };
    if !ok {
        let hint = if kind == "cron" {
            "six fields: minutes hours day-of-month month day-of-week year, e.g. cron(0 3 * * ? *)"
        } else {
            "a value and a unit, e.g. rate(1 hour)"
        };
        return Err(Error::Usage {
            flag: if kind == "cron" { "--cron" } else { "--rate" },
            reason: format!("{expr:?} is not valid: {hint}"),
        });
    }
    Ok(expr)
}

/// The job a schedule stores: tokens only by reference.
pub fn stored_job(args: &CreateArgs, config: &Config) -> Result<Job, Error> {
    args.job.job(
        args.job.repository(config, false)?,
        Tokens::ReferencesOnly,
        Some(&remote_settings()),
    )
}

fn scheduler(sdk: &SdkConfig) -> aws_sdk_scheduler::Client {
    aws_sdk_scheduler::Client::new(sdk)
}

/// The function's ARN, checking that it exists.
async fn function_arn(
    sdk: &SdkConfig,
    function: &str,
    target: &ResolvedTarget,
) -> Result<String, Error> {
    let live = crate::deploy::get_function(&aws_sdk_lambda::Client::new(sdk), function).await?;
    live.as_ref()
        .and_then(|f| f.configuration()?.function_arn())
        .map(str::to_owned)
        .ok_or_else(|| Error::NoFunction {
            function: function.to_owned(),
            target: target.alias.clone(),
        })
}

/// Create or reuse the role the scheduler assumes: trusted by
/// scheduler.amazonaws.com from this account only, allowed to invoke this
/// function and nothing else.
async fn scheduler_role(
    sdk: &SdkConfig,
    function: &str,
    function_arn: &str,
    account: &str,
) -> Result<String, Error> {
    let iam = aws_sdk_iam::Client::new(sdk);
    let name = format!("pyexec-scheduler-{function}");
    let trust = crate::policies::scheduler_trust_policy(account);
    let arn = match iam
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(trust.to_string())
        .description("pyexec: lets EventBridge Scheduler invoke the pyexec function")
        .send()
        .await
    {
        Ok(out) => out.role().map(|r| r.arn().to_owned()),
        Err(e) if e.code() == Some("EntityAlreadyExists") => None,
        Err(e) => return Err(Error::aws("iam:CreateRole", e)),
    };
    let arn = match arn {
        Some(arn) => arn,
        None => iam
            .get_role()
            .role_name(&name)
            .send()
            .await
            .map_err(|e| Error::aws("iam:GetRole", e))?
            .role()
            .map(|r| r.arn().to_owned())
            .unwrap_or_default(),
    };
    let policy = crate::policies::scheduler_invoke_policy(function_arn);
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("invoke-pyexec")
        .policy_document(policy.to_string())
        .send()
        .await
        .map_err(|e| Error::aws("iam:PutRolePolicy", e))?;
    Ok(arn)
}

async fn ensure_group(client: &aws_sdk_scheduler::Client) -> Result<(), Error> {
    match client.create_schedule_group().name(GROUP).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ConflictException") => Ok(()),
        Err(e) => Err(Error::aws("scheduler:CreateScheduleGroup", e)),
    }
}

pub async fn create(
    sdk: &SdkConfig,
    config: &Config,
    target: &ResolvedTarget,
    args: &CreateArgs,
    expression: &str,
    job: &Job,
) -> Result<ScheduleInfo, Error> {
    let function = &config.function.name;
    let function_arn = function_arn(sdk, function, target).await?;
    let role_arn = match &args.scheduler_role_arn {
        Some(arn) => arn.clone(),
        None => scheduler_role(sdk, function, &function_arn, &target.account_id).await?,
    };
    let client = scheduler(sdk);
    ensure_group(&client).await?;
    let input = serde_json::to_string(job)?;
    let mut retry = RetryPolicy::builder().maximum_retry_attempts(args.retries);
    if let Some(age) = args.max_event_age {
        retry = retry.maximum_event_age_in_seconds(age);
    }
    let mut t = Target::builder()
        .arn(&function_arn)
        .role_arn(&role_arn)
        .input(&input)
        .retry_policy(retry.build());
    if let Some(dlq) = &args.dead_letter_queue {
        t = t.dead_letter_config(DeadLetterConfig::builder().arn(dlq).build());
    }
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| Error::aws("scheduler:FlexibleTimeWindow", e))?;
    client
        .create_schedule()
        .name(&args.name)
        .group_name(GROUP)
        .schedule_expression(expression)
        .set_schedule_expression_timezone(args.timezone.clone())
        .flexible_time_window(window)
        .target(t.build().map_err(|e| Error::aws("scheduler:Target", e))?)
        .state(ScheduleState::Enabled)
        .description(format!("pyexec: {} {}", job.repository.url, job.script))
        .send()
        .await
        .map_err(|e| Error::aws("scheduler:CreateSchedule", e))?;
    describe(sdk, &args.name).await
}

pub async fn describe(sdk: &SdkConfig, name: &str) -> Result<ScheduleInfo, Error> {
    let out = scheduler(sdk)
        .get_schedule()
        .name(name)
        .group_name(GROUP)
        .send()
        .await
        .map_err(|e| not_found_or(name, "scheduler:GetSchedule", e))?;
    let target = out.target();
    Ok(ScheduleInfo {
        name: out.name().unwrap_or(name).to_owned(),
        state: out
            .state()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        expression: out.schedule_expression().unwrap_or_default().to_owned(),
        timezone: out.schedule_expression_timezone().map(str::to_owned),
        function_arn: target.map(|t| t.arn().to_owned()).unwrap_or_default(),
        role_arn: target.map(|t| t.role_arn().to_owned()).unwrap_or_default(),
        retries: target
            .and_then(|t| t.retry_policy())
            .and_then(|r| r.maximum_retry_attempts()),
        dead_letter_queue: target
            .and_then(|t| t.dead_letter_config())
            .and_then(|d| d.arn())
            .map(str::to_owned),
        job: target
            .and_then(|t| t.input())
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default(),
    })
}

pub async fn list(sdk: &SdkConfig) -> Result<Vec<ScheduleInfo>, Error> {
    let client = scheduler(sdk);
    let mut names = Vec::new();
    let mut pages = client
        .list_schedules()
        .group_name(GROUP)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("scheduler:ListSchedules", e))?;
        names.extend(
            page.schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_owned)),
        );
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(describe(sdk, &name).await?);
    }
    Ok(out)
}

pub async fn delete(sdk: &SdkConfig, name: &str) -> Result<(), Error> {
    scheduler(sdk)
        .delete_schedule()
        .name(name)
        .group_name(GROUP)
        .send()
        .await
        .map_err(|e| not_found_or(name, "scheduler:DeleteSchedule", e))?;
    Ok(())
}

/// A missing schedule is named; anything else is the API's error.
fn not_found_or<E, R>(
    name: &str,
    operation: &'static str,
    e: aws_sdk_scheduler::error::SdkError<E, R>,
) -> Error
where
    E: aws_sdk_scheduler::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if e.code() == Some("ResourceNotFoundException") {
        Error::NoSchedule {
            name: name.to_owned(),
        }
    } else {
        Error::aws(operation, e)
    }
}

/// Invoke the function once with the schedule's stored job.
pub async fn run_now(sdk: &SdkConfig, name: &str) -> Result<JobResult, Error> {
    let info = describe(sdk, name).await?;
    let job: Job = serde_json::from_value(info.job).map_err(|e| Error::BadSchedule {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    // The function by name: the ARN's last part (Lambda accepts either).
    let function = info.function_arn.rsplit(':').next().unwrap_or_default();
    invoke::invoke(&aws_sdk_lambda::Client::new(sdk), function, &job).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: CreateArgs,
    }

    fn args(extra: &[&str]) -> CreateArgs {
        let mut all = vec![
            "t", "nightly", "--target", "a", "--repo", "ops", "--script", "/x.py",
        ];
        all.extend_from_slice(extra);
        T::try_parse_from(all).unwrap().c
    }

    #[test]
    fn expressions_are_wrapped_and_checked() {
        assert_eq!(
            expression(&args(&["--cron", "0 3 * * ? *"])).unwrap(),
            "cron(0 3 * * ? *)"
        );
        assert_eq!(
            expression(&args(&["--rate", "rate(1 hour)"])).unwrap(),
            "rate(1 hour)"
        );
        let e = expression(&args(&["--cron", "0 3 * *"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("six fields"), "{e}");
    }

    #[test]
    fn schedules_refuse_plaintext_tokens() {
        let config = Config::parse(
            "[repositories.ops]\nurl = \"https://github.com/a/b.git\"\ntoken_env = \"GH\"\n",
            std::path::Path::new("pyexec.toml"),
        )
        .unwrap();
        let e = stored_job(&args(&["--rate", "1 hour"]), &config)
            .unwrap_err()
            .to_string();
        assert!(e.contains("token_ssm") && e.contains("$GH"), "{e}");
        let config = Config::parse("[repositories.ops]\nurl = \"https://github.com/a/b.git\"\ntoken_ssm = \"/pyexec/gh\"\n", std::path::Path::new("pyexec.toml")).unwrap();
        let job = stored_job(&args(&["--rate", "1 hour"]), &config).unwrap();
        assert_eq!(job.repository.token_ref.as_deref(), Some("ssm:/pyexec/gh"));
        assert!(job.repository.token.is_none());
    }
}
