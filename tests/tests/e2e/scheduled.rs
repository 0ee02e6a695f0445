//! Unattended operation: tokens by reference (SSM SecureString, Secrets
//! Manager) resolved by the real `bootstrap` under RIE from moto, artifacts
//! uploaded to moto's S3, and EventBridge Scheduler schedules in a target
//! account (moto) whose stored job runs through RIE.

use std::path::Path;

use aws_config::SdkConfig;
use pyexec_tests::fixture::RepoBuilder;
use serde_json::{Value, json};

use crate::lambda::{BUCKET, Stack};
use crate::util::*;

/// Parameters and secrets the jobs refer to.
async fn store_secrets(endpoint: &str) {
    let sdk = moto_sdk(endpoint).await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    ssm.put_parameter()
        .name("/pyexec/token")
        .value(TOKEN)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name("/pyexec/blank")
        .value(" ")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret()
        .name("git-plain")
        .secret_string(TOKEN)
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("git-json")
        .secret_string(json!({"token": TOKEN, "user": "git"}).to_string())
        .send()
        .await
        .unwrap();
}

fn with_ref(s: &Stack, script: &str, token_ref: &str) -> Value {
    json!({"repository": {"url": s.git.url("ops"), "token_ref": token_ref, "ref": "main"}, "script": script, "s3_bucket": BUCKET})
}

#[tokio::test(flavor = "multi_thread")]
async fn token_refs_resolve_and_never_leak() {
    let s = tokio::task::spawn_blocking(|| {
        Stack::start("token-ref", 60, &[], |root| {
            let mut repo = RepoBuilder::new(root, "leaky");
            repo.file("echo.py", format!("print('token is', {TOKEN:?})\n"));
            repo.commit("leak");
        })
    })
    .await
    .unwrap();
    // The runtime reaches SSM and Secrets Manager in moto too.
    let endpoint = s.moto.endpoint();
    store_secrets(&endpoint).await;
    let s = std::sync::Arc::new(s);
    let call = |payload: Value, status: &'static str| {
        let s = s.clone();
        async move {
            tokio::task::spawn_blocking(move || s.expect(&payload, status))
                .await
                .unwrap()
        }
    };

    for r in [
        "ssm:/pyexec/token",
        "secretsmanager:git-plain",
        "secretsmanager:git-json#token",
    ] {
        let v = call(with_ref(&s, "/jobs/hello.py", r), "SUCCEEDED").await;
        assert_eq!(v["commit"], s.fixture.main.as_str(), "{r}");
    }
    for (r, needle) in [
        ("ssm:/pyexec/missing", "not found"),
        (
            "secretsmanager:git-json#password",
            "has no key \"password\"",
        ),
        ("secretsmanager:git-plain#token", "not a JSON object"),
        ("ssm:/pyexec/blank", "empty"),
        ("vault:/x", "must start with ssm: or secretsmanager:"),
    ] {
        let v = call(with_ref(&s, "/jobs/hello.py", r), "ERROR").await;
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle) && msg.contains(r), "{r}: {v:#}");
    }
    let mut leak = with_ref(&s, "/echo.py", "ssm:/pyexec/token");
    leak["repository"]["url"] = json!(s.git.url("leaky"));
    let v = call(leak, "SUCCEEDED").await;
    assert_eq!(
        v["output"], "token is ***\n",
        "the resolved token is redacted like a given one"
    );

    // The value appears in no result, log or S3 object.
    s.assert_secret_not_stored(TOKEN);
}

const ARTIFACTS: &str = r#"
import os
d = os.environ["PYEXEC_ARTIFACTS"]
os.makedirs(os.path.join(d, "sub"))
open(os.path.join(d, "report.csv"), "w").write("a,b\n1,2\n")
open(os.path.join(d, "sub", "detail.txt"), "w").write("x" * 5000)
open(os.path.join(d, "empty.txt"), "w").close()
os.symlink("/etc/passwd", os.path.join(d, "passwd"))
print("wrote")
"#;

