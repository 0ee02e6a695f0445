//! Cloning through `pyexec run` (the local executor) from real git servers:
//! smart HTTP with Basic auth (nginx + git http-backend), HTTPS with a test
//! CA, and SSH (Debian's sshd) with key auth and pinned host keys.

use pyexec_tests::git_http::{GitHttpServer, HttpOpts};
use pyexec_tests::ssh::SshServer;

use crate::util::*;

fn http_server(dir: &std::path::Path, tls: bool) -> GitHttpServer {
    GitHttpServer::start(
        dir,
        HttpOpts {
            tls,
            auth: Some((USER.to_owned(), TOKEN.to_owned())),
        },
    )
}

#[test]
fn http_basic_auth_token_is_checked() {
    let t = test_dir("http-auth");
    let fx = ops_repo(t.path());
    let server = http_server(t.path(), false);
    let url = server.url("ops");

    let with_token = |token: &str, args: &[&str]| {
        let run = ["run", "--repo", &url, "--token-env", "GIT_TOKEN"];
        pyexec(
            t.path(),
            &[&run[..], args].concat(),
            &[("GIT_TOKEN", token)],
        )
    };
    let ok = with_token(TOKEN, &["--script", "/jobs/hello.py", "--", "a", "b"]);
    let v = ok.expect(0, "SUCCEEDED");
    assert_eq!(
        v["commit"],
        fx.main.as_str(),
        "the default branch is the server's HEAD"
    );
    assert!(
        v["log"].as_str().unwrap().contains("hello from ['a', 'b']"),
        "{v:#}"
    );

    let wrong = "ghp_wrongWrongWrong";
    let bad = with_token(wrong, &["--script", "/jobs/hello.py"]);
    let v = bad.expect(2, "ERROR");
    assert_error(&v, "auth_failed", "rejected the token");
    assert!(
        !bad.stdout.contains(wrong) && !bad.stderr.contains(wrong),
        "the token leaked:\n{}\n{}",
        bad.stdout,
        bad.stderr
    );

    let none = pyexec(
        t.path(),
        &["run", "--repo", &url, "--script", "/jobs/hello.py"],
        &[],
    );
    let v = none.expect(2, "ERROR");
    assert_error(&v, "auth_failed", "gave none");
}

#[test]
fn refs_branch_tag_and_commit() {
    let t = test_dir("refs");
    let fx = ops_repo(t.path());
    let server = http_server(t.path(), false);
    let url = server.url("ops");
    let env = [("GIT_TOKEN", TOKEN)];
    let run = |r: &str, script: &str| {
        pyexec(
            t.path(),
            &[
                "run",
                "--repo",
                &url,
                "--token-env",
                "GIT_TOKEN",
                "--ref",
                r,
                "--script",
                script,
            ],
            &env,
        )
    };

    for (r, sha, printed) in [
        ("main", &fx.main, "v2"),
        ("feature", &fx.feature, "feature"),
        ("v1", &fx.tagged, "v1"),
        (fx.main.as_str(), &fx.main, "v2"),
    ] {
        let v = run(r, "/version.py").expect(0, "SUCCEEDED");
        assert_eq!(v["commit"], sha.as_str(), "ref {r}");
        assert_eq!(v["output"], format!("{printed}\n"), "ref {r}: {v:#}");
    }
    // A commit that is no branch tip: fetched by id (the server allows it).
    let v = run(&fx.tagged, "/version.py").expect(0, "SUCCEEDED");
    assert_eq!(v["output"], "v1\n");

    let v = run("no-such-branch", "/version.py").expect(2, "ERROR");
    assert_error(&v, "ref_not_found", "no-such-branch");
    let v = run("0000000000000000000000000000000000000000", "/version.py").expect(2, "ERROR");
    assert_eq!(v["error"]["kind"], "ref_not_found", "{v:#}");

    let v = run("main", "/jobs/missing.py").expect(2, "ERROR");
    assert_error(&v, "script_not_found", "/jobs/missing.py");
}

#[test]
fn https_with_a_private_ca() {
    let t = test_dir("https");
    let fx = ops_repo(t.path());
    let server = http_server(t.path(), true);
    let url = server.url("ops");
    let ca = server.ca_cert().expect("tls server has a CA");
    let ca = ca.to_str().unwrap();
    let args = [
        "run",
        "--repo",
        &url,
        "--token-env",
        "GIT_TOKEN",
        "--ref",
        "main",
        "--script",
        "/version.py",
    ];

    let v = pyexec(
        t.path(),
        &args,
        &[("GIT_TOKEN", TOKEN), ("SSL_CERT_FILE", ca)],
    )
    .expect(0, "SUCCEEDED");
    assert_eq!(v["commit"], fx.main.as_str());

    // Without the CA the server's certificate is not trusted.
    let v = pyexec(
        t.path(),
        &args,
        &[
            ("GIT_TOKEN", TOKEN),
            ("SSL_CERT_FILE", "/nonexistent/ca.pem"),
        ],
    )
    .expect(2, "ERROR");
    assert_error(&v, "tls_failed", "SSL_CERT_FILE");
}

