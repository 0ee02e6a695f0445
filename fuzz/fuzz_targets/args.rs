//! The POSIX-shell splitting of a string `args`: a vector or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyexec_runtime::Args;

fuzz_target!(|line: String| {
    if let Ok(args) = Args::Line(line).to_vec() {
        assert!(args.iter().all(|a| !a.contains('\0')));
    }
});
