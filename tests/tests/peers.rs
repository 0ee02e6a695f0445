//! Smoke tests: each real peer works, driven by stock clients (git CLI, ssh,
//! plain HTTP). Needs `scripts/install-peers`.

use std::path::Path;
use std::process::{Command, Output};

use pyexec_tests::fixture::RepoBuilder;
use pyexec_tests::git_http::{GitHttpServer, HttpOpts};
use pyexec_tests::moto::Moto;
use pyexec_tests::rie::Rie;
use pyexec_tests::ssh::SshServer;
use pyexec_tests::{TestDir, procfs_util};

/// A git command isolated from user/system config and prompts.
fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env_remove("SSH_ASKPASS")
        .env_remove("GIT_SSL_CAINFO")
        .env_remove("GIT_SSH_COMMAND");
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("running git")
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A repository with a script, a branch, a tag and a symlink; returns
/// (main sha, feature sha).
fn sample_repo(root: &Path, name: &str) -> (String, String) {
    let mut repo = RepoBuilder::new(root, name);
    repo.file("jobs/report.py", "print('hello')\n")
        .executable("bin/run.sh", "#!/bin/sh\necho run\n")
        .symlink("link.py", "jobs/report.py");
    let main = repo.commit("first");
    repo.tag("v1").branch("feature");
    repo.file("jobs/feature.py", "print('feature')\n");
    let feature = repo.commit("feature work");
    assert_ne!(main, feature);
    (main, feature)
}

fn assert_clone_ok(out: &Output, checkout: &Path, want_head: &str) {
    assert!(out.status.success(), "clone failed: {}", describe(out));
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(checkout)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), want_head);
    assert_eq!(
        std::fs::read_to_string(checkout.join("jobs/report.py")).unwrap(),
        "print('hello')\n"
    );
}

#[test]
fn fixture_repo_has_branches_tags_and_modes() {
    let t = TestDir::new("fixture");
    let (main, feature) = sample_repo(t.path(), "sample");
    let bare = t.path().join("sample.git");
    let rev = |r: &str| {
        let out = output(git(&bare).args(["rev-parse", r]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(rev("refs/heads/main"), main);
    assert_eq!(rev("refs/tags/v1"), main);
    assert_eq!(rev("refs/heads/feature"), feature);
    assert_eq!(rev("HEAD"), main, "the default branch stays main");
    let tree = output(git(&bare).args(["ls-tree", "-r", &feature]));
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(
        tree.contains("100755 blob") && tree.contains("bin/run.sh"),
        "{tree}"
    );
    assert!(
        tree.contains("120000 blob") && tree.contains("link.py"),
        "{tree}"
    );
    assert!(tree.contains("jobs/feature.py"), "{tree}");
    let cfg = output(git(&bare).args(["config", "uploadpack.allowAnySHA1InWant"]));
    assert_eq!(String::from_utf8_lossy(&cfg.stdout).trim(), "true");
}

#[test]
fn http_basic_auth_is_checked() {
    let t = TestDir::new("http-auth");
    let (main, feature) = sample_repo(t.path(), "ops");
    let server = GitHttpServer::start(
        t.path(),
        HttpOpts {
            tls: false,
            auth: Some(("alice".into(), "s3cret".into())),
        },
    );
    let url = server.url("ops");
    let with_creds =
        |user: &str, pass: &str| url.replacen("http://", &format!("http://{user}:{pass}@"), 1);

    let out = output(git(t.path()).args([
        "clone",
        "-q",
        "--depth",
        "1",
        &with_creds("alice", "s3cret"),
        "good",
    ]));
    assert_clone_ok(&out, &t.path().join("good"), &main);

    // A branch, shallow.
    let out = output(git(t.path()).args([
        "clone",
        "-q",
        "--depth",
        "1",
        "-b",
        "feature",
        &with_creds("alice", "s3cret"),
        "feat",
    ]));
    assert_clone_ok(&out, &t.path().join("feat"), &feature);
    assert!(t.path().join("feat/jobs/feature.py").is_file());

    let out = output(git(t.path()).args(["clone", "-q", &with_creds("alice", "wrong"), "bad"]));
    assert!(
        !out.status.success(),
        "wrong password must fail: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Authentication failed")
            || String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        describe(&out)
    );
    let out = output(git(t.path()).args(["clone", "-q", &url, "anon"]));
    assert!(
        !out.status.success(),
        "no credentials must fail: {}",
        describe(&out)
    );
}

#[test]
fn https_with_test_ca() {
    let t = TestDir::new("https");
    let (main, _) = sample_repo(t.path(), "ops");
    let server = GitHttpServer::start(
        t.path(),
        HttpOpts {
            tls: true,
            auth: Some(("x-access-token".into(), "tok".into())),
        },
    );
    let ca = server.ca_cert().expect("a CA with tls");
    let url = server.url("ops");
    let authed = url.replacen("https://", "https://x-access-token:tok@", 1);

    let out = output(
        git(t.path())
            .env("GIT_SSL_CAINFO", &ca)
            .args(["clone", "-q", "--depth", "1", &authed, "good"]),
    );
    assert_clone_ok(&out, &t.path().join("good"), &main);

    // Without the CA the server is not trusted.
    let out = output(git(t.path()).args(["clone", "-q", &authed, "untrusted"]));
    assert!(
        !out.status.success(),
        "unknown CA must fail: {}",
        describe(&out)
    );

    // localhost is in the certificate too.
    let localhost = authed.replacen("127.0.0.1", "localhost", 1);
    let out = output(
        git(t.path())
            .env("GIT_SSL_CAINFO", &ca)
            .args(["ls-remote", &localhost]),
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("refs/tags/v1"));
}

#[test]
fn ssh_key_auth_and_host_key_pinning() {
    let t = TestDir::new("ssh");
    let (main, _) = sample_repo(t.path(), "ops");
    let server = SshServer::start(t.path());
    let url = server.url("ops");

    let key = server.client_key_path();
    assert!(
        server
            .client_private_key()
            .contains("BEGIN OPENSSH PRIVATE KEY")
    );

    let ssh_cmd = |known_hosts: &str| {
        let file = t.path().join(format!("known_hosts_{}", known_hosts.len()));
        std::fs::write(&file, known_hosts).unwrap();
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
             -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes",
            key.display(),
            file.display()
        )
    };

    let known = server.known_hosts();
    assert!(
        known.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 AAAA", server.port())),
        "{known}"
    );
    let out = output(
        git(t.path())
            .env("GIT_SSH_COMMAND", ssh_cmd(&known))
            .args(["clone", "-q", "--depth", "1", &url, "good"]),
    );
    assert!(
        out.status.success(),
        "{}\nsshd log:\n{}",
        describe(&out),
        server.log()
    );
    assert_clone_ok(&out, &t.path().join("good"), &main);

    let wrong = server.wrong_known_hosts();
    assert_ne!(wrong, known);
    let out = output(
        git(t.path())
            .env(
                "GIT_SSH_COMMAND",
                format!("{} -o HostKeyAlgorithms=ssh-ed25519", ssh_cmd(&wrong)),
            )
            .args(["clone", "-q", &url, "bad"]),
    );
    assert!(
        !out.status.success(),
        "wrong host key must fail: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HOST IDENTIFICATION HAS CHANGED")
            || String::from_utf8_lossy(&out.stderr).contains("Host key verification failed"),
        "{}",
        describe(&out)
    );
}

