//! The `perflab` binary: runs suites, ingests output, shows and compares history, finds change points.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use perflab::{
    AnalyzeOptions, BaselineError, BaselineStore, BenchmarkSuite, BenchmarkingFramework,
    Capabilities, CommentAction, CommentTarget, Confirmation, ExportFormat, FrameworkConfig,
    GithubToken, HistoricalComparison, HistoricalDatabase, Regression, Run, RunnerInfo,
    StickyComment, SuiteReport, SummaryOptions, analyze_file, append_step_summary, detect_git,
    export_runs, fit_to_limit, ingest_bmf, ingest_criterion, ingest_gungraun, markdown_summary,
    short_commit, with_marker, write_site,
};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::cli::{
    AnalyzeArgs, BaselineCommand, Cli, Commands, CommentArgs, CompareArgs, ExportArgs,
    HistoryCommand, IngestArgs, ReportArgs, RunArgs, RunnerKind, SummaryArgs, SummarySource,
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
        Commands::Report(args) => report(config, &args),
        Commands::Summary(args) => summary(config, &args),
        Commands::Comment(args) => comment(config, &args),
        Commands::Export(args) => export(config, &args),
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
    /// `baseline` (a named baseline of this runner), `run` (a run named by id) or
    /// `previous_run`.
    kind: &'static str,
    /// The baseline's name.
    name: Option<String>,
    /// The base run's id.
    run_id: String,
}

