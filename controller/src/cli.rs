//! The `pyexec` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::invoke::InvokeArgs;
use crate::policies::PoliciesArgs;
use crate::run::RunArgs;
use crate::schedule::ScheduleCommand;

#[derive(Debug, Parser)]
#[command(
    name = "pyexec",
    version,
    about = "Run Python scripts from Git repositories, locally or in AWS Lambda in your accounts"
)]
pub struct Cli {
    /// Print only the result JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Config file (default ./pyexec.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Create or update the function in a target account.
    Deploy(DeployArgs),
    /// Run a job in the function of one or more target accounts.
    Invoke(InvokeArgs),
    /// Print the IAM policies and trust relationship a target account needs.
    Policies(PoliciesArgs),
    /// Run jobs on a schedule with EventBridge Scheduler.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Target alias from pyexec.toml.
    #[arg(long)]
    pub target: String,
    /// Image to deploy (default: [function].image_uri).
    #[arg(long)]
    pub image_uri: Option<String>,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}
