//! The control plane: config errors, assume-role, deploy and invoke.
//! Against moto (STS, IAM, Lambda, S3) and AWS's RIE running the real
//! `bootstrap`; the paths moto cannot produce against `aws_double`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_sdk_lambda::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_lambda::config::{ConfigBag, Intercept, RuntimeComponents};
use backon::ExponentialBuilder;
use pyexec_controller::aws;
use pyexec_controller::config::Config;
use pyexec_controller::deploy::{self, DeployOptions, FunctionSpec, Plan};
use pyexec_tests::moto::Moto;
use serde_json::{Value, json};

use crate::aws_double::{AwsDouble, Behaviour};
use crate::lambda::{BUCKET, Stack};
use crate::util::*;

const CONFIG: &str = r#"
[function]
name = "pyexec"
image_uri = "111111111111.dkr.ecr.us-east-1.amazonaws.com/pyexec:1"
memory_mb = 1024
allowed_git_hosts = ["github.com", "127.0.0.1"]

[targets.a]
role_arn = "arn:aws:iam::111111111111:role/PyexecAssumeRole"
external_id = "ext-a"
region = "us-east-1"

[targets.b]
role_arn = "arn:aws:iam::222222222222:role/PyexecAssumeRole"
external_id = "ext-b"
region = "us-east-1"

[targets.c]
role_arn = "arn:aws:iam::333333333333:role/PyexecAssumeRole"
external_id = "ext-c"
region = "us-east-1"

[repositories.ops]
url = "https://github.com/acme/ops.git"
token_env = "OPS_TOKEN"
"#;

/// Environment for `pyexec` against an endpoint: test credentials, one try
/// per request unless a test wants the SDK's retries.
fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_MAX_ATTEMPTS", "1".into()),
        ("OPS_TOKEN", TOKEN.into()),
    ]
}