/// What `head` is compared with: the run or baseline named `base`; without a name, the
/// `main` baseline of its runner, else the latest earlier run of its suite on its runner.
fn resolve_base(
    framework: &BenchmarkingFramework,
    head: &Run,
    base: Option<&str>,
) -> Result<Option<(BaseRef, Run)>> {
    let store = baselines(framework.config());
    let db = framework.historical_data();
    let fingerprint = &head.runner.fingerprint;
    let baseline = |name: &str, run: Run| BaseRef {
        kind: "baseline",
        name: Some(name.to_owned()),
        run_id: run.id.clone(),
    };
    Ok(match base {
        Some(name) => match store.load_for_suite(fingerprint, name, &head.suite) {
            Ok(run) => Some((baseline(name, run.clone()), run)),
            Err(BaselineError::NotFound { .. }) => {
                let run = db.load(name).with_context(|| {
                    format!("`{name}` is neither a baseline of runner {fingerprint} nor a run")
                })?;
                Some((
                    BaseRef {
                        kind: "run",
                        name: None,
                        run_id: run.id.clone(),
                    },
                    run,
                ))
            }
            Err(e) => return Err(e.into()),
        },
        // This runner's `main` serves the suite it measured; other suites fall back to
        // their previous run.
        None => match store.load_for_suite(fingerprint, "main", &head.suite) {
            Ok(run) => Some((baseline("main", run.clone()), run)),
            Err(
                BaselineError::NotFound { .. }
                | BaselineError::OtherRunner { .. }
                | BaselineError::OtherSuite { .. },
            ) => {
                let (previous, _) = db.latest_before(&head.suite, fingerprint, &head.id)?;
                previous.map(|run| {
                    (
                        BaseRef {
                            kind: "previous_run",
                            name: None,
                            run_id: run.id.clone(),
                        },
                        run,
                    )
                })
            }
            Err(e) => return Err(e.into()),
        },
    })
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
    let (base_ref, base) = resolve_base(framework, head, args.baseline.as_deref())?.unzip();
    let comparison = framework.compare_runs_blocking(head, base.as_ref())?;
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
            Some(BaseRef { run_id, .. }) => println!("compared with run {run_id}"),
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

fn report(config: FrameworkConfig, args: &ReportArgs) -> Result<ExitCode> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| config.workspace_root.join("reports").join("site"));
    let framework = BenchmarkingFramework::new(config);
    let site = write_site(&framework, &out, args.max_runs, args.run.as_deref())?;
    println!("report: {}", site.index.display());
    let focus = match &args.run {
        Some(id) => site
            .runs
            .iter()
            .find(|(run, _)| run.starts_with(id.as_str())),
        None => site.runs.first(),
    };
    if let Some((id, page)) = focus {
        println!("run {id}: {}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The Markdown summary of `source`'s run against its base.
fn summarize(framework: &BenchmarkingFramework, source: &SummarySource) -> Result<String> {
    let db = framework.historical_data();
    let head = match &source.run {
        Some(id) => db.load(id)?,
        None => {
            let latest = db
                .list()?
                .runs
                .pop()
                .with_context(|| format!("no runs in {} to summarize", db.dir().display()))?;
            db.load(&latest.id)?
        }
    };
    let base = resolve_base(framework, &head, source.base.as_deref())?.map(|(_, run)| run);
    let comparison = framework.compare_runs_blocking(&head, base.as_ref())?;
    let options = SummaryOptions {
        report_url: source.report_url.clone(),
        ..SummaryOptions::default()
    };
    Ok(markdown_summary(&comparison, &head, &options))
}

fn summary(config: FrameworkConfig, args: &SummaryArgs) -> Result<ExitCode> {
    let framework = BenchmarkingFramework::new(config);
    let markdown = summarize(&framework, &args.source)?;
    match &args.out {
        Some(path) => {
            perflab::write_file_atomically(path, markdown.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("summary: {}", path.display());
        }
        None => print!("{markdown}"),
    }
    if let Some(path) = append_step_summary(&markdown).context("writing the job summary")? {
        eprintln!("job summary: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn comment(config: FrameworkConfig, args: &CommentArgs) -> Result<ExitCode> {
    let markdown = match &args.summary {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the summary {}", path.display()))?,
        None => summarize(&BenchmarkingFramework::new(config), &args.source)?,
    };
    // A summary file from elsewhere may be longer than GitHub takes: cut it with a note.
    let body = with_marker(&fit_to_limit(
        &markdown,
        SummaryOptions::default().max_chars,
    ));
    if args.dry_run {
        print!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let target = CommentTarget::from_env(args.pr, args.repo.as_deref())?;
    let comment = StickyComment::new(GithubToken::from_env()?, target)?;
    let outcome = comment.upsert_blocking(&body)?;
    let action = match outcome.action {
        CommentAction::Created => "created",
        CommentAction::Updated => "updated",
    };
    println!(
        "{action} comment {}: {} ({} retries)",
        outcome.id, outcome.url, outcome.retries
    );
    Ok(ExitCode::SUCCESS)
}

fn export(config: FrameworkConfig, args: &ExportArgs) -> Result<ExitCode> {
    let db = HistoricalDatabase::new(config.history_dir.clone());
    let format = ExportFormat::parse(&args.format)
        .with_context(|| format!("unknown export format `{}`", args.format))?;
    let runs = if args.all {
        let listing = db.list()?;
        listing
            .runs
            .iter()
            .map(|r| db.load(&r.id))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let id = match &args.run {
            Some(id) => id.clone(),
            None => {
                db.list()?
                    .runs
                    .pop()
                    .with_context(|| format!("no runs in {} to export", db.dir().display()))?
                    .id
            }
        };
        vec![db.load(&id)?]
    };
    let bytes = export_runs(&runs, format)?;
    match &args.out {
        Some(path) => {
            perflab::write_file_atomically(path, &bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("exported {} run(s) to {}", runs.len(), path.display());
        }
        None if format == ExportFormat::Parquet => {
            bail!("parquet is binary: name a file with --out")
        }
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&bytes)?;
        }
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
    // A CPU suite stays on the CPU runner's fingerprint unless asked otherwise, so that its
    // history does not split between machines with and without an adapter.
    let kind = match args.runner {
        Some(kind) => kind,
        None => {
            let path = BenchmarkSuite::path_in(&framework.config().suites_dir, &args.suite);
            if BenchmarkSuite::load(&path)?.environment_requirements.gpu {
                RunnerKind::Auto
            } else {
                RunnerKind::Cpu
            }
        }
    };
    let gpu = match kind {
        RunnerKind::Cpu => None,
        RunnerKind::Gpu => Some(
            framework
                .gpu_adapter()
                .context("probing the GPU adapter")?
                .context("--runner gpu: the scenario runner found no GPU adapter (for a software one, install mesa-vulkan-drivers and libvulkan1)")?,
        ),
        RunnerKind::Auto => framework.gpu_adapter().context("probing the GPU adapter")?,
    };
    if kind != RunnerKind::Cpu
        && gpu.is_none()
        && std::env::var_os("PERFLAB_REQUIRE_GPU_ADAPTER").is_some_and(|v| v == "1")
    {
        bail!("PERFLAB_REQUIRE_GPU_ADAPTER=1, but the scenario runner found no GPU adapter");
    }
    if let Some(adapter) = &gpu {
        eprintln!(
            "gpu runner: {} ({}{})",
            adapter.name,
            adapter.device_type,
            if adapter.is_software() {
                ", software"
            } else {
                ""
            }
        );
    }
    let framework = framework.with_gpu_adapter(gpu);
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
    let targets = framework.performance_table(&run)?.targets;
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
    let mut table = framework.performance_table(&report.run)?;
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
                    let commit = r.git_commit.as_deref().map_or("-", short_commit);
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
        print!("{}", framework.performance_table(run)?.render_table());
    }
    Ok(())
}
