use std::process::ExitCode;

use clap::Parser;
use pyexec_controller::cli::{Cli, Command};
use pyexec_controller::progress::Progress;
use pyexec_controller::{render, run};

/// Exit code for errors and bad usage (SPEC.md).
const EXIT_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PYEXEC_LOG").unwrap_or_else(|_| level.into()))
        .init();
    match dispatch(&cli).await {
        Ok(code) => code,
        Err(e) => {
            // The whole chain: "cannot write x: permission denied".
            eprintln!("pyexec: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn dispatch(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run(args) => {
            let id = uuid::Uuid::new_v4().to_string();
            let outcome = run::run(args, id, Progress::new()).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&outcome.result)?);
            } else {
                print!("{}", render::summary(&outcome.result));
                println!("result: {}", outcome.out_dir.join("result.json").display());
            }
            Ok(ExitCode::from(outcome.result.execution_status.exit_code() as u8))
        }
    }
}