fn run_cli(dir: &Path, args: &[&str], env: &[(&'static str, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pyexec(dir, args, &env)
}

fn config() -> (Config, std::path::PathBuf) {
    let path = std::path::PathBuf::from("pyexec.toml");
    (Config::parse(CONFIG, &path).unwrap(), path)
}

#[test]
fn bad_config_gives_one_line_errors() {
    let t = test_dir("bad-config");
    let write = |name: &str, text: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let missing = t.path().join("nope.toml");
    let unknown = write("unknown.toml", "[function]\nmemory = 512\n");
    let no_role = write("norole.toml", "[targets.a]\nregion = \"us-east-1\"\n");
    let good = write("good.toml", CONFIG);
    let cases: [(&str, Vec<&str>, &str); 5] = [
        (
            missing.to_str().unwrap(),
            vec!["deploy", "--target", "a"],
            "cannot read config file",
        ),
        (
            &unknown,
            vec!["deploy", "--target", "a"],
            "unknown field `memory`",
        ),
        (
            &no_role,
            vec!["deploy", "--target", "a"],
            "targets.a.role_arn: is missing",
        ),
        (
            &good,
            vec![
                "invoke", "--target", "zz", "--repo", "ops", "--script", "/x.py",
            ],
            "target \"zz\" is not in",
        ),
        (
            &good,
            vec![
                "invoke", "--target", "a", "--repo", "ops", "--script", "/x.py",
            ],
            "OPS_TOKEN",
        ),
    ];
    for (file, args, needle) in cases {
        let mut all = vec!["--config", file];
        all.extend(args);
        // No AWS endpoint at all: every one of these must fail before a call.
        let r = pyexec(
            t.path(),
            &all,
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
        );
        assert_eq!(r.code, 2, "{all:?}: {}", r.stderr);
        let line = r.stderr.trim();
        assert!(line.contains(needle), "{all:?}: {line}");
        assert_eq!(line.lines().count(), 1, "one line: {line}");
    }
    // Lambda's bounds, with the bound in the message.
    let low = write("low.toml", "[function]\nmemory_mb = 64\n");
    let r = pyexec(
        t.path(),
        &["--config", &low, "deploy", "--target", "a"],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("128-10240"), "{}", r.stderr);
    let r = pyexec(
        t.path(),
        &["policies", "--host-account", "123", "--external-id", "abc"],
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("12 digits"), "{}", r.stderr);
}

#[test]
fn policies_are_filled_in() {
    let t = test_dir("policies");
    let out = t.path().join("docs");
    let r = pyexec(
        t.path(),
        &[
            "policies",
            "--host-account",
            "123456789012",
            "--external-id",
            "ext-42",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(
        v["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "ext-42"
    );
    let trust: Value =
        serde_json::from_slice(&std::fs::read(out.join("trust-policy.json")).unwrap()).unwrap();
    assert_eq!(trust, v["trust_policy"]);
    assert!(
        out.join("PassRoleToLambdaServiceForTargetAccount.json")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn assume_role_lands_in_each_account() {
    let moto = Moto::start();
    let base = moto_sdk(&moto.endpoint()).await;
    let (config, path) = config();
    for (alias, account) in [("a", "111111111111"), ("b", "222222222222")] {
        let target = config.target(alias, &path).unwrap();
        let sdk = aws::target_config(&base, &target, "test").await.unwrap();
        assert_eq!(aws::caller_account(&sdk).await.unwrap(), account);
    }
}

/// Counts the operations a client sends.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_lambda::error::BoxError> {
        let req = ctx.request();
        let uri = req.uri().split('?').next().unwrap_or_default();
        // Keep the path only: the endpoint's port changes from run to run.
        let path = uri
            .split("://")
            .nth(1)
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(uri);
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {path}", req.method()));
        Ok(())
    }
}

impl Calls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_creates_updates_and_skips_against_moto() {
    let moto = Moto::start();
    let base = moto_sdk(&moto.endpoint()).await;
    let (config, path) = config();
    let target = config.target("a", &path).unwrap();
    let sdk = aws::target_config(&base, &target, "deploy").await.unwrap();
    let calls = Calls::default();
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let fast = DeployOptions {
        wait: std::time::Duration::from_secs(30),
        iam_retry: ExponentialBuilder::default()
            .with_min_delay(std::time::Duration::from_millis(10))
            .with_max_times(2),
    };
    let mut spec = FunctionSpec::new(&config.function, &target, None).unwrap();

    // The execution role does not exist yet: a clear error after bounded retries.
    let e = deploy::deploy(&lambda, &target, &spec, false, &fast)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot assume the execution role") && e.contains("PyexecAssumeRole"),
        "{e}"
    );
    assert_eq!(
        calls
            .take()
            .iter()
            .filter(|c| c.starts_with("POST"))
            .count(),
        3,
        "one try and two retries"
    );

    let iam = aws_sdk_iam::Client::new(&sdk);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name("PyexecAssumeRole")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();

    let dry = deploy::deploy(&lambda, &target, &spec, true, &fast)
        .await
        .unwrap();
    assert_eq!(dry.plan, Plan::Create);
    let reads = calls.take();
    assert!(!reads.is_empty(), "a dry run reads the function");
    assert!(
        reads.iter().all(|c| c.starts_with("GET")),
        "a dry run only reads"
    );

    let created = deploy::deploy(&lambda, &target, &spec, false, &fast)
        .await
        .unwrap();
    assert_eq!(created.plan, Plan::Create);
    assert!(
        created.function_arn.unwrap().contains(":111111111111:"),
        "created in the target account"
    );
    let all = calls.take();
    let writes: Vec<String> = all.into_iter().filter(|c| !c.starts_with("GET")).collect();
    assert_eq!(writes, vec!["POST /2015-03-31/functions"]);

    let same = deploy::deploy(&lambda, &target, &spec, false, &fast)
        .await
        .unwrap();
    assert_eq!(same.plan, Plan::NoChange);
    assert_eq!(
        calls.take(),
        vec!["GET /2015-03-31/functions/pyexec"],
        "nothing changed: one read, no update call"
    );

    spec.image_uri = "111111111111.dkr.ecr.us-east-1.amazonaws.com/pyexec:2".into();
    spec.memory_mb = 2048;
    spec.environment.insert("LOG_LEVEL".into(), "debug".into());
    let updated = deploy::deploy(&lambda, &target, &spec, false, &fast)
        .await
        .unwrap();
    assert_eq!(
        updated.plan,
        Plan::Update {
            code: true,
            configuration: vec!["memory", "environment"]
        }
    );
    let writes: Vec<String> = calls
        .take()
        .into_iter()
        .filter(|c| !c.starts_with("GET"))
        .collect();
    assert_eq!(
        writes,
        vec![
            "PUT /2015-03-31/functions/pyexec/configuration",
            "PUT /2015-03-31/functions/pyexec/code"
        ]
    );
    assert_eq!(deploy::plan(&lambda, &spec).await.unwrap(), Plan::NoChange);
}

#[test]
fn deploy_waits_through_pending_and_conflicts() {
    let t = test_dir("deploy-double");
    let cfg = t.path().join("pyexec.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let double = AwsDouble::start(Behaviour {
        pending_polls: 2,
        ..Behaviour::default()
    });
    let env = aws_env(&double.endpoint);
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", "--target", "a"];
        args.extend_from_slice(extra);
        let r = run_cli(t.path(), &args, &env);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()
    };

    let v = deploy(&["--dry-run"]);
    assert_eq!(v["outcome"]["plan"]["action"], "create");
    assert!(
        !double
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /2015") || r.starts_with("PUT")),
        "a dry run changes nothing"
    );
    double.clear_requests();

    let v = deploy(&[]);
    assert_eq!(v["outcome"]["plan"]["action"], "create");
    let reqs = double.requests();
    assert!(
        reqs.iter()
            .filter(|r| r.starts_with("GET /2015-03-31/functions/pyexec"))
            .count()
            >= 3,
        "waited through Pending: {reqs:?}"
    );
    let sts = double.assume_roles();
    assert_eq!(
        sts[0]["ExternalId"], "ext-a",
        "AssumeRole carries the target's ExternalId"
    );
    assert!(
        sts[0]["RoleSessionName"].starts_with("pyexec-deploy"),
        "{:?}",
        sts[0]
    );

    // Another update is in progress: wait for it, then update.
    double.set(Behaviour {
        pending_polls: 1,
        conflicts: 1,
        ..Behaviour::default()
    });
    double.clear_requests();
    let v = deploy(&[
        "--image-uri",
        "111111111111.dkr.ecr.us-east-1.amazonaws.com/pyexec:2",
    ]);
    assert_eq!(
        v["outcome"]["plan"],
        json!({"action": "update", "code": true, "configuration": []})
    );
    let puts: Vec<String> = double
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT"))
        .collect();
    assert_eq!(puts, vec!["PUT /2015-03-31/functions/pyexec/code"]);

    double.set(Behaviour {
        conflicts: 1,
        ..Behaviour::default()
    });
    let cfg2 = t.path().join("more-memory.toml");
    std::fs::write(
        &cfg2,
        CONFIG.replace("memory_mb = 1024", "memory_mb = 2048"),
    )
    .unwrap();
    let deploy_more_memory = || {
        run_cli(
            t.path(),
            &[
                "--config",
                cfg2.to_str().unwrap(),
                "deploy",
                "--target",
                "a",
                "--image-uri",
                "111111111111.dkr.ecr.us-east-1.amazonaws.com/pyexec:2",
            ],
            &env,
        )
    };
    double.clear_requests();
    let r = deploy_more_memory();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let puts: Vec<String> = double
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT"))
        .collect();
    assert_eq!(
        puts,
        vec!["PUT /2015-03-31/functions/pyexec/configuration"; 2],
        "refused once (ResourceConflictException), then done"
    );

    double.clear_requests();
    let r = deploy_more_memory();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["outcome"]["plan"]["action"], "no_change");
    assert!(
        double
            .requests()
            .iter()
            .all(|r| !r.starts_with("PUT") && !r.starts_with("POST /2015")),
        "no update call"
    );
}

#[test]
fn fan_out_with_a_failing_target_and_throttling() {
    let t = test_dir("fanout");
    std::fs::write(t.path().join("pyexec.toml"), CONFIG).unwrap();
    let double = AwsDouble::start(Behaviour {
        throttles: 1,
        failing_accounts: vec!["333333333333".into()],
        ..Behaviour::default()
    });
    let mut env = aws_env(&double.endpoint);
    // Throttling is retried by the SDK's standard retry policy.
    env.retain(|(k, _)| *k != "AWS_MAX_ATTEMPTS");
    let args = [
        "invoke", "--target", "a", "--target", "b", "--target", "c", "--repo", "ops", "--script",
        "/x.py",
    ];
    let r = run_cli(t.path(), &args, &env);
    assert_eq!(r.code, 2, "the worst status wins: {}", r.stderr);
    let v = r.json();
    let by_target: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["target"].as_str().unwrap().to_owned(),
                o["result"]["execution_status"]
                    .as_str()
                    .unwrap_or("ERROR")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        by_target,
        vec![
            ("a".into(), "SUCCEEDED".into()),
            ("b".into(), "SUCCEEDED".into()),
            ("c".into(), "ERROR".into())
        ]
    );
    assert_eq!(
        v[1]["result"]["output"]["account"], "222222222222",
        "each target runs in its own account"
    );
    assert!(
        v[2]["error"]
            .as_str()
            .unwrap()
            .contains("boom in the runtime"),
        "{v:#}"
    );

    // Text: a summary table.
    let text_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = pyexec_text(t.path(), &args, &text_env).stdout;
    assert!(
        out.contains("TARGET") && out.contains("333333333333") && out.contains("Runtime.ExitError"),
        "{out}"
    );

    // One failing target alone: a one-line error and exit 2.
    let r = run_cli(
        t.path(),
        &[
            "invoke", "--target", "c", "--repo", "ops", "--script", "/x.py",
        ],
        &env,
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("function pyexec failed (Unhandled, Runtime.ExitError): boom in the runtime"),
        "{}",
        r.stderr
    );
}

