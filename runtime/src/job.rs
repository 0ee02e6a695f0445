//! The job (invocation payload) as SPEC.md defines it, and its validation.
//!
//! Parsing is strict (`deny_unknown_fields`) so that a typo fails loudly; every
//! error names the field that is wrong. Validation happens before any network
//! or disk work.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::Error;
use crate::settings::Settings;

/// Default key prefix in the bucket.
pub const DEFAULT_S3_PREFIX: &str = "python-exec/";

/// A job as received. Use [`Job::parse`] and [`Job::validate`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub repository: Repository,
    pub script: String,
    #[serde(default, skip_serializing_if = "Args::is_empty")]
    pub args: Args,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_prefix: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub url: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_private_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_known_hosts: Option<String>,
}

/// A credential. `Debug` never shows it; it serializes as-is because the
/// controller has to send it in the payload.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `args`: an array of strings, or one string split like a POSIX shell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Args {
    List(Vec<String>),
    Line(String),
}

impl Default for Args {
    fn default() -> Self {
        Args::List(Vec::new())
    }
}

impl Args {
    fn is_empty(&self) -> bool {
        matches!(self, Args::List(v) if v.is_empty())
    }

    /// The argument vector, splitting a string with POSIX shell rules.
    pub fn to_vec(&self) -> Result<Vec<String>, Error> {
        let args = match self {
            Args::List(v) => v.clone(),
            Args::Line(line) => shell_words::split(line).map_err(|e| {
                Error::invalid("args", format!("cannot split {line:?} like a shell: {e}"))
            })?,
        };
        if args.iter().any(|a| a.contains('\0')) {
            return Err(Error::invalid("args", "an argument contains a NUL byte"));
        }
        Ok(args)
    }
}

// Hand-written rather than `#[serde(untagged)]`: untagged enums only say
// "did not match any variant", which does not tell a user what to send.
impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings or one string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Args, E> {
                Ok(Args::Line(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Args, E> {
                Ok(Args::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Args::List(out))
            }
        }
        deserializer.deserialize_any(ArgsVisitor)
    }
}

/// Where the repository lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Https,
    Http,
    Ssh,
    Local,
}

/// A parsed, allowed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// What libgit2 is given.
    pub url: String,
    pub transport: Transport,
    /// Lower-cased host name (`None` for local repositories).
    pub host: Option<String>,
    /// SSH user from the URL (`git@host:path`).
    pub ssh_user: Option<String>,
}

/// What the git ref names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The remote's default branch.
    Default,
    /// A branch or tag name (or a full `refs/...` name).
    Name(String),
    /// A full 40-hex commit id.
    Commit(String),
}

/// How to authenticate the clone.
#[derive(Clone, PartialEq)]
pub enum Auth {
    None,
    Token {
        username: String,
        token: Secret,
    },
    /// Resolved at run time from SSM or Secrets Manager.
    TokenRef {
        username: String,
        reference: String,
    },
    Ssh {
        username: String,
        private_key: Secret,
        known_hosts: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token { username, .. } => write!(f, "Token({username}, ***)"),
            Auth::TokenRef {
                username,
                reference,
            } => write!(f, "TokenRef({username}, {reference})"),
            Auth::Ssh { username, .. } => write!(f, "Ssh({username}, ***)"),
        }
    }
}

/// A job that passed validation: everything the executor needs, normalized.
#[derive(Debug, Clone)]
pub struct ValidJob {
    pub repo: RepoUrl,
    pub git_ref: GitRef,
    pub auth: Auth,
    /// Script path relative to the checkout root, free of `..`.
    pub script: PathBuf,
    /// As the job gave it, for messages.
    pub script_display: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub timeout_seconds: Option<u64>,
    pub s3_bucket: Option<String>,
    /// Ends with `/` unless empty.
    pub s3_prefix: String,
}

