//! The splitting of a string `args` (`checks::args`).
#![no_main]

// Each target uses one of the checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|line: String| checks::args(line));