#[test]
fn invoke_through_rie_with_full_log_from_s3() {
    // The real path: STS and S3 in moto, Lambda Invoke into the real
    // bootstrap under RIE (whose function is always called "function").
    let s = Stack::start("invoke-rie", 120, &[], |_| {});
    let cfg = s.dir.path().join("pyexec.toml");
    std::fs::write(
        &cfg,
        CONFIG.replace("name = \"pyexec\"", "name = \"function\""),
    )
    .unwrap();
    let mut env = aws_env(&s.moto.endpoint());
    env.push(("AWS_ENDPOINT_URL_LAMBDA", s.rie.endpoint()));
    env.push(("GIT_TOKEN", TOKEN.into()));
    let url = s.git.url("ops");
    let r = run_cli(
        s.dir.path(),
        &[
            "invoke",
            "--target",
            "a",
            "--repo",
            &url,
            "--token-env",
            "GIT_TOKEN",
            "--ref",
            "main",
            "--script",
            "/jobs/big.py",
            "--bucket",
            BUCKET,
            "--full-log",
            "--",
            "1",
        ],
        &env,
    );
    let v = r.expect(0, "SUCCEEDED");
    let log = v["log"].as_str().unwrap();
    assert_eq!(v["log_truncated"], false);
    assert!(
        log.len() > 1 << 20 && log.ends_with("last line\n"),
        "the complete 1 MiB log came from S3 ({} bytes)",
        log.len()
    );
    assert_eq!(v["commit"], s.fixture.main.as_str());
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN));
}
