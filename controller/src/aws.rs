//! AWS credentials: the operator's standard chain, then STS AssumeRole into a
//! target account with its ExternalId. The assumed credentials are cached and
//! refreshed by the SDK before they expire, so long runs keep working.

use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::config::ResolvedTarget;
use crate::error::Error;

/// The operator's own configuration (profile, env, `AWS_ENDPOINT_URL*`):
/// the standard chain, as the runtime loads its own.
pub use pyexec_runtime::upload::sdk_config as base_config;

/// A session name that says who and why, within STS's 64 characters of
/// `[\w+=,.@-]`, e.g. `pyexec-deploy-alice`.
pub fn session_name(purpose: &str, user: Option<&str>) -> String {
    let raw = match user {
        Some(u) => format!("pyexec-{purpose}-{u}"),
        None => format!("pyexec-{purpose}"),
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// Credentials for the target account. Resolved once here so that a refused
/// AssumeRole is reported before anything else happens.
pub async fn target_config(
    base: &SdkConfig,
    target: &ResolvedTarget,
    purpose: &str,
) -> Result<SdkConfig, Error> {
    let user = std::env::var("USER").ok();
    let region = target
        .region
        .clone()
        .map(Region::new)
        .or_else(|| base.region().cloned());
    let mut builder = AssumeRoleProvider::builder(&target.role_arn)
        .session_name(session_name(purpose, user.as_deref()))
        .configure(base);
    if let Some(id) = &target.external_id {
        builder = builder.external_id(id);
    }
    if let Some(r) = &region {
        builder = builder.region(r.clone());
    }
    let provider = builder.build().await;
    provider
        .provide_credentials()
        .await
        .map_err(|source| Error::AssumeRole {
            target: target.alias.clone(),
            role_arn: target.role_arn.clone(),
            source,
        })?;
    let mut config = base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider));
    if let Some(r) = region {
        config = config.region(r);
    }
    Ok(config.build())
}

/// The account the configuration's credentials act in.
pub async fn caller_account(config: &SdkConfig) -> Result<String, Error> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error::aws("sts:GetCallerIdentity", e))?;
    Ok(out.account().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_names_are_valid_for_sts() {
        assert_eq!(
            super::session_name("deploy", Some("alice smith")),
            "pyexec-deploy-alice-smith"
        );
        assert_eq!(super::session_name("invoke", None), "pyexec-invoke");
        assert!(super::session_name("x", Some(&"a".repeat(100))).len() <= 64);
    }
}