impl ValidJob {
    /// Values that must never appear in logs, results or S3 objects.
    pub fn secrets(&self) -> Vec<String> {
        match &self.auth {
            Auth::Token { token, .. } => vec![token.expose().to_owned()],
            // Each line of the key body: a key that is printed gets every
            // line redacted, and short lines (headers) carry no secret.
            Auth::Ssh { private_key, .. } => private_key
                .expose()
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                .map(str::to_owned)
                .collect(),
            Auth::None | Auth::TokenRef { .. } => Vec::new(),
        }
    }
}

impl Job {
    /// Parse a payload, naming the path of the offending field on error.
    pub fn parse(payload: serde_json::Value) -> Result<Job, Error> {
        if !payload.is_object() {
            return Err(Error::invalid("job", "the payload must be a JSON object"));
        }
        serde_path_to_error::deserialize(payload).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "job".to_owned() } else { path };
            Error::invalid(field, e.into_inner().to_string())
        })
    }

    /// Check everything that can be checked before touching the network.
    pub fn validate(&self, settings: &Settings) -> Result<ValidJob, Error> {
        let repo = parse_repo_url(&self.repository.url, settings)?;
        let git_ref = parse_ref(self.repository.git_ref.as_deref())?;
        let auth = self.auth(&repo)?;
        let script = normalize_script(&self.script)?;
        let args = self.args.to_vec()?;
        for (name, value) in &self.env {
            check_env_name(name)?;
            if value.contains('\0') {
                return Err(Error::invalid(
                    format!("env.{name}"),
                    "the value contains a NUL byte",
                ));
            }
        }
        if self.timeout_seconds == Some(0) {
            return Err(Error::invalid("timeout_seconds", "must be at least 1"));
        }
        if let Some(bucket) = &self.s3_bucket {
            check_bucket(bucket)?;
        }
        let s3_prefix = normalize_prefix(self.s3_prefix.as_deref().unwrap_or(DEFAULT_S3_PREFIX))?;
        Ok(ValidJob {
            repo,
            git_ref,
            auth,
            script,
            script_display: self.script.clone(),
            args,
            env: self.env.clone(),
            timeout_seconds: self.timeout_seconds,
            s3_bucket: self.s3_bucket.clone(),
            s3_prefix,
        })
    }

    fn auth(&self, repo: &RepoUrl) -> Result<Auth, Error> {
        let r = &self.repository;
        let nonempty = |field: &str, v: &Option<Secret>| -> Result<(), Error> {
            match v {
                Some(s) if s.expose().trim().is_empty() => {
                    Err(Error::invalid(format!("repository.{field}"), "is empty"))
                }
                _ => Ok(()),
            }
        };
        nonempty("token", &r.token)?;
        nonempty("ssh_private_key", &r.ssh_private_key)?;
        if r.token.is_some() && r.token_ref.is_some() {
            return Err(Error::invalid(
                "repository.token_ref",
                "give either token or token_ref, not both",
            ));
        }
        match repo.transport {
            Transport::Ssh => {
                if r.token.is_some() || r.token_ref.is_some() {
                    return Err(Error::invalid(
                        "repository.token",
                        "a token is for https URLs; an ssh URL takes ssh_private_key",
                    ));
                }
                let (Some(key), Some(known_hosts)) = (&r.ssh_private_key, &r.ssh_known_hosts)
                else {
                    return Err(Error::invalid(
                        "repository.url",
                        "an ssh URL needs both ssh_private_key and ssh_known_hosts (host keys are pinned, never trusted on first use)",
                    ));
                };
                if known_hosts.trim().is_empty() {
                    return Err(Error::invalid("repository.ssh_known_hosts", "is empty"));
                }
                let username = r
                    .username
                    .clone()
                    .or_else(|| repo.ssh_user.clone())
                    .unwrap_or_else(|| "git".to_owned());
                Ok(Auth::Ssh {
                    username,
                    private_key: key.clone(),
                    known_hosts: known_hosts.clone(),
                })
            }
            Transport::Https | Transport::Http | Transport::Local => {
                if r.ssh_private_key.is_some() || r.ssh_known_hosts.is_some() {
                    return Err(Error::invalid(
                        "repository.ssh_private_key",
                        "ssh_private_key and ssh_known_hosts are for ssh URLs",
                    ));
                }
                let username = || {
                    r.username
                        .clone()
                        .unwrap_or_else(|| default_username(repo.host.as_deref()).to_owned())
                };
                match (&r.token, &r.token_ref) {
                    (Some(token), _) => Ok(Auth::Token {
                        username: username(),
                        token: token.clone(),
                    }),
                    (None, Some(reference)) => {
                        crate::secrets::TokenRef::parse(reference)?;
                        Ok(Auth::TokenRef {
                            username: username(),
                            reference: reference.clone(),
                        })
                    }
                    (None, None) => Ok(Auth::None),
                }
            }
        }
    }
}

