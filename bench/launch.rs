//! `bench __launch PROGRAM ARGS…`: what the RIE starts as the runtime. It
//! notes its pid and the CLOCK_MONOTONIC time in `$BENCH_LAUNCH_LOG`, points
//! `AWS_LAMBDA_RUNTIME_API` at `$BENCH_PROXY_API` when set, and execs the
//! runtime: the runtime's cold start is measured from this exec.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::stats::monotonic_ns;

pub fn main(args: &[String]) -> ! {
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: bench __launch PROGRAM [ARGS…]");
        std::process::exit(2);
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    if let Ok(api) = std::env::var("BENCH_PROXY_API") {
        cmd.env("AWS_LAMBDA_RUNTIME_API", api);
    }
    cmd.env_remove("BENCH_PROXY_API");
    let log = std::env::var_os("BENCH_LAUNCH_LOG");
    cmd.env_remove("BENCH_LAUNCH_LOG");
    let file = log.and_then(|log| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ok()
    });
    if let Some(mut f) = file {
        // The time is taken last thing before the exec.
        let line = format!("{} {}\n", std::process::id(), monotonic_ns());
        let _ = f.write_all(line.as_bytes());
    }
    let err = cmd.exec();
    eprintln!("bench __launch: cannot exec {program}: {err}");
    std::process::exit(127);
}