#[test]
fn moto_s3_round_trip() {
    let moto = Moto::start();
    moto.create_bucket("results");
    assert_eq!(moto.get_object("results", "missing"), None);
    moto.put_object("results", "python-exec/req-1/result.json", b"{\"ok\":true}");
    moto.put_object("results", "python-exec/req-1/log & more.txt", b"log");
    moto.put_object("results", "other/x", b"x");
    assert_eq!(
        moto.get_object("results", "python-exec/req-1/result.json")
            .as_deref(),
        Some(&b"{\"ok\":true}"[..])
    );
    assert_eq!(
        moto.list_keys("results", "python-exec/"),
        vec![
            "python-exec/req-1/log & more.txt".to_string(),
            "python-exec/req-1/result.json".to_string()
        ]
    );
    assert_eq!(moto.list_keys("results", "").len(), 3);
    moto.reset();
    moto.create_bucket("results");
    assert!(moto.list_keys("results", "").is_empty());
}

/// A Runtime API loop in sh + curl that echoes each payload back.
const ECHO_BOOTSTRAP: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo "echo runtime up, tmp has $(ls -A /tmp | wc -l) entries, ECHO_MODE=$ECHO_MODE"
while true; do
  headers="$(mktemp)"
  body="$(mktemp)"
  curl -sS -D "$headers" -o "$body" "$api/invocation/next"
  id="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$headers" | cut -d: -f2 | tr -d ' \r')"
  echo "handling $id"
  curl -sS -X POST --data-binary "@$body" "$api/invocation/$id/response" >/dev/null
  rm -f "$headers" "$body"
done
"#;

#[test]
fn rie_runs_a_bootstrap() {
    let t = TestDir::new("rie");
    let bootstrap = t.path().join("bootstrap");
    std::fs::write(&bootstrap, ECHO_BOOTSTRAP).unwrap();
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // A marker in the host's /tmp must be invisible inside.
    let marker = tempfile::NamedTempFile::new_in("/tmp").unwrap();

    let rie = Rie::start(&bootstrap, &[("ECHO_MODE", "1")], 10);
    let (status, body) = rie.invoke(br#"{"hello":"world"}"#);
    assert_eq!(
        status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&body),
        rie.logs()
    );
    assert_eq!(body, br#"{"hello":"world"}"#);
    let (status, body) = rie.invoke(b"second");
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"second"[..]),
        "{}",
        rie.logs()
    );

    let pid = rie.runtime_pid().expect("the bootstrap is running");
    assert!(procfs_util::is_alive(pid));
    assert!(procfs_util::vm_hwm_kib(pid).is_some());

    let logs = rie.logs();
    assert!(
        logs.contains("echo runtime up, tmp has 0 entries, ECHO_MODE=1"),
        "{logs}"
    );
    assert!(logs.contains("handling "), "{logs}");
    assert!(marker.path().exists(), "the host's /tmp is untouched");

    drop(rie);
    assert!(
        !procfs_util::is_alive(pid),
        "the runtime is gone with the RIE"
    );
}