/// The user name each forge expects with a token over HTTPS.
pub fn default_username(host: Option<&str>) -> &'static str {
    match host {
        Some("github.com") => "x-access-token",
        Some("bitbucket.org") => "x-token-auth",
        Some("gitlab.com") => "oauth2",
        _ => "git",
    }
}

fn parse_repo_url(raw: &str, settings: &Settings) -> Result<RepoUrl, Error> {
    let field = "repository.url";
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::invalid(field, "is empty"));
    }
    // scp-like syntax: user@host:path (no scheme, a colon before any slash).
    if !raw.contains("://") {
        if let Some((user_host, path)) = raw.split_once(':')
            && !user_host.contains('/')
            && !path.is_empty()
            && let Some((user, host)) = user_host.split_once('@')
        {
            let host = host.to_ascii_lowercase();
            check_host(&host, settings)?;
            return Ok(RepoUrl {
                url: raw.to_owned(),
                transport: Transport::Ssh,
                host: Some(host),
                ssh_user: Some(user.to_owned()),
            });
        }
        return local_repo(raw, settings);
    }
    let url = url::Url::parse(raw)
        .map_err(|e| Error::invalid(field, format!("{raw:?} is not a URL: {e}")))?;
    let transport = match url.scheme() {
        "https" => Transport::Https,
        "http" if settings.allow_http => Transport::Http,
        "http" => {
            return Err(Error::invalid(
                field,
                "plain http:// is not allowed (it would send the token in clear); use https://",
            ));
        }
        "ssh" => Transport::Ssh,
        "file" => return local_repo(url.path(), settings),
        other => {
            return Err(Error::invalid(
                field,
                format!("scheme {other}:// is not supported; use https:// or ssh://"),
            ));
        }
    };
    if url.password().is_some() || (transport != Transport::Ssh && !url.username().is_empty()) {
        return Err(Error::invalid(
            field,
            "credentials in the URL are not accepted; put the token in repository.token or token_ref",
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Error::invalid(field, "the URL has no host"))?
        .to_ascii_lowercase();
    check_host(&host, settings)?;
    let ssh_user = (transport == Transport::Ssh && !url.username().is_empty())
        .then(|| url.username().to_owned());
    Ok(RepoUrl {
        url: url.to_string(),
        transport,
        host: Some(host),
        ssh_user,
    })
}

fn local_repo(path: &str, settings: &Settings) -> Result<RepoUrl, Error> {
    if !settings.allow_local {
        return Err(Error::invalid(
            "repository.url",
            "local paths and file:// URLs are only allowed with the local CLI; use https:// or ssh://",
        ));
    }
    Ok(RepoUrl {
        url: path.to_owned(),
        transport: Transport::Local,
        host: None,
        ssh_user: None,
    })
}

fn check_host(host: &str, settings: &Settings) -> Result<(), Error> {
    match &settings.allowed_git_hosts {
        Some(allowed) if !allowed.iter().any(|h| h == host) => Err(Error::HostNotAllowed {
            host: host.to_owned(),
            allowed: allowed.join(","),
        }),
        _ => Ok(()),
    }
}

fn parse_ref(r: Option<&str>) -> Result<GitRef, Error> {
    let Some(r) = r.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(GitRef::Default);
    };
    if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(GitRef::Commit(r.to_ascii_lowercase()));
    }
    let full = if r.starts_with("refs/") {
        r.to_owned()
    } else {
        format!("refs/heads/{r}")
    };
    if !git2::Reference::is_valid_name(&full) {
        return Err(Error::invalid(
            "repository.ref",
            format!("{r:?} is not a valid branch, tag or full commit SHA"),
        ));
    }
    Ok(GitRef::Name(r.to_owned()))
}

