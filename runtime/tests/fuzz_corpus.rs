//! Replays the fuzzing corpus (`fuzz/corpus/<target>/`) through the same
//! checks as the fuzz targets, so every input the fuzzer kept — crashes it
//! found included — stays a regression test under `cargo test`.

use std::path::Path;

#[path = "../../fuzz/checks.rs"]
mod checks;

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

/// The string a `String` fuzz target gets from these bytes: `arbitrary`
/// takes the valid UTF-8 prefix.
fn as_fuzzed_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    }
}

#[test]
fn job_corpus() {
    corpus("job").iter().for_each(|input| checks::job(input));
}

#[test]
fn args_corpus() {
    for input in corpus("args") {
        checks::args(as_fuzzed_string(input));
    }
}

#[test]
fn script_path_corpus() {
    for input in corpus("script_path") {
        checks::script_path(&as_fuzzed_string(input));
    }
}
