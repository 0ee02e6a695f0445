//! `token_ref`: a Git token kept in SSM Parameter Store (SecureString) or
//! Secrets Manager, resolved with the function's role when the job runs.
//!
//! Not cached across invocations, on purpose: a rotated token takes effect on
//! the next job instead of failing until the container is recycled, and a
//! value that is never kept cannot outlive the job that needed it. The cost
//! is one API call (tens of ms) per job; the SDK clients themselves are
//! reused.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use crate::error::Error;
use crate::job::Secret;

/// A parsed `token_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// `ssm:<parameter name>`
    Ssm(String),
    /// `secretsmanager:<name or ARN>[#json-key]`
    SecretsManager { id: String, key: Option<String> },
}

impl TokenRef {
    pub fn parse(s: &str) -> Result<TokenRef, Error> {
        let bad = |reason: &str| Error::invalid("repository.token_ref", format!("{s:?}: {reason}"));
        if let Some(name) = s.strip_prefix("ssm:") {
            if name.is_empty() {
                return Err(bad("names no parameter"));
            }
            return Ok(TokenRef::Ssm(name.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("secretsmanager:") {
            // An ARN contains ':' but never '#'; the key follows the last '#'.
            let (id, key) = match rest.rsplit_once('#') {
                Some((id, key)) if !key.is_empty() => (id, Some(key.to_owned())),
                Some((_, _)) => return Err(bad("the JSON key after '#' is empty")),
                None => (rest, None),
            };
            if id.is_empty() {
                return Err(bad("names no secret"));
            }
            return Ok(TokenRef::SecretsManager {
                id: id.to_owned(),
                key,
            });
        }
        Err(bad("must start with ssm: or secretsmanager:"))
    }
}

/// The SDK clients, created on first use (most jobs carry no reference).
#[derive(Default)]
pub struct Resolver {
    ssm: tokio::sync::OnceCell<aws_sdk_ssm::Client>,
    secrets: tokio::sync::OnceCell<aws_sdk_secretsmanager::Client>,
}

impl Resolver {
    pub async fn resolve(&self, reference: &str) -> Result<Secret, Error> {
        let parsed = TokenRef::parse(reference)?;
        let fail = |reason: String| Error::TokenRef {
            reference: reference.to_owned(),
            reason,
        };
        let value = match &parsed {
            TokenRef::Ssm(name) => {
                let client = self
                    .ssm
                    .get_or_init(|| async {
                        aws_sdk_ssm::Client::new(&crate::upload::sdk_config().await)
                    })
                    .await;
                let out = client
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| fail(explain(&e, "ssm:GetParameter and kms:Decrypt")))?;
                out.parameter()
                    .and_then(|p| p.value())
                    .unwrap_or_default()
                    .to_owned()
            }
            TokenRef::SecretsManager { id, key } => {
                let client = self
                    .secrets
                    .get_or_init(|| async {
                        aws_sdk_secretsmanager::Client::new(&crate::upload::sdk_config().await)
                    })
                    .await;
                let out = client
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| {
                        fail(explain(&e, "secretsmanager:GetSecretValue and kms:Decrypt"))
                    })?;
                let text = out.secret_string().ok_or_else(|| {
                    fail("the secret has no string value (binary secrets are not supported)".into())
                })?;
                match key {
                    None => text.to_owned(),
                    Some(key) => {
                        let json: serde_json::Value = serde_json::from_str(text).map_err(|_| {
                            fail(format!(
                                "the secret is not a JSON object, so it has no key {key:?}"
                            ))
                        })?;
                        match json.get(key) {
                            Some(serde_json::Value::String(v)) => v.clone(),
                            Some(_) => {
                                return Err(fail(format!(
                                    "key {key:?} of the secret is not a string"
                                )));
                            }
                            None => return Err(fail(format!("the secret has no key {key:?}"))),
                        }
                    }
                }
            }
        };
        if value.trim().is_empty() {
            return Err(fail("the value is empty".into()));
        }
        Ok(Secret::new(value.trim().to_owned()))
    }
}

/// What a person needs to fix it: not found, or which permission is missing.
fn explain<E>(e: &aws_sdk_secretsmanager::error::SdkError<E>, permissions: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default();
    let message = e
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| e.to_string());
    match code {
        "ParameterNotFound" | "ResourceNotFoundException" => format!("not found ({code})"),
        "AccessDeniedException" | "AccessDenied" => {
            format!("access denied: the function's role needs {permissions} ({message})")
        }
        "" => format!("the request failed: {}", crate::error::chain(e)),
        _ => format!("{code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(
            TokenRef::parse("ssm:/pyexec/github-token").unwrap(),
            TokenRef::Ssm("/pyexec/github-token".into())
        );
        assert_eq!(
            TokenRef::parse("secretsmanager:git").unwrap(),
            TokenRef::SecretsManager {
                id: "git".into(),
                key: None
            }
        );
        assert_eq!(
            TokenRef::parse("secretsmanager:arn:aws:secretsmanager:us-east-1:111111111111:secret:git-AbCdEf#token").unwrap(),
            TokenRef::SecretsManager { id: "arn:aws:secretsmanager:us-east-1:111111111111:secret:git-AbCdEf".into(), key: Some("token".into()) }
        );
        for bad in ["ssm:", "vault:x", "secretsmanager:#k", "secretsmanager:x#"] {
            let e = TokenRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("repository.token_ref"), "{bad}: {e}");
        }
    }
}