/// The script path relative to the checkout root. A leading `/` means the
/// root; `..` is refused outright (symlinks are checked after the clone).
pub fn normalize_script(script: &str) -> Result<PathBuf, Error> {
    let field = "script";
    if script.trim().is_empty() {
        return Err(Error::invalid(field, "is empty"));
    }
    if script.contains('\0') {
        return Err(Error::invalid(field, "contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(script).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                return Err(Error::ScriptOutsideCheckout {
                    script: script.to_owned(),
                });
            }
            Component::Prefix(_) => return Err(Error::invalid(field, "is not a POSIX path")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::invalid(
            field,
            "names the repository root, not a file",
        ));
    }
    Ok(out)
}

/// Names the runtime keeps for itself.
pub fn is_reserved_env(name: &str) -> bool {
    name.starts_with("AWS_LAMBDA_")
        || name.starts_with("PYEXEC_")
        || name.starts_with("LD_")
        || name == "_HANDLER"
}

fn check_env_name(name: &str) -> Result<(), Error> {
    let field = format!("env.{name}");
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(Error::invalid(
            field,
            "is not a valid variable name (letters, digits and _, not starting with a digit)",
        ));
    }
    if is_reserved_env(name) {
        return Err(Error::invalid(
            field,
            "is reserved for the runtime (AWS_LAMBDA_*, PYEXEC_*, LD_*, _HANDLER)",
        ));
    }
    Ok(())
}

fn check_bucket(bucket: &str) -> Result<(), Error> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "s3_bucket",
            format!(
                "{bucket:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-')"
            ),
        ))
    }
}