fn artifacts_repo(root: &Path) {
    let mut repo = RepoBuilder::new(root, "art");
    repo.file("art.py", ARTIFACTS);
    repo.commit("artifacts");
}

fn artifacts_job(s: &Stack) -> Value {
    json!({"repository": {"url": s.git.url("art"), "token": TOKEN}, "script": "art.py", "s3_bucket": BUCKET})
}

#[test]
fn artifacts_are_uploaded_and_the_cap_is_reported() {
    // 4,096 bytes: report.csv (8) and empty.txt (0) fit, sub/detail.txt (5,000) does not.
    let s = Stack::start(
        "artifacts",
        60,
        &[("PYEXEC_MAX_ARTIFACT_BYTES", "4096")],
        artifacts_repo,
    );
    let v = s.expect(&artifacts_job(&s), "SUCCEEDED");
    let id = v["request_id"].as_str().unwrap();
    let listed: Vec<(String, u64)> = v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_owned(),
                a["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let base = format!("python-exec/{id}/artifacts/");
    assert_eq!(
        listed,
        vec![
            (format!("{base}empty.txt"), 0),
            (format!("{base}report.csv"), 8)
        ],
        "{v:#}"
    );
    assert_eq!(v["artifacts_truncated"], true, "the cap is reported");
    assert_eq!(
        s.moto
            .get_object(BUCKET, &format!("{base}report.csv"))
            .unwrap(),
        b"a,b\n1,2\n"
    );
    assert_eq!(
        s.moto
            .get_object(BUCKET, &format!("{base}empty.txt"))
            .unwrap(),
        b""
    );
    assert!(
        s.moto
            .get_object(BUCKET, &format!("{base}passwd"))
            .is_none(),
        "symlinks are not followed"
    );

    // Without the cap every file goes, with its size.
    let s = Stack::start("artifacts-all", 60, &[], artifacts_repo);
    let v = s.expect(&artifacts_job(&s), "SUCCEEDED");
    let id = v["request_id"].as_str().unwrap();
    assert_eq!(v["artifacts_truncated"], false);
    let sizes: Vec<u64> = v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![0, 8, 5000]);
    let detail = s
        .moto
        .get_object(
            BUCKET,
            &format!("python-exec/{id}/artifacts/sub/detail.txt"),
        )
        .unwrap();
    assert_eq!(detail.len(), 5000);
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_in_a_target_account_run_through_rie() {
    let s = tokio::task::spawn_blocking(|| Stack::start("schedule", 60, &[], |_| {}))
        .await
        .unwrap();
    let endpoint = s.moto.endpoint();
    store_secrets(&endpoint).await;
    let cfg = s.dir.path().join("pyexec.toml");
    let url = s.git.url("ops");
    std::fs::write(
        &cfg,
        format!(
            r#"
[function]
name = "function"
image_uri = "111111111111.dkr.ecr.us-east-1.amazonaws.com/pyexec:1"

[targets.a]
role_arn = "arn:aws:iam::111111111111:role/PyexecAssumeRole"
external_id = "ext-a"
region = "us-east-1"

[repositories.ops]
url = "{url}"
ref = "main"
token_ssm = "/pyexec/token"

[repositories.plain]
url = "{url}"
token_env = "OPS_TOKEN"
"#
        ),
    )
    .unwrap();
    // The function exists in the target account (deployed through moto).
    let target_sdk = {
        let base = moto_sdk(&endpoint).await;
        let (config, path) = (
            pyexec_controller::config::Config::parse(&std::fs::read_to_string(&cfg).unwrap(), &cfg)
                .unwrap(),
            cfg.clone(),
        );
        let target = config.target("a", &path).unwrap();
        let sdk = pyexec_controller::aws::target_config(&base, &target, "test")
            .await
            .unwrap();
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        aws_sdk_iam::Client::new(&sdk)
            .create_role()
            .role_name("PyexecAssumeRole")
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .unwrap();
        sdk
    };
    let env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ENDPOINT_URL_LAMBDA", s.rie.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_MAX_ATTEMPTS", "1".into()),
        ("OPS_TOKEN", TOKEN.into()),
    ];
    let dir = s.dir.path().to_owned();
    let cli = move |args: Vec<String>, endpoint_lambda: bool| {
        let env = env.clone();
        let dir = dir.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let env: Vec<(&str, &str)> = env
                    .iter()
                    .filter(|(k, _)| endpoint_lambda || *k != "AWS_ENDPOINT_URL_LAMBDA")
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                pyexec(&dir, &args, &env)
            })
            .await
            .unwrap()
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Deploy into moto (Lambda there), then schedule.
    let r = cli(args(&["deploy", "--target", "a"]), false).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A repository whose token is an environment variable is refused.
    let r = cli(
        args(&[
            "schedule",
            "create",
            "bad",
            "--target",
            "a",
            "--repo",
            "plain",
            "--script",
            "/jobs/hello.py",
            "--rate",
            "1 hour",
        ]),
        false,
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("token_ssm") && r.stderr.contains("OPS_TOKEN"),
        "{}",
        r.stderr
    );

    let r = cli(
        args(&[
            "schedule",
            "create",
            "nightly",
            "--target",
            "a",
            "--repo",
            "ops",
            "--script",
            "/jobs/hello.py",
            "--cron",
            "0 3 * * ? *",
            "--timezone",
            "Europe/Berlin",
            "--retries",
            "2",
            "--",
            "--dry-run",
        ]),
        false,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created = r.json();
    assert_eq!(created["expression"], "cron(0 3 * * ? *)");
    assert_eq!(created["timezone"], "Europe/Berlin");
    assert!(
        created["function_arn"]
            .as_str()
            .unwrap()
            .contains(":111111111111:function:function"),
        "{created:#}"
    );
    assert!(
        created["role_arn"]
            .as_str()
            .unwrap()
            .contains("111111111111:role/pyexec-scheduler-function"),
        "{created:#}"
    );
    let stored = &created["job"];
    assert_eq!(stored["repository"]["token_ref"], "ssm:/pyexec/token");
    assert!(stored["repository"].get("token").is_none());
    assert!(
        !created.to_string().contains(TOKEN),
        "the stored job holds no secret"
    );

    // The schedule is in the target account, through assume-role.
    let listed = aws_sdk_scheduler_list(&target_sdk).await;
    assert_eq!(listed, vec!["nightly".to_owned()]);
    let r = cli(args(&["schedule", "list", "--target", "a"]), false).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = cli(
        args(&["schedule", "describe", "nightly", "--target", "a"]),
        false,
    )
    .await;
    assert_eq!(r.json()["retries"], 2);

    // run-now: the stored job, through RIE, cloning with the token from SSM.
    let r = cli(
        args(&["schedule", "run-now", "nightly", "--target", "a"]),
        true,
    )
    .await;
    let v = r.expect(0, "SUCCEEDED");
    assert!(
        v["log"]
            .as_str()
            .unwrap()
            .contains("hello from ['--dry-run']"),
        "{v:#}"
    );

    let r = cli(
        args(&["schedule", "delete", "nightly", "--target", "a"]),
        false,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(aws_sdk_scheduler_list(&target_sdk).await.is_empty());
    let r = cli(
        args(&["schedule", "describe", "nightly", "--target", "a"]),
        false,
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no schedule \"nightly\""), "{}", r.stderr);
}

/// Schedules in the pyexec group, read straight from moto.
async fn aws_sdk_scheduler_list(sdk: &SdkConfig) -> Vec<String> {
    let client = aws_sdk_scheduler::Client::new(sdk);
    let out = client
        .list_schedules()
        .group_name("pyexec")
        .send()
        .await
        .unwrap();
    out.schedules()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .collect()
}
