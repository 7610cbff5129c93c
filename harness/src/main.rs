//! The `perflab` binary: runs suites, ingests output, shows and compares history, finds change points.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use perflab::{
    AnalyzeOptions, BaselineError, BaselineStore, BenchmarkingFramework, Capabilities,
    Confirmation, FrameworkConfig, HistoricalComparison, HistoricalDatabase, Regression, Run,
    RunnerInfo, SuiteReport, analyze_file, detect_git, ingest_bmf, ingest_criterion,
    ingest_gungraun,
};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::cli::{
    AnalyzeArgs, BaselineCommand, Cli, Commands, CompareArgs, HistoryCommand, IngestArgs, RunArgs,
};

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
            let (framework, report) = rt.block_on(run(config, &args))?;
            // Comparing drives Polars, which must not run on the runtime's own thread.
            drop(rt);
            after_run(&framework, report, &args)
        }
        Commands::Ingest(args) => ingest(config, args),
        Commands::History { command } => history_cmd(config, command),
        Commands::Analyze(args) => analyze(&args),
        Commands::Compare(args) => compare(config, &args),
        Commands::Baseline { command } => baseline_cmd(config, command),
    }
}

fn baselines(config: &FrameworkConfig) -> BaselineStore {
    BaselineStore::new(config.workspace_root.join("baselines"))
}

/// What `perflab run --json` prints: the run, what it was compared with, the verdicts, and
/// the confirmation of suspected regressions.
#[derive(Debug, Serialize)]
struct RunOutput<'a> {
    #[serde(flatten)]
    report: &'a SuiteReport,
    base: Option<BaseRef>,
    comparison: &'a HistoricalComparison,
    regressions: Vec<Regression>,
    confirmation: Option<&'a Confirmation>,
}

/// The base a run was compared with.
#[derive(Debug, Serialize)]
struct BaseRef {
    /// `baseline` (a named baseline of this runner) or `previous_run`.
    kind: &'static str,
    /// The baseline's name.
    name: Option<String>,
    /// The base run's id.
    run_id: String,
}

/// The exit code of `perflab run --fail-on-regression` when a regression is confirmed.
const EXIT_REGRESSION: u8 = 3;

