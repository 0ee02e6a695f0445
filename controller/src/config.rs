//! `pyexec.toml`: the function to deploy, the target accounts, and the
//! repositories jobs come from. Tokens are never stored here: a repository
//! names the environment variable (or SSM parameter / secret) that holds one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Lambda's bounds, checked before any AWS call.
pub const MEMORY_MB: (u32, u32) = (128, 10_240);
pub const TIMEOUT_SECONDS: (u32, u32) = (1, 900);
pub const EPHEMERAL_MB: (u32, u32) = (512, 10_240);
pub const EXTERNAL_ID_CHARS: (usize, usize) = (2, 1_224);

pub const DEFAULT_FUNCTION_NAME: &str = "pyexec";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub function: FunctionConfig,
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
    #[serde(default)]
    pub repositories: BTreeMap<String, RepoConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    #[serde(default = "default_name")]
    pub name: String,
    pub image_uri: Option<String>,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    #[serde(default = "default_ephemeral")]
    pub ephemeral_storage_mb: u32,
    /// `PYEXEC_ALLOWED_GIT_HOSTS` of the function.
    #[serde(default)]
    pub allowed_git_hosts: Vec<String>,
    /// More environment for the function (e.g. `SSL_CERT_FILE`).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

fn default_name() -> String {
    DEFAULT_FUNCTION_NAME.to_owned()
}
fn default_memory() -> u32 {
    1024
}
fn default_timeout() -> u32 {
    900
}
fn default_ephemeral() -> u32 {
    512
}

impl Default for FunctionConfig {
    fn default() -> Self {
        FunctionConfig {
            name: default_name(),
            image_uri: None,
            memory_mb: default_memory(),
            timeout_seconds: default_timeout(),
            ephemeral_storage_mb: default_ephemeral(),
            allowed_git_hosts: Vec::new(),
            environment: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub region: Option<String>,
    /// The function's execution role; defaults to `role_arn` (the seed's trust
    /// policy lets lambda.amazonaws.com assume it).
    pub execution_role_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub url: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub username: Option<String>,
    /// Environment variable holding the token (read at invoke time).
    pub token_env: Option<String>,
    /// SSM SecureString parameter holding the token (resolved by the runtime).
    pub token_ssm: Option<String>,
    /// Secrets Manager secret (`name-or-arn[#json-key]`) holding the token.
    pub token_secret: Option<String>,
}

/// A target with everything required present and in bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    pub alias: String,
    pub role_arn: String,
    pub account_id: String,
    pub external_id: Option<String>,
    pub region: Option<String>,
    pub execution_role_arn: String,
}

impl Config {
    /// `--config`, else `./pyexec.toml`. The default file may be absent (an
    /// empty config); a file named explicitly must exist.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, PathBuf), Error> {
        let path = explicit
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("pyexec.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                return Ok((Config::default(), path));
            }
            Err(e) => return Err(Error::io("cannot read config file", &path)(e)),
        };
        let config = Config::parse(&text, &path)?;
        Ok((config, path))
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let bad = |key: String, reason: String| Error::Config {
            path: path.to_owned(),
            key,
            reason,
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines with a source excerpt; keep
            // the first line and name the key through its span.
            let reason = e.message().lines().next().unwrap_or_default().to_owned();
            let key = e
                .span()
                .map(|s| text[..s.start].lines().count().max(1))
                .map(|line| format!("line {line}"))
                .unwrap_or_default();
            bad(key, reason)
        })?;
        config
            .function
            .check()
            .map_err(|(key, reason)| bad(format!("function.{key}"), reason))?;
        for (alias, target) in &config.targets {
            target
                .check()
                .map_err(|(key, reason)| bad(format!("targets.{alias}.{key}"), reason))?;
        }
        for (alias, repo) in &config.repositories {
            let n = [&repo.token_env, &repo.token_ssm, &repo.token_secret]
                .iter()
                .filter(|t| t.is_some())
                .count();
            if n > 1 {
                return Err(bad(
                    format!("repositories.{alias}"),
                    "give one of token_env, token_ssm, token_secret".into(),
                ));
            }
        }
        Ok(config)
    }

    pub fn target(&self, alias: &str, path: &Path) -> Result<ResolvedTarget, Error> {
        let t = self
            .targets
            .get(alias)
            .ok_or_else(|| Error::UnknownTarget {
                alias: alias.to_owned(),
                path: path.to_owned(),
                known: self.targets.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let role_arn = t.role_arn.clone().ok_or_else(|| Error::Config {
            path: path.to_owned(),
            key: format!("targets.{alias}.role_arn"),
            reason: "is missing".into(),
        })?;
        let account_id = account_of(&role_arn).unwrap_or_default().to_owned();
        Ok(ResolvedTarget {
            alias: alias.to_owned(),
            execution_role_arn: t
                .execution_role_arn
                .clone()
                .unwrap_or_else(|| role_arn.clone()),
            role_arn,
            account_id,
            external_id: t.external_id.clone(),
            region: t.region.clone(),
        })
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    v: T,
    (lo, hi): (T, T),
    unit: &str,
) -> Result<(), (String, String)> {
    if v < lo || v > hi {
        Err((
            key.to_owned(),
            format!("{v} is out of Lambda's range {lo}-{hi} {unit}"),
        ))
    } else {
        Ok(())
    }
}

impl FunctionConfig {
    pub fn check(&self) -> Result<(), (String, String)> {
        in_range("memory_mb", self.memory_mb, MEMORY_MB, "MB")?;
        in_range(
            "timeout_seconds",
            self.timeout_seconds,
            TIMEOUT_SECONDS,
            "s",
        )?;
        in_range(
            "ephemeral_storage_mb",
            self.ephemeral_storage_mb,
            EPHEMERAL_MB,
            "MB",
        )?;
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                "name".into(),
                format!(
                    "{:?} is not a Lambda function name (1-64 letters, digits, - and _)",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

impl Target {
    fn check(&self) -> Result<(), (String, String)> {
        for (key, arn) in [
            ("role_arn", &self.role_arn),
            ("execution_role_arn", &self.execution_role_arn),
        ] {
            if let Some(arn) = arn {
                check_role_arn(arn).map_err(|reason| (key.to_owned(), reason))?;
            }
        }
        if let Some(id) = &self.external_id {
            check_external_id(id).map_err(|reason| ("external_id".to_owned(), reason))?;
        }
        Ok(())
    }
}

/// `arn:aws:iam::<12 digits>:role/<name>`.
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _partition, "iam", "", account, resource] if resource.starts_with("role/") => {
            check_account_id(account)
        }
        _ => Err(format!(
            "{arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
        )),
    }
}

pub fn check_account_id(id: &str) -> Result<(), String> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("account id {id:?} must be 12 digits"))
    }
}

