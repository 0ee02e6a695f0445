//! Replays the fuzzing corpus (`fuzz/corpus/<target>/`) through the same
//! checks as the fuzz targets, so every input the fuzzer kept — crashes it
//! found included — stays a regression test under `cargo test`.

use std::path::{Component, Path};

use pyexec_runtime::job::normalize_script;
use pyexec_runtime::{Args, Job, Settings};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/artifacts")
        .join(target);
    if let Ok(found) = std::fs::read_dir(artifacts) {
        inputs.extend(found.map(|e| std::fs::read(e.unwrap().path()).unwrap()));
    }
    assert!(!inputs.is_empty(), "empty corpus for {target}");
    inputs
}

#[test]
fn job_corpus() {
    let lambda = Settings::for_lambda(|name| {
        (name == "PYEXEC_ALLOWED_GIT_HOSTS").then(|| "github.com,127.0.0.1".to_owned())
    });
    let local = Settings::local();
    for input in corpus("job") {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&input)
            && let Ok(job) = Job::parse(value)
        {
            let _ = job.validate(&lambda);
            let _ = job.validate(&local);
        }
    }
}

#[test]
fn args_corpus() {
    for input in corpus("args") {
        if let Ok(line) = String::from_utf8(input)
            && let Ok(args) = Args::Line(line).to_vec()
        {
            assert!(args.iter().all(|a| !a.contains('\0')));
        }
    }
}

#[test]
fn script_path_corpus() {
    for input in corpus("script_path") {
        if let Ok(script) = String::from_utf8(input)
            && let Ok(path) = normalize_script(&script)
        {
            assert!(
                path.components().all(|c| matches!(c, Component::Normal(_))),
                "{script:?} -> {path:?}"
            );
        }
    }
}