/// After a run: its verdicts against the named baseline, else this runner's `main`
/// baseline, else the latest earlier run of the suite on this runner; then, when asked, the
/// re-measurement of suspected regressions and the exit code.
fn after_run(
    framework: &BenchmarkingFramework,
    report: SuiteReport,
    args: &RunArgs,
) -> Result<ExitCode> {
    let head = &report.run;
    let store = baselines(framework.config());
    let fingerprint = &head.runner.fingerprint;
    let named = match args.baseline.as_deref() {
        Some(name) => Some((
            name.to_owned(),
            store.load_for_suite(fingerprint, name, &head.suite)?,
        )),
        // This runner's `main` serves the suite it measured; other suites fall back to
        // their previous run.
        None => match store.load_for_suite(fingerprint, "main", &head.suite) {
            Ok(run) => Some(("main".to_owned(), run)),
            Err(
                BaselineError::NotFound { .. }
                | BaselineError::OtherRunner { .. }
                | BaselineError::OtherSuite { .. },
            ) => None,
            Err(e) => return Err(e.into()),
        },
    };
    let comparison = framework.compare_runs_blocking(head, named.as_ref().map(|(_, run)| run))?;
    let (base_ref, base) = match (named, &comparison.baseline_run_id) {
        (Some((name, run)), _) => (
            Some(BaseRef {
                kind: "baseline",
                name: Some(name),
                run_id: run.id.clone(),
            }),
            Some(run),
        ),
        (None, Some(id)) => (
            Some(BaseRef {
                kind: "previous_run",
                name: None,
                run_id: id.clone(),
            }),
            Some(framework.historical_data().load(id)?),
        ),
        (None, None) => (None, None),
    };
    let regressions = comparison.regressions();
    let confirmation = match &base {
        Some(base) if (args.confirm || args.fail_on_regression) && !regressions.is_empty() => {
            eprintln!(
                "re-measuring {} suspected regression(s) to confirm them",
                regressions.len()
            );
            Some(framework.confirm_regressions_blocking(&comparison, base)?)
        }
        _ => None,
    };
    if args.json {
        let out = RunOutput {
            report: &report,
            base: base_ref,
            comparison: &comparison,
            regressions,
            confirmation: confirmation.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(framework, &report)?;
        println!();
        match &base_ref {
            Some(BaseRef {
                name: Some(name),
                run_id,
                ..
            }) => println!("compared with baseline `{name}` (run {run_id})"),
            Some(BaseRef { run_id, .. }) => println!("compared with the previous run {run_id}"),
            None => {
                println!("no earlier run of this suite on this runner: nothing to compare with")
            }
        }
        if base_ref.is_some() {
            print!("{}", comparison.render_table());
        }
        if let Some(c) = &confirmation {
            print!("{}", c.render());
        }
    }
    let confirmed = confirmation.as_ref().map_or(&[][..], |c| &c.confirmed[..]);
    if args.fail_on_regression && !confirmed.is_empty() {
        eprintln!("error: {} confirmed regression(s):", confirmed.len());
        for r in confirmed {
            eprintln!("  {r}");
        }
        return Ok(ExitCode::from(EXIT_REGRESSION));
    }
    Ok(ExitCode::SUCCESS)
}

fn baseline_cmd(config: FrameworkConfig, command: BaselineCommand) -> Result<ExitCode> {
    let store = baselines(&config);
    let this_runner = || -> Result<String> {
        Ok(RunnerInfo::detect(None)
            .context("describing this runner")?
            .fingerprint)
    };
    match command {
        BaselineCommand::Save { name, run } => {
            let db = HistoricalDatabase::new(config.history_dir.clone());
            let run = match run {
                Some(id) => db.load(&id)?,
                None => {
                    let latest = db.list()?.runs.pop().with_context(|| {
                        format!("no runs in {} to save as a baseline", db.dir().display())
                    })?;
                    db.load(&latest.id)?
                }
            };
            let path = store.save(&name, &run)?;
            println!(
                "saved run {} as baseline `{name}`: {}",
                run.id,
                path.display()
            );
        }
        BaselineCommand::List { json } => {
            let entries = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else if entries.is_empty() {
                println!(
                    "no baselines in {}",
                    config.workspace_root.join("baselines").display()
                );
            } else {
                let mine = this_runner()?;
                for e in &entries {
                    let marker = if e.fingerprint == mine { '*' } else { ' ' };
                    println!("{marker} {:<16}  {}", e.fingerprint, e.name);
                }
            }
        }
        BaselineCommand::Show { name, json } => {
            let run = store.load(&this_runner()?, &name)?;
            show_run(config, &run, json)?;
        }
        BaselineCommand::Delete { name } => {
            let path = store.delete(&this_runner()?, &name)?;
            println!("deleted {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(config: FrameworkConfig, args: &CompareArgs) -> Result<ExitCode> {
    let store = baselines(&config);
    let framework = BenchmarkingFramework::new(config);
    let db = framework.historical_data();
    let head = db
        .load(&args.head)
        .with_context(|| format!("loading head run `{}`", args.head))?;
    // A run of the history first; failing that, a baseline of the head's runner.
    let base = match db.load(&args.base) {
        Ok(run) => run,
        Err(run_error) => store
            .load_for_suite(&head.runner.fingerprint, &args.base, &head.suite)
            .map_err(|baseline_error| {
                anyhow::anyhow!(
                    "`{}` is neither a run of the history ({run_error}) nor a baseline ({baseline_error})",
                    args.base
                )
            })?,
    };
    let comparison = framework.compare_runs_blocking(&head, Some(&base))?;
    if args.json {
        let regressions = framework.detect_regressions(&comparison);
        let entries = comparison.by_severity();
        let out = serde_json::json!({
            "base": comparison.baseline_run_id,
            "head": comparison.run_id,
            "suite": comparison.suite,
            "fingerprint": comparison.fingerprint,
            "regressions": regressions,
            "entries": entries,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", comparison.render_table());
    }
    Ok(ExitCode::SUCCESS)
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

async fn run(
    mut config: FrameworkConfig,
    args: &RunArgs,
) -> Result<(BenchmarkingFramework, SuiteReport)> {
    config.filter = args.filter.clone();
    config.quick = args.quick;
    config.capabilities = Capabilities::detect(None);
    let framework = BenchmarkingFramework::new(config);
    let report = framework
        .run_suite(&args.suite)
        .await
        .with_context(|| format!("running suite `{}`", args.suite))?;
    Ok((framework, report))
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&framework, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(framework: &BenchmarkingFramework, report: &SuiteReport) -> Result<()> {
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
            show_run(config, &run, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a stored run: the whole run as JSON, or its report table.
fn show_run(config: FrameworkConfig, run: &Run, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
    } else {
        let framework = BenchmarkingFramework::new(config);
        print!(
            "{}",
            framework.generate_performance_report(run)?.render_table()
        );
    }
    Ok(())
}