pub fn check_external_id(id: &str) -> Result<(), String> {
    let n = id.chars().count();
    let (lo, hi) = EXTERNAL_ID_CHARS;
    if n < lo || n > hi {
        return Err(format!("ExternalId must be {lo}-{hi} characters, got {n}"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c))
    {
        return Err("ExternalId may only contain letters, digits and +=,.@:/-_".into());
    }
    Ok(())
}

pub fn account_of(role_arn: &str) -> Option<&str> {
    role_arn.split(':').nth(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("pyexec.toml"))
    }

    #[test]
    fn full_config() {
        let c = parse(
            r#"
[function]
name = "pyexec"
image_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pyexec:1"
memory_mb = 2048
allowed_git_hosts = ["github.com"]

[targets.prod]
role_arn = "arn:aws:iam::111111111111:role/SpotConnectAssumeRole"
external_id = "ext-123"
region = "eu-west-1"

[repositories.ops]
url = "https://github.com/acme/ops.git"
token_env = "GITHUB_TOKEN"
"#,
        )
        .unwrap();
        let t = c.target("prod", Path::new("pyexec.toml")).unwrap();
        assert_eq!(t.account_id, "111111111111");
        assert_eq!(t.execution_role_arn, t.role_arn);
        assert_eq!(c.function.timeout_seconds, 900);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = parse("[function]\nmemroy_mb = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pyexec.toml") && e.contains("memroy_mb"), "{e}");
        let e = parse("[function]\nmemory_mb = 64\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("function.memory_mb") && e.contains("128-10240"),
            "{e}"
        );
        let e = parse("[function]\ntimeout_seconds = 901\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1-900"), "{e}");
        let e = parse("[function]\nephemeral_storage_mb = 100\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("512-10240"), "{e}");
        let e = parse("[targets.a]\nrole_arn = \"arn:aws:iam::123:role/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.a.role_arn") && e.contains("12 digits"),
            "{e}"
        );
        let e = parse(
            "[targets.a]\nrole_arn = \"arn:aws:iam::123456789012:role/x\"\nexternal_id = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("2-1224"), "{e}");
        let e = parse("[targets.a]\nregion = \"us-east-1\"\n")
            .unwrap()
            .target("a", Path::new("pyexec.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.a.role_arn") && e.contains("missing"),
            "{e}"
        );
        let e = parse("")
            .unwrap()
            .target("nope", Path::new("pyexec.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        let e =
            parse("[repositories.r]\nurl = \"https://x\"\ntoken_env = \"A\"\ntoken_ssm = \"/p\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("repositories.r"), "{e}");
    }
}