#[test]
fn ssh_key_auth_with_pinned_host_key() {
    let t = test_dir("ssh");
    let fx = ops_repo(t.path());
    let server = SshServer::start(t.path());
    let key = server.client_key_path();
    let good = t.path().join("known_hosts");
    let wrong = t.path().join("wrong_known_hosts");
    std::fs::write(&good, server.known_hosts()).unwrap();
    std::fs::write(&wrong, server.wrong_known_hosts()).unwrap();
    let url = server.url("ops");
    let run = |kh: &std::path::Path| {
        pyexec(
            t.path(),
            &[
                "run",
                "--repo",
                &url,
                "--ref",
                "main",
                "--ssh-key",
                key.to_str().unwrap(),
                "--known-hosts",
                kh.to_str().unwrap(),
                "--script",
                "/version.py",
            ],
            &[],
        )
    };

    let v = run(&good).expect(0, "SUCCEEDED");
    assert_eq!(v["commit"], fx.main.as_str());

    let r = run(&wrong);
    let v = r.expect(2, "ERROR");
    assert_eq!(v["error"]["kind"], "host_key_mismatch", "{v:#}");
    let key_text = server.client_private_key();
    let key_line = key_text.lines().nth(1).unwrap();
    assert!(!r.stdout.contains(key_line) && !r.stderr.contains(key_line));
}

#[test]
fn local_repositories_and_bad_input() {
    let t = test_dir("local");
    let fx = ops_repo(t.path());
    let repo = t.path().join("ops.git");
    let repo_arg = repo.to_str().unwrap();
    let run_local = |args: &[&str]| {
        pyexec(
            t.path(),
            &[&["run", "--repo", repo_arg][..], args].concat(),
            &[],
        )
    };
    let v = run_local(&["--ref", "main", "--script", "/jobs/output.py"]).expect(0, "SUCCEEDED");
    assert_eq!(v["commit"], fx.main.as_str());
    assert_eq!(
        v["output"],
        serde_json::json!({"deleted": 3}),
        "PYEXEC_OUTPUT wins over stdout"
    );

    let file_url = format!("file://{}", repo.display());
    let v = pyexec(
        t.path(),
        &[
            "run",
            "--repo",
            &file_url,
            "--ref",
            "main",
            "--script",
            "jobs/json_stdout.py",
        ],
        &[],
    )
    .expect(0, "SUCCEEDED");
    assert_eq!(
        v["output"],
        serde_json::json!({"a": [1, 2]}),
        "stdout that is one JSON document is parsed"
    );

    let r = run_local(&["--ref", "main", "--script", "/jobs/exit3.py"]);
    let v = r.expect(1, "FAILED");
    assert_eq!(v["exit_code"], 3);

    let r = run_local(&[
        "--ref",
        "main",
        "--script",
        "/jobs/sleep.py",
        "--timeout",
        "1",
    ]);
    let v = r.expect(124, "TIMED_OUT");
    assert!(
        v["log"].as_str().unwrap().contains("time limit reached"),
        "{v:#}"
    );

    // The result and the full log are written to --out.
    let out = t.path().join("out");
    run_local(&[
        "--ref",
        "main",
        "--out",
        out.to_str().unwrap(),
        "--script",
        "/jobs/hello.py",
    ])
    .expect(0, "SUCCEEDED");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(saved["execution_status"], "SUCCEEDED");
    assert!(
        std::fs::read_to_string(out.join("log.txt"))
            .unwrap()
            .contains("to stderr")
    );

    // Bad usage: exit 2 with the reason.
    let r = run_local(&["--script", "x.py", "--env", "NOEQUALS"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("expected KEY=VALUE"), "{}", r.stderr);
    let r = run_local(&["--script", "x.py", "--token-env", "UNSET_VAR"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("UNSET_VAR"), "{}", r.stderr);
    let v = run_local(&["--script", "x.py", "--env", "LD_PRELOAD=/x.so"]).expect(2, "ERROR");
    assert_error(&v, "invalid_job", "env.LD_PRELOAD");
}
