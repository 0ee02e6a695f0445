//! The script-path resolver: a path inside the checkout (no `..`, not
//! absolute, not empty) or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyexec_runtime::job::normalize_script;
use std::path::Component;

fuzz_target!(|script: String| {
    if let Ok(path) = normalize_script(&script) {
        assert!(!path.as_os_str().is_empty());
        assert!(path.components().all(|c| matches!(c, Component::Normal(_))), "{script:?} -> {path:?}");
    }
});
