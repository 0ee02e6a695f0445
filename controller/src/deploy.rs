//! `pyexec deploy`: create or update the container-image function in a target
//! account, then wait with the SDK's waiters until it is active and updated.
//! A deploy whose live configuration already matches makes no update call.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::types::{Environment, EphemeralStorage, FunctionCode, PackageType};
use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;

use crate::config::{FunctionConfig, ResolvedTarget};
use crate::error::Error;

/// The function as it should be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionSpec {
    pub name: String,
    pub image_uri: String,
    pub role_arn: String,
    pub memory_mb: i32,
    pub timeout_seconds: i32,
    pub ephemeral_storage_mb: i32,
    pub environment: BTreeMap<String, String>,
}

impl FunctionSpec {
    pub fn new(
        function: &FunctionConfig,
        target: &ResolvedTarget,
        image_override: Option<&str>,
    ) -> Result<FunctionSpec, Error> {
        let image_uri = image_override
            .map(str::to_owned)
            .or_else(|| function.image_uri.clone())
            .ok_or(Error::NoImage)?;
        let mut environment = function.environment.clone();
        if !function.allowed_git_hosts.is_empty() {
            environment.insert(
                "PYEXEC_ALLOWED_GIT_HOSTS".into(),
                function.allowed_git_hosts.join(","),
            );
        }
        Ok(FunctionSpec {
            name: function.name.clone(),
            image_uri,
            role_arn: target.execution_role_arn.clone(),
            memory_mb: function.memory_mb as i32,
            timeout_seconds: function.timeout_seconds as i32,
            ephemeral_storage_mb: function.ephemeral_storage_mb as i32,
            environment,
        })
    }
}

/// What a deploy will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Plan {
    Create,
    Update {
        code: bool,
        /// The configuration fields that differ.
        configuration: Vec<&'static str>,
    },
    NoChange,
}

impl Plan {
    pub fn describe(&self) -> String {
        match self {
            Plan::Create => "create the function".into(),
            Plan::NoChange => "nothing to do: the function is up to date".into(),
            Plan::Update {
                code,
                configuration,
            } => {
                let mut parts = Vec::new();
                if *code {
                    parts.push("update the image".to_owned());
                }
                if !configuration.is_empty() {
                    parts.push(format!("update {}", configuration.join(", ")));
                }
                parts.join(" and ")
            }
        }
    }
}

/// How long to wait and retry; tests shorten these.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub wait: Duration,
    /// Retries while a new role propagates through IAM.
    pub iam_retry: ExponentialBuilder,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            wait: Duration::from_secs(600),
            iam_retry: ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(2))
                .with_max_delay(Duration::from_secs(15))
                .with_max_times(6),
        }
    }
}

/// Compare the live function with the spec.
pub async fn plan(client: &Client, spec: &FunctionSpec) -> Result<Plan, Error> {
    Ok(inspect(client, spec).await?.0)
}

/// The live function, or `None` when there is none by that name.
pub(crate) async fn get_function(
    client: &Client,
    name: &str,
) -> Result<Option<GetFunctionOutput>, Error> {
    match client.get_function().function_name(name).send().await {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::aws("lambda:GetFunction", e)),
    }
}

/// The plan, and the live function's ARN when it exists.
async fn inspect(client: &Client, spec: &FunctionSpec) -> Result<(Plan, Option<String>), Error> {
    let Some(live) = get_function(client, &spec.name).await? else {
        return Ok((Plan::Create, None));
    };
    let arn = live
        .configuration()
        .and_then(|c| c.function_arn())
        .map(str::to_owned);
    Ok((diff(spec, &live), arn))
}

fn diff(spec: &FunctionSpec, live: &GetFunctionOutput) -> Plan {
    let code = live.code().and_then(|c| c.image_uri()) != Some(spec.image_uri.as_str());
    let mut changed = Vec::new();
    if let Some(c) = live.configuration() {
        if c.role() != Some(spec.role_arn.as_str()) {
            changed.push("role");
        }
        if c.memory_size() != Some(spec.memory_mb) {
            changed.push("memory");
        }
        if c.timeout() != Some(spec.timeout_seconds) {
            changed.push("timeout");
        }
        if c.ephemeral_storage().map(|e| e.size()).unwrap_or(512) != spec.ephemeral_storage_mb {
            changed.push("ephemeral storage");
        }
        let live_env: BTreeMap<String, String> = c
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        if live_env != spec.environment {
            changed.push("environment");
        }
    }
    if !code && changed.is_empty() {
        Plan::NoChange
    } else {
        Plan::Update {
            code,
            configuration: changed,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub target: String,
    pub function: String,
    pub plan: Plan,
    pub function_arn: Option<String>,
    pub dry_run: bool,
}

/// Plan, then (unless `dry_run`) apply and wait.
pub async fn deploy(
    client: &Client,
    target: &ResolvedTarget,
    spec: &FunctionSpec,
    dry_run: bool,
    opts: &DeployOptions,
) -> Result<DeployOutcome, Error> {
    let (plan, live_arn) = inspect(client, spec).await?;
    let mut outcome = DeployOutcome {
        target: target.alias.clone(),
        function: spec.name.clone(),
        plan: plan.clone(),
        function_arn: live_arn,
        dry_run,
    };
    if dry_run {
        return Ok(outcome);
    }
    match &plan {
        Plan::NoChange => {}
        Plan::Create => {
            let create = || async {
                client
                    .create_function()
                    .function_name(&spec.name)
                    .role(&spec.role_arn)
                    .package_type(PackageType::Image)
                    .code(FunctionCode::builder().image_uri(&spec.image_uri).build())
                    .memory_size(spec.memory_mb)
                    .timeout(spec.timeout_seconds)
                    .ephemeral_storage(storage(spec)?)
                    .environment(environment(spec))
                    .description("Python Exec: runs Python scripts from Git repositories")
                    .send()
                    .await
                    .map_err(|e| role_error(spec, e))
            };
            let created = create
                .retry(opts.iam_retry)
                .when(|e| matches!(e, Error::RoleNotAssumable { .. }))
                .await?;
            outcome.function_arn = created.function_arn().map(str::to_owned);
            wait_active(client, spec, opts).await?;
        }
        Plan::Update {
            code,
            configuration,
        } => {
            // Configuration first: a new role must be in place before new code runs.
            if !configuration.is_empty() {
                let update = || async {
                    client
                        .update_function_configuration()
                        .function_name(&spec.name)
                        .role(&spec.role_arn)
                        .memory_size(spec.memory_mb)
                        .timeout(spec.timeout_seconds)
                        .ephemeral_storage(storage(spec)?)
                        .environment(environment(spec))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| role_error(spec, e))
                };
                retry_conflicts(client, spec, opts, update).await?;
            }
            if *code {
                let update = || async {
                    client
                        .update_function_code()
                        .function_name(&spec.name)
                        .image_uri(&spec.image_uri)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| role_error(spec, e))
                };
                retry_conflicts(client, spec, opts, update).await?;
            }
        }
    }
    Ok(outcome)
}

