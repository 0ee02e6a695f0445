//! The script-path resolver (`checks::script_path`).
#![no_main]

// Each target uses one of the checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|script: String| checks::script_path(&script));
