//! The `pyexec` command line.

use clap::{Parser, Subcommand};

use crate::run::RunArgs;

#[derive(Debug, Parser)]
#[command(name = "pyexec", version, about = "Run Python scripts from Git repositories, locally or in AWS Lambda in your accounts")]
pub struct Cli {
    /// Print only the result JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job on this machine with the same executor as the Lambda runtime.
    Run(RunArgs),
}