/// Run an update; when Lambda says another update is in progress
/// (ResourceConflictException), wait for it with the waiter and try again.
async fn retry_conflicts<F, Fut>(
    client: &Client,
    spec: &FunctionSpec,
    opts: &DeployOptions,
    update: F,
) -> Result<(), Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    // The first attempt and two more after waiting: a function that stays
    // busy through two full waits is somebody else's deploy.
    for _ in 0..3 {
        wait_updated(client, spec, opts).await?;
        match update().await {
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
            Ok(()) => return wait_updated(client, spec, opts).await,
        }
    }
    Err(Error::Conflict {
        function: spec.name.clone(),
    })
}

async fn wait_active(
    client: &Client,
    spec: &FunctionSpec,
    opts: &DeployOptions,
) -> Result<(), Error> {
    client
        .wait_until_function_active_v2()
        .function_name(&spec.name)
        .wait(opts.wait)
        .await
        .map_err(|e| Error::aws("lambda:GetFunction (waiting until active)", e))?;
    Ok(())
}

async fn wait_updated(
    client: &Client,
    spec: &FunctionSpec,
    opts: &DeployOptions,
) -> Result<(), Error> {
    client
        .wait_until_function_updated_v2()
        .function_name(&spec.name)
        .wait(opts.wait)
        .await
        .map_err(|e| Error::aws("lambda:GetFunction (waiting until updated)", e))?;
    Ok(())
}

fn storage(spec: &FunctionSpec) -> Result<EphemeralStorage, Error> {
    EphemeralStorage::builder()
        .size(spec.ephemeral_storage_mb)
        .build()
        .map_err(|e| Error::aws("lambda:EphemeralStorage", e))
}

fn environment(spec: &FunctionSpec) -> Environment {
    Environment::builder()
        .set_variables(Some(spec.environment.clone().into_iter().collect()))
        .build()
}

/// Lambda's ways of saying "the role is not usable yet" and "busy".
fn role_error<E>(spec: &FunctionSpec, e: aws_sdk_lambda::error::SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_owned();
    let message = e.message().unwrap_or_default().to_owned();
    if code == "ResourceConflictException" {
        return Error::Conflict {
            function: spec.name.clone(),
        };
    }
    if code == "InvalidParameterValueException" && message.contains("role") {
        return Error::RoleNotAssumable {
            role_arn: spec.role_arn.clone(),
            message,
        };
    }
    Error::aws("lambda", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_lambda::types::{FunctionCodeLocation, FunctionConfiguration};

    fn spec() -> FunctionSpec {
        FunctionSpec {
            name: "pyexec".into(),
            image_uri: "img:1".into(),
            role_arn: "arn:aws:iam::111111111111:role/r".into(),
            memory_mb: 1024,
            timeout_seconds: 900,
            ephemeral_storage_mb: 512,
            environment: BTreeMap::from([("A".into(), "1".into())]),
        }
    }

    fn live(s: &FunctionSpec) -> GetFunctionOutput {
        GetFunctionOutput::builder()
            .code(
                FunctionCodeLocation::builder()
                    .image_uri(&s.image_uri)
                    .build(),
            )
            .configuration(
                FunctionConfiguration::builder()
                    .role(&s.role_arn)
                    .memory_size(s.memory_mb)
                    .timeout(s.timeout_seconds)
                    .environment(
                        aws_sdk_lambda::types::EnvironmentResponse::builder()
                            .set_variables(Some(s.environment.clone().into_iter().collect()))
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn diff_finds_what_changed() {
        let s = spec();
        assert_eq!(diff(&s, &live(&s)), Plan::NoChange);
        let mut changed = s.clone();
        changed.image_uri = "img:2".into();
        changed.memory_mb = 2048;
        changed.environment.insert("B".into(), "2".into());
        assert_eq!(
            diff(&changed, &live(&s)),
            Plan::Update {
                code: true,
                configuration: vec!["memory", "environment"]
            }
        );
        assert_eq!(
            Plan::Update {
                code: true,
                configuration: vec!["memory"]
            }
            .describe(),
            "update the image and update memory"
        );
    }
}
