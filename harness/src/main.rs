//! The `perflab` binary: runs suites, ingests engine output, shows history, finds change points.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use perflab::{
    AnalyzeOptions, BenchmarkingFramework, Capabilities, FrameworkConfig, HistoricalDatabase, Run,
    RunnerInfo, SuiteReport, analyze_file, detect_git, ingest_bmf, ingest_criterion,
    ingest_gungraun,
};
use tracing_subscriber::EnvFilter;

use crate::cli::{AnalyzeArgs, Cli, Commands, HistoryCommand, IngestArgs, RunArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("PERFLAB_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Runs the command. Only `run` needs an async runtime (the framework's seed API is async);
/// the other commands use the history directly. Polars' lazy engine must not be driven from a
/// current-thread runtime's own thread, so no command calls it from there.
fn dispatch(cli: Cli) -> Result<ExitCode> {
    let history = cli
        .history
        .clone()
        .unwrap_or_else(|| default_history(&cli.workspace));
    let mut config = FrameworkConfig::new(&cli.workspace);
    config.history_dir = history;
    match cli.command {
        Commands::Run(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(run(config, args))
        }
        Commands::Ingest(args) => ingest(config, args),
        Commands::History { command } => history_cmd(config, command),
        Commands::Analyze(args) => analyze(&args),
    }
}

fn analyze(args: &AnalyzeArgs) -> Result<ExitCode> {
    let options = AnalyzeOptions {
        column: args.column.clone(),
        series_column: args.series_column.clone(),
        ..AnalyzeOptions::default()
    };
    let report = analyze_file(&args.input, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_table());
    }
    Ok(ExitCode::SUCCESS)
}

fn default_history(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("perflab").join("history"),
        _ => workspace.join(perflab::DEFAULT_HISTORY_DIR),
    }
}

async fn run(mut config: FrameworkConfig, args: RunArgs) -> Result<ExitCode> {
    config.filter = args.filter;
    config.quick = args.quick;
    config.capabilities = Capabilities::detect(None);
    let framework = BenchmarkingFramework::new(config);
    let report = framework
        .run_suite(&args.suite)
        .await
        .with_context(|| format!("running suite `{}`", args.suite))?;
    print_report(&framework, &report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn ingest(config: FrameworkConfig, args: IngestArgs) -> Result<ExitCode> {
    let runner = RunnerInfo::detect(None).context("describing this runner")?;
    let mut run = Run::new(&args.suite, runner, detect_git(&config.workspace_root));
    if let Some(dir) = &args.criterion {
        run.results.extend(ingest_criterion(dir)?);
    }
    if let Some(dir) = &args.gungraun {
        run.results.extend(ingest_gungraun(dir)?);
    }
    if let Some(file) = &args.bmf {
        run.results.extend(ingest_bmf(file)?);
    }
    let framework = BenchmarkingFramework::new(config);
    let history_file = framework.historical_data().append(&run)?;
    let targets = framework.generate_performance_report(&run)?.targets;
    let report = SuiteReport {
        run,
        targets,
        history_file,
        work_dir: None,
    };
    print_report(&framework, &report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(framework: &BenchmarkingFramework, report: &SuiteReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let mut table = framework.generate_performance_report(&report.run)?;
    table.targets.clone_from(&report.targets);
    print!("{}", table.render_table());
    println!();
    println!("run id: {}", report.run.id);
    println!("stored: {}", report.history_file.display());
    Ok(())
}

fn history_cmd(config: FrameworkConfig, command: HistoryCommand) -> Result<ExitCode> {
    let db = HistoricalDatabase::new(config.history_dir.clone());
    match command {
        HistoryCommand::List { json } => {
            let listing = db.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listing.runs)?);
            } else if listing.runs.is_empty() {
                println!("no runs in {}", db.dir().display());
            } else {
                println!(
                    "{:<27}  {:<24}  {:<12}  {:<16}  {:<10}  {:>7}  {:>6}  {:>7}",
                    "run", "timestamp", "suite", "runner", "commit", "results", "failed", "skipped"
                );
                for r in &listing.runs {
                    let commit = r
                        .git_commit
                        .as_deref()
                        .map_or("-", |c| &c[..c.len().min(10)]);
                    println!(
                        "{:<27}  {:<24}  {:<12}  {:<16}  {:<10}  {:>7}  {:>6}  {:>7}",
                        r.id,
                        r.timestamp,
                        r.suite,
                        r.fingerprint,
                        commit,
                        r.measurements,
                        r.failures,
                        r.skipped
                    );
                }
            }
            if !listing.unreadable.is_empty() {
                for e in &listing.unreadable {
                    eprintln!("error: {e}");
                }
                bail!(
                    "{} history file(s) could not be read (left untouched)",
                    listing.unreadable.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        HistoryCommand::Show { run, json } => {
            let run = db.load(&run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                let framework = BenchmarkingFramework::new(config);
                print!(
                    "{}",
                    framework.generate_performance_report(&run)?.render_table()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
