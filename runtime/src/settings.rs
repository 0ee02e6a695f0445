//! Policy and limits of an executor: what the Lambda runtime reads from the
//! function's environment, and what the local CLI allows.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Hosts allowed when `PYEXEC_ALLOWED_GIT_HOSTS` is not set.
pub const DEFAULT_ALLOWED_GIT_HOSTS: &str = "github.com,bitbucket.org,gitlab.com";

/// Names passed from the runtime's environment to the script. The AWS ones
/// are the function role's credentials and region: the script acts on the
/// account. Never `AWS_LAMBDA_RUNTIME_API` or anything git-related.
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "TZ",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
];

#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` allows any host (local CLI).
    pub allowed_git_hosts: Option<Vec<String>>,
    pub allow_http: bool,
    /// `file://` URLs and plain paths.
    pub allow_local: bool,
    /// Where per-job private directories are created.
    pub scratch_dir: PathBuf,
    /// A directory this process owns alone (Lambda's /tmp): whatever a job
    /// leaves there is removed after it. `None` on a shared machine.
    pub sweep_dir: Option<PathBuf>,
    pub python: OsString,
    /// Kept back from the invocation deadline for upload and reply.
    pub reserve: Duration,
    /// Between SIGTERM and SIGKILL at the time limit.
    pub kill_grace: Duration,
    pub clone_max_bytes: u64,
    pub clone_timeout: Duration,
    /// Tail of the log kept in the response.
    pub log_tail_bytes: usize,
    /// Largest `output` (from `$PYEXEC_OUTPUT` or stdout) kept in the response.
    pub max_output_bytes: usize,
    pub max_artifact_bytes: u64,
    /// Environment given to every script (see [`PASSTHROUGH_ENV`]).
    pub base_env: Vec<(String, String)>,
}

impl Settings {
    /// Settings of the Lambda runtime, from the function's environment.
    pub fn for_lambda(var: impl Fn(&str) -> Option<String>) -> Settings {
        let hosts =
            var("PYEXEC_ALLOWED_GIT_HOSTS").unwrap_or_else(|| DEFAULT_ALLOWED_GIT_HOSTS.to_owned());
        let num = |name: &str, default: u64| {
            var(name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let mut base_env: Vec<(String, String)> = PASSTHROUGH_ENV
            .iter()
            .filter_map(|n| var(n).map(|v| (n.to_string(), v)))
            .collect();
        base_env.extend(endpoint_overrides(&var));
        Settings {
            allowed_git_hosts: Some(
                hosts
                    .split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect(),
            ),
            allow_http: var("PYEXEC_ALLOW_HTTP").as_deref() == Some("1"),
            allow_local: false,
            scratch_dir: PathBuf::from(var("TMPDIR").unwrap_or_else(|| "/tmp".to_owned())),
            sweep_dir: Some(PathBuf::from("/tmp")),
            python: var("PYEXEC_PYTHON")
                .unwrap_or_else(|| "python3".to_owned())
                .into(),
            reserve: Duration::from_millis(num("PYEXEC_RESERVE_MS", 5_000)),
            kill_grace: Duration::from_millis(num("PYEXEC_KILL_GRACE_MS", 2_000)),
            clone_max_bytes: num("PYEXEC_CLONE_MAX_BYTES", 1 << 30),
            clone_timeout: Duration::from_secs(num("PYEXEC_CLONE_TIMEOUT_SECONDS", 300)),
            log_tail_bytes: 256 * 1024,
            max_output_bytes: 4 * 1024 * 1024,
            max_artifact_bytes: num("PYEXEC_MAX_ARTIFACT_BYTES", 1 << 30),
            base_env,
        }
    }

    /// Settings of `pyexec run` on a developer's machine: any host, local
    /// repositories, and no sweep of the shared /tmp.
    pub fn local() -> Settings {
        let var = |n: &str| std::env::var(n).ok();
        let mut s = Settings::for_lambda(var);
        s.allowed_git_hosts = None;
        s.allow_http = true;
        s.allow_local = true;
        s.sweep_dir = None;
        s.reserve = Duration::ZERO;
        s.scratch_dir = std::env::temp_dir();
        // HOME moves into the job directory; keep the user's AWS profile and
        // the files it lives in (by default under the user's own HOME).
        s.base_env
            .extend(var("AWS_PROFILE").map(|v| ("AWS_PROFILE".to_owned(), v)));
        let home = var("HOME");
        for (name, file) in [
            ("AWS_CONFIG_FILE", "config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        ] {
            let path = var(name).or_else(|| home.as_ref().map(|h| format!("{h}/.aws/{file}")));
            s.base_env.extend(path.map(|p| (name.to_owned(), p)));
        }
        s
    }
}

/// `AWS_ENDPOINT_URL_<SERVICE>`: an emulator or a private endpoint applies to
/// the script's SDK calls too.
fn endpoint_overrides(var: &impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    [
        "S3",
        "STS",
        "SSM",
        "SECRETS_MANAGER",
        "LAMBDA",
        "EC2",
        "IAM",
    ]
    .iter()
    .filter_map(|s| {
        let name = format!("AWS_ENDPOINT_URL_{s}");
        var(&name).map(|v| (name, v))
    })
    .collect()
}
