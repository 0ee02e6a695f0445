use std::process::ExitCode;

use clap::Parser;
use pyexec_controller::cli::{Cli, Command, DeployArgs};
use pyexec_controller::config::Config;
use pyexec_controller::deploy::{self, DeployOptions, FunctionSpec};
use pyexec_controller::invoke::{self, InvokeArgs};
use pyexec_controller::progress::Progress;
use pyexec_controller::schedule::{self, ScheduleCommand};
use pyexec_controller::{aws, policies, render, run};
use pyexec_runtime::ExecutionStatus;

/// Exit code for errors and bad usage (SPEC.md).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `pyexec run` supervises scripts like the Lambda runtime does.
    match pyexec_runtime::confine::runtime() {
        Ok(rt) => rt.block_on(run_cli(cli)),
        Err(e) => {
            eprintln!("pyexec: error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn run_cli(cli: Cli) -> ExitCode {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PYEXEC_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .init();
    match dispatch(&cli).await {
        Ok(code) => code,
        Err(e) => {
            // The whole chain: "cannot write x: permission denied".
            eprintln!(
                "pyexec: error: {}",
                pyexec_controller::error::chain(e.as_ref())
            );
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn exit(status: ExecutionStatus) -> ExitCode {
    ExitCode::from(status.exit_code() as u8)
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn dispatch(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run(args) => {
            let id = uuid::Uuid::new_v4().to_string();
            let (config, _) = Config::load(cli.config.as_deref())?;
            let outcome = run::run(args, &config, id, Progress::new()).await?;
            if cli.json {
                print_json(&outcome.result)?;
            } else {
                print!("{}", render::summary(&outcome.result));
                println!("result: {}", outcome.out_dir.join("result.json").display());
            }
            Ok(exit(outcome.result.execution_status))
        }
        Command::Policies(args) => {
            let p = policies::policies(args)?;
            if let Some(dir) = &args.out {
                policies::write_files(&p, dir)?;
            }
            if cli.json {
                print_json(&p)?
            } else {
                print!("{}", policies::render(&p))
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy(args) => deploy_cmd(cli, args).await,
        Command::Invoke(args) => invoke_cmd(cli, args).await,
        Command::Schedule(cmd) => schedule_cmd(cli, cmd).await,
    }
}

async fn deploy_cmd(cli: &Cli, args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let (config, path) = Config::load(cli.config.as_deref())?;
    let target = config.target(&args.target, &path)?;
    let spec = FunctionSpec::new(&config.function, &target, args.image_uri.as_deref())?;
    let progress = Progress::new();
    progress.step(&format!("assuming {} in {}", target.role_arn, target.alias));
    let sdk = aws::target_config(&aws::base_config().await, &target, "deploy").await?;
    progress.step(&format!(
        "deploying {} (waiting until it is active and updated)",
        spec.name
    ));
    let outcome = deploy::deploy(
        &aws_sdk_lambda::Client::new(&sdk),
        &target,
        &spec,
        args.dry_run,
        &DeployOptions::default(),
    )
    .await;
    progress.finish();
    let outcome = outcome?;
    if cli.json {
        print_json(&serde_json::json!({"outcome": outcome, "spec": spec}))?;
    } else {
        let verb = if args.dry_run { "would" } else { "did" };
        println!(
            "{}: {} {verb}: {}",
            outcome.target,
            outcome.function,
            outcome.plan.describe()
        );
        if let Some(arn) = &outcome.function_arn {
            println!("function: {arn}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn invoke_cmd(cli: &Cli, args: &InvokeArgs) -> anyhow::Result<ExitCode> {
    let (config, path) = Config::load(cli.config.as_deref())?;
    let prepared = invoke::prepare(args, &config, &path)?;
    let progress = Progress::new();
    progress.step(&format!(
        "invoking {} in {} target(s)",
        config.function.name,
        prepared.targets.len()
    ));
    let outcomes = invoke::invoke_all(args, &config, prepared, &aws::base_config().await).await;
    progress.finish();
    let worst = outcomes
        .iter()
        .map(|o| o.status())
        .max_by_key(|s| s.severity())
        .unwrap_or(ExecutionStatus::Error);
    let single = outcomes.len() == 1 && !args.all_targets;
    if cli.json {
        match (single, outcomes.first()) {
            (true, Some(o)) if o.result.is_some() => print_json(&o.result)?,
            _ => print_json(&outcomes)?,
        }
    } else {
        for o in &outcomes {
            if let Some(r) = &o.result {
                if !single {
                    println!("== {} ({})", o.target, o.account);
                }
                print!("{}", render::summary(r));
                if args.full_log {
                    println!("--- log ---\n{}", r.log);
                }
            }
        }
        if !single {
            print!("{}", render::table(&outcomes));
        }
        if let Some(o) = outcomes.iter().find(|o| single && o.error.is_some()) {
            anyhow::bail!("{}", o.error.clone().unwrap_or_default());
        }
    }
    Ok(exit(worst))
}

async fn schedule_cmd(cli: &Cli, cmd: &ScheduleCommand) -> anyhow::Result<ExitCode> {
    let (config, path) = Config::load(cli.config.as_deref())?;
    let alias = match cmd {
        ScheduleCommand::Create(a) => &a.target.target,
        ScheduleCommand::List(t) => &t.target,
        ScheduleCommand::Describe(n) | ScheduleCommand::Delete(n) | ScheduleCommand::RunNow(n) => {
            &n.target.target
        }
    };
    let target = config.target(alias, &path)?;
    let sdk = async || aws::target_config(&aws::base_config().await, &target, "schedule").await;
    let show = |info: &schedule::ScheduleInfo| -> anyhow::Result<()> {
        if cli.json {
            print_json(info)
        } else {
            println!(
                "{}  {}  {}{}",
                info.name,
                info.state,
                info.expression,
                info.timezone
                    .as_ref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            );
            println!(
                "  function: {}\n  role: {}",
                info.function_arn, info.role_arn
            );
            println!("  job: {}", serde_json::to_string(&info.job)?);
            Ok(())
        }
    };
    match cmd {
        ScheduleCommand::Create(a) => {
            // Everything that can be checked offline is, before any AWS call.
            let expression = schedule::expression(a)?;
            let job = schedule::stored_job(a, &config)?;
            show(&schedule::create(&sdk().await?, &config, &target, a, &expression, &job).await?)?
        }
        ScheduleCommand::Describe(n) => show(&schedule::describe(&sdk().await?, &n.name).await?)?,
        ScheduleCommand::List(_) => {
            let all = schedule::list(&sdk().await?).await?;
            if cli.json {
                print_json(&all)?;
            } else {
                for info in &all {
                    println!("{:<32} {:<9} {}", info.name, info.state, info.expression);
                }
            }
        }
        ScheduleCommand::Delete(n) => {
            schedule::delete(&sdk().await?, &n.name).await?;
            if !cli.json {
                println!("deleted {}", n.name);
            }
        }
        ScheduleCommand::RunNow(n) => {
            let result = schedule::run_now(&sdk().await?, &n.name).await?;
            if cli.json {
                print_json(&result)?;
            } else {
                print!("{}", render::summary(&result));
            }
            return Ok(exit(result.execution_status));
        }
    }
    Ok(ExitCode::SUCCESS)
}