fn normalize_prefix(prefix: &str) -> Result<String, Error> {
    if prefix.starts_with('/') || prefix.split('/').any(|p| p == "..") {
        return Err(Error::invalid(
            "s3_prefix",
            "must be a relative key prefix without '..' (e.g. python-exec/)",
        ));
    }
    let mut p = prefix.to_owned();
    if !p.is_empty() && !p.ends_with('/') {
        p.push('/');
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lambda() -> Settings {
        Settings::for_lambda(|_| None)
    }

    fn job(v: serde_json::Value) -> Result<ValidJob, Error> {
        Job::parse(v)?.validate(&lambda())
    }

    #[test]
    fn minimal_job_defaults() {
        let j = job(json!({"repository": {"url": "https://github.com/acme/ops.git"}, "script": "/jobs/x.py"})).unwrap();
        assert_eq!(j.script, PathBuf::from("jobs/x.py"));
        assert_eq!(j.git_ref, GitRef::Default);
        assert_eq!(j.s3_prefix, "python-exec/");
        assert!(matches!(j.auth, Auth::None));
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let e = job(json!({"repository": {"url": "https://github.com/a/b"}})).unwrap_err();
        assert_eq!(e.kind(), "invalid_job");
        assert!(e.to_string().contains("missing field `script`"), "{e}");
        let e = job(
            json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "scirpt": 1}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `scirpt`"), "{e}");
        let e = job(json!({"repository": {"url": "https://github.com/a/b", "tokne": "x"}, "script": "x.py"})).unwrap_err();
        assert!(
            e.to_string().contains("repository") && e.to_string().contains("tokne"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let e = job(
            json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "args": 3}),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("args")
                && e.to_string().contains("an array of strings or one string"),
            "{e}"
        );
        let e = job(json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "timeout_seconds": "10"})).unwrap_err();
        assert!(e.to_string().contains("timeout_seconds"), "{e}");
        let e = job(json!([1, 2])).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
    }

    #[test]
    fn args_split_like_a_shell() {
        let j = job(json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "args": "--name 'a b' \"c\\\"d\""})).unwrap();
        assert_eq!(j.args, vec!["--name", "a b", "c\"d"]);
        let e = job(json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "args": "'open"})).unwrap_err();
        assert!(e.to_string().contains("args"), "{e}");
    }

    #[test]
    fn script_paths_that_escape_are_refused() {
        for s in ["../x.py", "/jobs/../../etc/passwd", "a/../../b.py"] {
            let e = job(json!({"repository": {"url": "https://github.com/a/b"}, "script": s}))
                .unwrap_err();
            assert_eq!(e.kind(), "script_outside_checkout", "{s}: {e}");
        }
        // Absolute paths mean the repository root.
        assert_eq!(
            normalize_script("/etc/passwd").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(
            job(json!({"repository": {"url": "https://github.com/a/b"}, "script": "/"}))
                .unwrap_err()
                .kind(),
            "invalid_job"
        );
    }

    #[test]
    fn refs_are_classified() {
        assert_eq!(
            parse_ref(Some("main")).unwrap(),
            GitRef::Name("main".into())
        );
        let sha = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(
            parse_ref(Some(sha)).unwrap(),
            GitRef::Commit(sha.to_ascii_lowercase())
        );
        let e = parse_ref(Some("bad..ref")).unwrap_err();
        assert!(e.to_string().contains("repository.ref"), "{e}");
    }

    #[test]
    fn hosts_and_schemes_follow_policy() {
        let e = job(json!({"repository": {"url": "https://evil.example/a.git"}, "script": "x.py"}))
            .unwrap_err();
        assert_eq!(e.kind(), "host_not_allowed");
        assert!(e.to_string().contains("evil.example"), "{e}");
        for url in [
            "http://github.com/a/b",
            "file:///srv/repo",
            "/srv/repo",
            "ftp://github.com/x",
        ] {
            let e = job(json!({"repository": {"url": url}, "script": "x.py"})).unwrap_err();
            assert_eq!(e.kind(), "invalid_job", "{url}");
        }
        let e = job(json!({"repository": {"url": "https://u:p@github.com/a/b"}, "script": "x.py"}))
            .unwrap_err();
        assert!(e.to_string().contains("credentials in the URL"), "{e}");
        let local = Job::parse(json!({"repository": {"url": "/srv/repo"}, "script": "x.py"}))
            .unwrap()
            .validate(&Settings::local())
            .unwrap();
        assert_eq!(local.repo.transport, Transport::Local);
    }

    #[test]
    fn ssh_needs_pinned_host_keys() {
        let e = job(json!({"repository": {"url": "git@github.com:acme/ops.git", "ssh_private_key": "k"}, "script": "x.py"})).unwrap_err();
        assert!(e.to_string().contains("ssh_known_hosts"), "{e}");
        let j = job(json!({"repository": {"url": "git@github.com:acme/ops.git", "ssh_private_key": "k", "ssh_known_hosts": "github.com ssh-ed25519 AAAA"}, "script": "x.py"})).unwrap();
        assert!(matches!(j.auth, Auth::Ssh { ref username, .. } if username == "git"));
    }

    #[test]
    fn token_usernames_per_forge() {
        let j = job(json!({"repository": {"url": "https://bitbucket.org/a/b", "token": "t0k"}, "script": "x.py"})).unwrap();
        assert!(matches!(j.auth, Auth::Token { ref username, .. } if username == "x-token-auth"));
        assert_eq!(j.secrets(), vec!["t0k"]);
        assert!(!format!("{j:?}").contains("t0k"));
    }

    #[test]
    fn reserved_env_names_are_refused() {
        for name in [
            "AWS_LAMBDA_RUNTIME_API",
            "PYEXEC_OUTPUT",
            "LD_PRELOAD",
            "_HANDLER",
            "1BAD",
            "A-B",
        ] {
            let e = job(json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "env": {name: "x"}})).unwrap_err();
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn bucket_and_prefix() {
        let j = job(json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "s3_bucket": "my-bucket", "s3_prefix": "runs"})).unwrap();
        assert_eq!(j.s3_prefix, "runs/");
        let e = job(json!({"repository": {"url": "https://github.com/a/b"}, "script": "x.py", "s3_bucket": "My_Bucket"})).unwrap_err();
        assert!(e.to_string().contains("s3_bucket"), "{e}");
    }
}
