//! `BenchmarkingFramework`: the run flow — catalog, suite validation, engines, ingest, history.
//!
//! # Async and blocking work
//!
//! The seed's methods are `async`, and so are these, but what they do is blocking by nature:
//! they start cargo, wait minutes for benchmarks, and read and write files. Engines run one
//! at a time on purpose (two benchmarks at once would disturb each other's numbers), so there
//! is nothing to overlap. Each async method therefore moves its whole body onto tokio's
//! blocking pool (`spawn_blocking`) and awaits it: the caller's runtime stays responsive, and
//! the work stays plain sequential code. They need a tokio runtime (any flavour); the
//! `*_blocking` twins serve callers without one.
//!
//! # Commands
//!
//! Every external command (the catalog listing and each engine) goes through a
//! [`CommandRunner`]. [`CargoRunner`] runs it for real; tests substitute a closure that
//! writes fixture output into the directories the command's environment names.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::atomic::write_file_atomically;
use crate::catalog::{Capabilities, Catalog, CatalogEntry, SCENARIOS_PACKAGE};
use crate::compare::{Confirmation, HistoricalComparison, MetricKey, Regression, runner_histories};
use crate::error::{
    BenchmarkError, CatalogError, ComparisonError, ConfirmError, IngestError, ReportError,
    StoreError, SuiteError,
};
use crate::fingerprint::{GpuAdapter, RunnerInfo};
use crate::history::{MetricHistory, RunRef, history_changes};
use crate::ingest::{ingest_bmf, ingest_criterion, ingest_gungraun};
use crate::plot::ReportPlots;
use crate::report::PerformanceReport;
use crate::schema::{Engine, Failure, GitInfo, Measurement, Run, Skipped};
use crate::stats::{ChangePointConfig, Verdict, VerdictConfig};
use crate::store::{DEFAULT_HISTORY_DIR, HistoricalDatabase};
use crate::suite::{BenchmarkSuite, TargetOutcome};

/// The results a comparison or report is made from (the seed's `BenchmarkResults`).
pub type BenchmarkResults = Run;

/// Runs an external command and returns its output.
pub trait CommandRunner: Send + Sync {
    /// Runs `command` to completion. `Err` only when it could not be started.
    fn run(&self, command: &CommandSpec) -> io::Result<CommandOutput>;
}

impl<F> CommandRunner for F
where
    F: Fn(&CommandSpec) -> io::Result<CommandOutput> + Send + Sync,
{
    fn run(&self, command: &CommandSpec) -> io::Result<CommandOutput> {
        self(command)
    }
}

/// Runs commands as child processes, capturing stdout and stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct CargoRunner;

/// What a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandPurpose {
    /// `perflab-scenarios list --json`.
    Catalog,
    /// `perflab-scenarios adapter --json`.
    Adapter,
    /// One engine invocation.
    Engine {
        /// The engine.
        engine: Engine,
        /// The bench target, for criterion and callgrind.
        bench: Option<String>,
    },
}

/// A command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// What it is for.
    pub purpose: CommandPurpose,
    /// The program (`cargo`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory (the workspace root).
    pub cwd: PathBuf,
}

/// What a finished command left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code, when it exited (not killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Where suites, history and work files are, and what to run.
#[derive(Debug, Clone)]
pub struct FrameworkConfig {
    /// The workspace root: commands run here.
    pub workspace_root: PathBuf,
    /// Folder of suite files (default `<root>/scenarios/suites`).
    pub suites_dir: PathBuf,
    /// History folder (default `<root>/target/perflab/history`).
    pub history_dir: PathBuf,
    /// Per-run work folders go below this (default `<root>/target/perflab/work`).
    pub work_dir: PathBuf,
    /// Only scenarios whose id matches.
    pub filter: Option<Regex>,
    /// Quick runs: leave out `quick = false` scenarios, pass `--quick` to the engines.
    pub quick: bool,
    /// What this machine offers (GPU adapter, Redis).
    pub capabilities: Capabilities,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

/// The seed's benchmarking framework: runs suites and keeps their history.
#[derive(Clone)]
pub struct BenchmarkingFramework {
    config: FrameworkConfig,
    historical_data: HistoricalDatabase,
    runner: Arc<dyn CommandRunner>,
    runner_info: Option<RunnerInfo>,
    git: Option<GitInfo>,
}

/// The outcome of one suite run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    /// The run, as appended to history.
    pub run: Run,
    /// Target verdicts.
    pub targets: Vec<TargetOutcome>,
    /// The history file the run was written to.
    pub history_file: PathBuf,
    /// The per-run work folder with the engines' output (`None` for ingested runs).
    pub work_dir: Option<PathBuf>,
}

/// The outcome of running every suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// One report per suite, in name order.
    pub suites: Vec<SuiteReport>,
}

impl CommandRunner for CargoRunner {
    fn run(&self, command: &CommandSpec) -> io::Result<CommandOutput> {
        tracing::info!(command = %command, "running");
        let out = Command::new(&command.program)
            .args(&command.args)
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&command.cwd)
            .stdin(Stdio::null())
            .output()?;
        Ok(CommandOutput {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            write!(f, "{k}={} ", shell_quote(v))?;
        }
        f.write_str(&self.program)?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        Ok(())
    }
}

impl CommandSpec {
    /// The value of environment variable `key` set for this command.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The argument after `flag`, e.g. `--bench`.
    pub fn arg_after(&self, flag: &str) -> Option<&str> {
        self.args
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.args.get(i + 1))
            .map(String::as_str)
    }
}

impl CommandOutput {
    /// A successful run that printed `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Self {
            success: true,
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A failed run with exit `code` that printed `stderr`.
    pub fn failed(code: i32, stderr: impl Into<String>) -> Self {
        Self {
            success: false,
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    fn status_text(&self) -> String {
        match self.code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_owned(),
        }
    }
}

impl FrameworkConfig {
    /// Defaults for a workspace at `root`. The root is made absolute: cargo runs bench
    /// binaries in the package folder, so relative `CRITERION_HOME`/`GUNGRAUN_HOME` paths would
    /// land elsewhere.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Self {
            suites_dir: root.join("scenarios").join("suites"),
            history_dir: root.join(DEFAULT_HISTORY_DIR),
            work_dir: root.join("target").join("perflab").join("work"),
            workspace_root: root,
            filter: None,
            quick: false,
            capabilities: Capabilities::default(),
            progress: true,
        }
    }
}

impl fmt::Debug for BenchmarkingFramework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BenchmarkingFramework")
            .field("config", &self.config)
            .field("historical_data", &self.historical_data)
            .field("runner_info", &self.runner_info)
            .field("git", &self.git)
            .finish_non_exhaustive()
    }
}

impl BenchmarkingFramework {
    /// A framework that runs commands with [`CargoRunner`].
    pub fn new(config: FrameworkConfig) -> Self {
        Self {
            historical_data: HistoricalDatabase::new(config.history_dir.clone()),
            config,
            runner: Arc::new(CargoRunner),
            runner_info: None,
            git: None,
        }
    }

    /// Runs commands with `runner` instead (tests pass a fake).
    pub fn with_command_runner(mut self, runner: Arc<dyn CommandRunner>) -> Self {
        self.runner = runner;
        self
    }

    /// Uses this runner description instead of detecting it.
    pub fn with_runner_info(mut self, info: RunnerInfo) -> Self {
        self.runner_info = Some(info);
        self
    }

    /// Runs GPU scenarios on `gpu` and puts it into the runner fingerprint (`None`: a CPU
    /// runner, whose GPU scenarios are skipped).
    pub fn with_gpu_adapter(mut self, gpu: Option<GpuAdapter>) -> Self {
        self.config.capabilities.gpu = gpu;
        self
    }

    /// Uses this git description instead of asking git.
    pub fn with_git(mut self, git: GitInfo) -> Self {
        self.git = Some(git);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &FrameworkConfig {
        &self.config
    }

    /// The history.
    pub fn historical_data(&self) -> &HistoricalDatabase {
        &self.historical_data
    }

    /// Runs every suite in the suites folder, in name order. A suite that cannot run stops
    /// the whole (its error names it); failures inside a suite are data in its run.
    pub async fn run_benchmarks(&self) -> Result<BenchmarkReport, BenchmarkError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run_benchmarks_blocking())
            .await
            .map_err(|e| BenchmarkError::Suite {
                suite: "*".into(),
                source: SuiteError::Task(e.to_string()),
            })?
    }

    /// [`Self::run_benchmarks`] without a runtime.
    pub fn run_benchmarks_blocking(&self) -> Result<BenchmarkReport, BenchmarkError> {
        let dir = &self.config.suites_dir;
        let entries = std::fs::read_dir(dir).map_err(|source| BenchmarkError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(BenchmarkError::NoSuites { path: dir.clone() });
        }
        let mut suites = Vec::with_capacity(names.len());
        for name in names {
            let report =
                self.run_suite_blocking(&name)
                    .map_err(|source| BenchmarkError::Suite {
                        suite: name.clone(),
                        source,
                    })?;
            suites.push(report);
        }
        Ok(BenchmarkReport { suites })
    }

    /// Runs one suite (see the module docs and interfaces.md, "Run flow").
    pub async fn run_suite(&self, suite_name: &str) -> Result<SuiteReport, SuiteError> {
        let this = self.clone();
        let name = suite_name.to_owned();
        tokio::task::spawn_blocking(move || this.run_suite_blocking(&name))
            .await
            .map_err(|e| SuiteError::Task(e.to_string()))?
    }

    /// [`Self::run_suite`] without a runtime.
    pub fn run_suite_blocking(&self, suite_name: &str) -> Result<SuiteReport, SuiteError> {
        let (suite, run, work) =
            self.measure(suite_name, self.config.filter.as_ref(), Mode::Normal)?;
        let history_file = self.historical_data.append(&run)?;
        let targets = suite.performance_targets.evaluate(&run);
        tracing::info!(
            run = %run.id,
            results = run.results.len(),
            failures = run.failures.len(),
            skipped = run.skipped.len(),
            "suite run stored"
        );
        Ok(SuiteReport {
            run,
            targets,
            history_file,
            work_dir: Some(work),
        })
    }

    /// Re-measures the scenarios of `comparison`'s regressions, each alone and with more
    /// samples (criterion: `--sample-size 200 --measurement-time 15`, never `--quick`), and
    /// compares the re-measurement with `base`: a regression is confirmed when it is a
    /// regression again. The re-measurement is not appended to history (it is no run of the
    /// whole suite); it is kept as `confirmation.json` in its work folder.
    pub fn confirm_regressions_blocking(
        &self,
        comparison: &HistoricalComparison,
        base: &Run,
    ) -> Result<Confirmation, ConfirmError> {
        let suspects = comparison.regressions();
        let mut scenarios: Vec<String> = suspects.iter().map(|r| r.scenario.clone()).collect();
        scenarios.sort();
        scenarios.dedup();
        if scenarios.is_empty() {
            return Ok(Confirmation::default());
        }
        let only = Regex::new(&format!("^(?:{})$", alternation(&scenarios)))
            .map_err(|e| ConfirmError::Filter(e.to_string()))?;
        let (_, run, work) = self.measure(&comparison.suite, Some(&only), Mode::Confirm)?;
        let run_file = work.join("confirmation.json");
        write_json(&run_file, &run)?;
        let recheck = compare_runs(&self.historical_data, &run, Some(base))?;
        let (confirmed, refuted) = suspects.into_iter().partition(|r| {
            recheck
                .entry(&r.scenario, &r.subject, &r.metric)
                .is_some_and(|e| e.verdict == Verdict::Regression)
        });
        Ok(Confirmation {
            run: Some(run),
            run_file: Some(run_file),
            confirmed,
            refuted,
        })
    }

    /// Compares `results` (head) with the latest earlier run of the same suite on the same
    /// runner in history: per key a verdict with its evidence (see [`HistoricalComparison`]).
    pub async fn compare_with_historical(
        &self,
        results: &BenchmarkResults,
    ) -> Result<HistoricalComparison, ComparisonError> {
        let db = self.historical_data.clone();
        let run = results.clone();
        tokio::task::spawn_blocking(move || compare_runs(&db, &run, None))
            .await
            .map_err(|e| ComparisonError::Task(e.to_string()))?
    }

    /// Compares `head` with `base` when given, else with the latest earlier run of its suite
    /// on its runner. A base from another runner fingerprint is refused. Blocking: call it
    /// outside any async runtime (Polars' lazy engine; see [`HistoricalDatabase`]).
    pub fn compare_runs_blocking(
        &self,
        head: &Run,
        base: Option<&Run>,
    ) -> Result<HistoricalComparison, ComparisonError> {
        compare_runs(&self.historical_data, head, base)
    }

    /// The regressions of `comparison`, largest relative change first.
    pub fn detect_regressions(&self, comparison: &HistoricalComparison) -> Vec<Regression> {
        comparison.regressions()
    }

    /// Lays out `results` as a report with its plots: the tables of
    /// [`Self::performance_table`], and the plots of its comparison with the latest earlier
    /// run of its suite on its runner (see [`ReportPlots`]). Blocking, like
    /// [`Self::compare_runs_blocking`].
    pub fn generate_performance_report(
        &self,
        results: &BenchmarkResults,
    ) -> Result<PerformanceReport, ReportError> {
        let mut report = self.performance_table(results)?;
        let comparison = compare_runs(&self.historical_data, results, None)?;
        report.plots = Some(ReportPlots::of(&comparison, REPORT_DISTRIBUTIONS)?);
        Ok(report)
    }

    /// Lays out `results` as tables, without plots; targets come from the suite file of
    /// `results.suite` when there is one (an ingested run without a suite file has none).
    pub fn performance_table(
        &self,
        results: &BenchmarkResults,
    ) -> Result<PerformanceReport, ReportError> {
        let path = BenchmarkSuite::path_in(&self.config.suites_dir, &results.suite);
        let targets = if path.is_file() {
            BenchmarkSuite::load(&path)?
                .performance_targets
                .evaluate(results)
        } else {
            Vec::new()
        };
        PerformanceReport::new(results, targets)
    }

    /// The scenario catalog, from `cargo run --release -q -p perflab-scenarios -- list --json`.
    pub fn catalog(&self) -> Result<Catalog, CatalogError> {
        Catalog::parse(&self.scenarios_query(CommandPurpose::Catalog, "list")?)
    }

    /// The GPU adapter the scenario runner finds (wgpu's best adapter, software ones
    /// included), from `cargo run --release -q -p perflab-scenarios -- adapter --json`;
    /// `None` when there is none.
    pub fn gpu_adapter(&self) -> Result<Option<GpuAdapter>, CatalogError> {
        let text = self.scenarios_query(CommandPurpose::Adapter, "adapter")?;
        serde_json::from_str(&text).map_err(|e| CatalogError::InvalidAdapter {
            reason: format!("line {} column {}: {e}", e.line(), e.column()),
        })
    }

    /// Runs the scenario runner's `SUBCOMMAND --json` and returns its standard output.
    fn scenarios_query(
        &self,
        purpose: CommandPurpose,
        subcommand: &str,
    ) -> Result<String, CatalogError> {
        let spec = self.cargo(
            purpose,
            &[
                "run",
                "--release",
                "-q",
                "-p",
                SCENARIOS_PACKAGE,
                "--",
                subcommand,
                "--json",
            ],
            Vec::new(),
        );
        let out = self
            .runner
            .run(&spec)
            .map_err(|source| CatalogError::Spawn {
                command: spec.to_string(),
                source,
            })?;
        if !out.success {
            return Err(CatalogError::Failed {
                command: spec.to_string(),
                status: out.status_text(),
                stderr: tail(&out.stderr),
            });
        }
        Ok(out.stdout)
    }

    /// Runs the selected scenarios of a suite through their engines: the suite, the run (not
    /// yet stored) and its work folder.
    fn measure(
        &self,
        suite_name: &str,
        filter: Option<&Regex>,
        mode: Mode,
    ) -> Result<(BenchmarkSuite, Run, PathBuf), SuiteError> {
        let suite = BenchmarkSuite::load(&BenchmarkSuite::path_in(
            &self.config.suites_dir,
            suite_name,
        ))?;
        let catalog = self.catalog()?;
        suite.validate(&catalog)?;

        let quick = self.config.quick && mode == Mode::Normal;
        let selected = suite.selected_tests(filter, quick);
        if selected.is_empty() {
            return Err(SuiteError::NothingSelected {
                suite: suite.name.clone(),
                filter: filter.map_or_else(|| "*".to_owned(), |r| r.as_str().to_owned()),
                quick,
            });
        }

        let runner = match &self.runner_info {
            Some(r) => r.clone(),
            None => RunnerInfo::detect(self.config.capabilities.gpu.clone())?,
        };
        let git = self
            .git
            .clone()
            .unwrap_or_else(|| detect_git(&self.config.workspace_root));
        let mut run = Run::new(&suite.name, runner, git);
        let work = self.config.work_dir.join(&run.id);
        std::fs::create_dir_all(&work).map_err(|source| SuiteError::WorkDir {
            path: work.clone(),
            source,
        })?;

        let mut runnable: Vec<&CatalogEntry> = Vec::new();
        for t in &selected {
            let Some(entry) = catalog.get(&t.id) else {
                continue; // validate() guarantees presence
            };
            let missing: Vec<String> = entry
                .requires
                .iter()
                .filter_map(|r| self.config.capabilities.missing(*r))
                .collect();
            if missing.is_empty() {
                runnable.push(entry);
            } else {
                run.skipped.push(Skipped {
                    scenario: entry.id.clone(),
                    reason: missing.join("; "),
                });
            }
        }

        let invocations = self.plan(&catalog, &runnable, &work, mode);
        let bar = self.progress_bar(invocations.len());
        for inv in &invocations {
            bar.set_message(inv.label());
            let outcome = self.execute(inv);
            run.results.extend(outcome.results);
            run.failures.extend(outcome.failures);
            run.skipped.extend(outcome.skipped);
            bar.inc(1);
        }
        bar.finish_and_clear();

        Ok((suite, run, work))
    }

    fn cargo(
        &self,
        purpose: CommandPurpose,
        args: &[&str],
        env: Vec<(String, String)>,
    ) -> CommandSpec {
        CommandSpec {
            purpose,
            program: "cargo".to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env,
            cwd: self.config.workspace_root.clone(),
        }
    }

    /// The engine invocations for `entries`, in engine order.
    fn plan(
        &self,
        catalog: &Catalog,
        entries: &[&CatalogEntry],
        work: &Path,
        mode: Mode,
    ) -> Vec<Invocation> {
        let quick = self.config.quick && mode == Mode::Normal;
        let mut out = Vec::new();
        for engine in Engine::ALL {
            let mine: Vec<&CatalogEntry> = entries
                .iter()
                .copied()
                .filter(|e| e.engine == engine)
                .collect();
            if mine.is_empty() {
                continue;
            }
            match engine {
                Engine::Criterion => {
                    for (package, bench, group) in by_bench(&mine) {
                        let home = work.join("criterion").join(&bench);
                        let ids: Vec<String> = group.iter().map(|e| e.id.clone()).collect();
                        let filter = format!("^(?:{})/", alternation(&ids));
                        let mut args = vec![
                            "bench",
                            "-p",
                            package.as_str(),
                            "--bench",
                            bench.as_str(),
                            "--",
                            "--noplot",
                            filter.as_str(),
                        ];
                        if quick {
                            args.push("--quick");
                        }
                        if mode == Mode::Confirm {
                            args.extend(CONFIRM_CRITERION_ARGS);
                        }
                        let env = vec![("CRITERION_HOME".to_owned(), path_str(&home))];
                        out.push(Invocation {
                            spec: self.cargo(
                                CommandPurpose::Engine {
                                    engine,
                                    bench: Some(bench.clone()),
                                },
                                &args,
                                env,
                            ),
                            engine,
                            scenarios: ids,
                            output: home,
                        });
                    }
                }
                Engine::Callgrind => {
                    for (package, bench, group) in by_bench(&mine) {
                        let all_of_bench = catalog
                            .entries
                            .iter()
                            .filter(|e| {
                                e.engine == Engine::Callgrind
                                    && e.bench_target().as_deref() == Some(bench.as_str())
                            })
                            .count();
                        // gungraun takes one wildcard filter: the whole bench, or one
                        // invocation per scenario (`FILE::GROUP::*::ID`).
                        let runs: Vec<(Option<String>, Vec<String>)> = if group.len()
                            == all_of_bench
                        {
                            vec![(None, group.iter().map(|e| e.id.clone()).collect())]
                        } else {
                            group
                                .iter()
                                .map(|e| (Some(gungraun_filter(&bench, &e.id)), vec![e.id.clone()]))
                                .collect()
                        };
                        for (n, (filter, ids)) in runs.into_iter().enumerate() {
                            let home = work.join("gungraun").join(format!("{bench}-{n}"));
                            let mut args = vec![
                                "bench",
                                "-p",
                                package.as_str(),
                                "--bench",
                                bench.as_str(),
                                "--",
                            ];
                            if let Some(f) = &filter {
                                args.push(f.as_str());
                            }
                            let env = vec![
                                ("GUNGRAUN_HOME".to_owned(), path_str(&home)),
                                ("GUNGRAUN_SAVE_SUMMARY".to_owned(), "json".to_owned()),
                            ];
                            out.push(Invocation {
                                spec: self.cargo(
                                    CommandPurpose::Engine {
                                        engine,
                                        bench: Some(bench.clone()),
                                    },
                                    &args,
                                    env,
                                ),
                                engine,
                                scenarios: ids,
                                output: home,
                            });
                        }
                    }
                }
                Engine::Load => {
                    let ids: Vec<String> = mine.iter().map(|e| e.id.clone()).collect();
                    let filter = format!("^(?:{})$", alternation(&ids));
                    let file = work.join("load.json");
                    let file_s = path_str(&file);
                    let mut args = vec![
                        "run",
                        "--release",
                        "-q",
                        "-p",
                        SCENARIOS_PACKAGE,
                        "--",
                        "load",
                        "--filter",
                        filter.as_str(),
                    ];
                    if quick {
                        args.push("--quick");
                    }
                    args.extend(["--out", file_s.as_str()]);
                    out.push(Invocation {
                        spec: self.cargo(
                            CommandPurpose::Engine {
                                engine,
                                bench: None,
                            },
                            &args,
                            Vec::new(),
                        ),
                        engine,
                        scenarios: ids,
                        output: file,
                    });
                }
            }
        }
        out
    }

    /// Runs one invocation and turns whatever it left into results, failures and skips.
    ///
    /// Per-scenario `skipped: <id>: <reason>` and `failed: <id>[@<subject>]: <reason>` lines on
    /// stderr (perflab-scenarios' convention) become skips and failures; every selected
    /// scenario that ends with neither a result nor a skip gets a failure carrying the
    /// command's or the ingest's error. A failed command whose scenarios all have results
    /// and whose failure no stderr line explains is recorded as an engine failure.
    fn execute(&self, inv: &Invocation) -> Outcome {
        let mut outcome = Outcome::default();
        let mut explained = false;
        let command_failure = match self.runner.run(&inv.spec) {
            Err(e) => Some(format!("cannot run `{}`: {e}", inv.spec)),
            Ok(out) => {
                outcome.skipped = parse_skipped(&out.stderr)
                    .into_iter()
                    .filter(|s| inv.scenarios.contains(&s.scenario))
                    .collect();
                for (scenario, reason) in parse_failed(&out.stderr) {
                    if inv.scenarios.contains(&scenario) {
                        explained = true;
                        outcome.failures.push(Failure {
                            engine: Some(inv.engine),
                            scenario: Some(scenario),
                            reason,
                        });
                    }
                }
                (!out.success).then(|| {
                    format!(
                        "`{}` failed ({}): {}",
                        inv.spec,
                        out.status_text(),
                        tail(&out.stderr)
                    )
                })
            }
        };
        let ingested: Result<Vec<Measurement>, IngestError> = if inv.output.exists() {
            match inv.engine {
                Engine::Criterion => ingest_criterion(&inv.output),
                Engine::Callgrind => ingest_gungraun(&inv.output),
                Engine::Load => ingest_bmf(&inv.output),
            }
        } else {
            Err(IngestError::Empty {
                path: inv.output.clone(),
                what: "engine output",
            })
        };
        let ingest_failure = match ingested {
            Ok(ms) => {
                for m in ms {
                    if inv.scenarios.contains(&m.scenario) {
                        outcome.results.push(m);
                    } else {
                        tracing::warn!(
                            scenario = %m.scenario,
                            engine = %inv.engine,
                            "result for a scenario that was not selected; dropped"
                        );
                    }
                }
                None
            }
            Err(e) => Some(e.to_string()),
        };
        let reason = command_failure
            .clone()
            .or(ingest_failure.clone())
            .unwrap_or_else(|| "the engine produced no result for this scenario".to_owned());
        let mut any_missing = false;
        for id in &inv.scenarios {
            let accounted = outcome.results.iter().any(|m| &m.scenario == id)
                || outcome.skipped.iter().any(|s| &s.scenario == id)
                || outcome
                    .failures
                    .iter()
                    .any(|f| f.scenario.as_ref() == Some(id));
            if !accounted {
                any_missing = true;
                outcome.failures.push(Failure {
                    engine: Some(inv.engine),
                    scenario: Some(id.clone()),
                    reason: reason.clone(),
                });
            }
        }
        if !any_missing && !explained {
            // The command failed, or its output was malformed, although every scenario has
            // results: keep that on record too.
            if let Some(reason) = command_failure.or(ingest_failure.filter(|_| inv.output.exists()))
            {
                outcome.failures.push(Failure {
                    engine: Some(inv.engine),
                    scenario: None,
                    reason,
                });
            }
        }
        outcome
    }

    fn progress_bar(&self, len: usize) -> ProgressBar {
        if !self.config.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(
            Some(u64::try_from(len).unwrap_or(u64::MAX)),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// Compares `head` with `base` (or with the latest earlier run of its suite on its runner),
/// learning each key's noise threshold from the runner's history before `head`.
fn compare_runs(
    db: &HistoricalDatabase,
    head: &Run,
    base: Option<&Run>,
) -> Result<HistoricalComparison, ComparisonError> {
    let (found, unreadable) = match base {
        Some(b) => {
            if b.runner.fingerprint != head.runner.fingerprint {
                return Err(ComparisonError::FingerprintMismatch {
                    base_run: b.id.clone(),
                    base_fingerprint: b.runner.fingerprint.clone(),
                    head_run: head.id.clone(),
                    head_fingerprint: head.runner.fingerprint.clone(),
                });
            }
            (None, Vec::new())
        }
        None => db.latest_before(&head.suite, &head.runner.fingerprint, &head.id)?,
    };
    let unreadable = unreadable
        .into_iter()
        .filter_map(|e| match e {
            StoreError::Corrupt { path, .. } | StoreError::Invalid { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    let base = base.or(found.as_ref());
    let fingerprint = &head.runner.fingerprint;
    let mut histories: HashMap<MetricKey, MetricHistory> =
        runner_histories(db, fingerprint, &head.id)?
            .into_iter()
            .map(|h| (h.key.clone(), h))
            .collect();
    let values: HashMap<MetricKey, Vec<f64>> = histories
        .iter()
        .map(|(k, h)| (k.clone(), h.values.clone()))
        .collect();
    let mut comparison =
        HistoricalComparison::new(head, base, &values, unreadable, &VerdictConfig::default())?;
    // Change points of each of the head's keys: its history on this runner, then the head.
    let head_ref = Arc::new(RunRef {
        id: head.id.clone(),
        commit: head.git.commit.clone(),
    });
    let series: Vec<MetricHistory> = head
        .results
        .iter()
        .map(|m| {
            let key = MetricKey::of(m);
            let mut h = histories.remove(&key).unwrap_or_else(|| MetricHistory {
                fingerprint: fingerprint.clone(),
                key,
                ..MetricHistory::default()
            });
            h.push(Arc::clone(&head_ref), m.value);
            h
        })
        .collect();
    comparison.change_points = history_changes(&series, &ChangePointConfig::default())?;
    Ok(comparison)
}

/// The git commit and branch of `dir` (from git, else from GitHub Actions' environment).
pub fn detect_git(dir: &Path) -> GitInfo {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    GitInfo {
        commit: git(&["rev-parse", "HEAD"]).or_else(|| env("GITHUB_SHA")),
        branch: git(&["rev-parse", "--abbrev-ref", "HEAD"])
            .or_else(|| env("GITHUB_HEAD_REF"))
            .or_else(|| env("GITHUB_REF_NAME")),
    }
}

/// Most base-vs-head box plots in a report.
const REPORT_DISTRIBUTIONS: usize = 60;

/// How thoroughly to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As configured (`quick` or not).
    Normal,
    /// Re-measuring suspected regressions: never quick, more samples.
    Confirm,
}

/// Criterion's settings for a confirmation: twice its default samples over three times its
/// default measurement time.
const CONFIRM_CRITERION_ARGS: [&str; 4] = ["--sample-size", "200", "--measurement-time", "15"];

/// One engine command and what it should produce.
#[derive(Debug)]
struct Invocation {
    spec: CommandSpec,
    engine: Engine,
    scenarios: Vec<String>,
    /// Criterion or gungraun home, or the BMF file.
    output: PathBuf,
}

impl Invocation {
    fn label(&self) -> String {
        match &self.spec.purpose {
            CommandPurpose::Engine { bench: Some(b), .. } => {
                format!("{} {b} ({} scenarios)", self.engine, self.scenarios.len())
            }
            _ => format!("{} ({} scenarios)", self.engine, self.scenarios.len()),
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    results: Vec<Measurement>,
    failures: Vec<Failure>,
    skipped: Vec<Skipped>,
}

/// `entries` grouped by bench target: `(package, bench, entries)`, in order of first use.
fn by_bench<'a>(entries: &[&'a CatalogEntry]) -> Vec<(String, String, Vec<&'a CatalogEntry>)> {
    let mut out: Vec<(String, String, Vec<&CatalogEntry>)> = Vec::new();
    for e in entries {
        let Some(bench) = e.bench_target() else {
            continue;
        };
        match out
            .iter_mut()
            .find(|(p, b, _)| *p == e.package && *b == bench)
        {
            Some((_, _, v)) => v.push(e),
            None => out.push((e.package.clone(), bench, vec![e])),
        }
    }
    out
}

/// Writes `value` as pretty JSON to `path`, atomically.
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ConfirmError> {
    let io = |source| ConfirmError::Io {
        path: path.to_owned(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(value).map_err(|e| io(e.into()))?;
    json.push(b'\n');
    write_file_atomically(path, &json).map_err(io)
}

fn alternation(ids: &[String]) -> String {
    ids.iter()
        .map(|id| regex::escape(id))
        .collect::<Vec<_>>()
        .join("|")
}

/// gungraun's filter for scenario `<subsystem>/<group>[/<id>]` in bench file `bench`.
fn gungraun_filter(bench: &str, id: &str) -> String {
    let mut parts = id.splitn(3, '/').skip(1);
    let group = parts.next().unwrap_or("*");
    match parts.next() {
        Some(bench_id) => format!("{bench}::{group}::*::{bench_id}"),
        None => format!("{bench}::{group}::*"),
    }
}

/// `skipped: <id>: <reason>` lines (perflab-scenarios' convention on stderr).
fn parse_skipped(stderr: &str) -> Vec<Skipped> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("skipped: "))
        .filter_map(|rest| rest.split_once(": "))
        .map(|(id, reason)| Skipped {
            scenario: id.trim().to_owned(),
            reason: reason.trim().to_owned(),
        })
        .collect()
}

/// `failed: <id>[@<subject>]: <reason>` lines: `(scenario, reason)`, the subject kept in the
/// reason.
fn parse_failed(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("failed: "))
        .filter_map(|rest| rest.split_once(": "))
        .map(|(name, reason)| match name.trim().split_once('@') {
            Some((id, subject)) => (id.to_owned(), format!("{subject}: {}", reason.trim())),
            None => (name.trim().to_owned(), reason.trim().to_owned()),
        })
        .collect()
}

/// The last lines of `text` (where a tool says why it failed), at most about 1500 characters.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(8);
    let mut s = lines[start..].join("\n");
    if s.len() > 1500 {
        let mut cut = s.len() - 1500;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = format!("…{}", &s[cut..]);
    }
    if s.is_empty() {
        "(no output on stderr)".to_owned()
    } else {
        s
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_are_absolute() {
        let c = FrameworkConfig::new(".");
        assert!(c.workspace_root.is_absolute());
        assert!(c.history_dir.ends_with("target/perflab/history"));
        assert!(c.work_dir.is_absolute() && c.suites_dir.is_absolute());
    }

    #[test]
    fn parses_skipped_lines() {
        let s = parse_skipped(
            "info\nskipped: cache/l2/get: requires redis: REDIS_URL unset\n  skipped: x/y: no gpu\nskipped nothing",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].scenario, "cache/l2/get");
        assert_eq!(s[0].reason, "requires redis: REDIS_URL unset");
    }

    #[test]
    fn parses_failed_lines() {
        let f = parse_failed(
            "failed: memory/vmm_random_read/prefetch@read: no read completed\nfailed: a/b: boom",
        );
        assert_eq!(
            f,
            vec![
                (
                    "memory/vmm_random_read/prefetch".to_owned(),
                    "read: no read completed".to_owned()
                ),
                ("a/b".to_owned(), "boom".to_owned()),
            ]
        );
    }

    #[test]
    fn gungraun_filters() {
        assert_eq!(
            gungraun_filter("memory_callgrind", "memory/pool_cycle_ir/kib16"),
            "memory_callgrind::pool_cycle_ir::*::kib16"
        );
        assert_eq!(gungraun_filter("m_callgrind", "m/g"), "m_callgrind::g::*");
    }

    #[test]
    fn criterion_filter_matches_only_selected_groups() {
        let ids = vec!["memory/pool_cycle/kib1".to_owned(), "memory/a.b".to_owned()];
        let re = Regex::new(&format!("^(?:{})/", alternation(&ids))).unwrap();
        assert!(re.is_match("memory/pool_cycle/kib1/vec"));
        assert!(!re.is_match("memory/pool_cycle/kib16/vec"));
        assert!(!re.is_match("memory/axb/vec"));
    }

    #[test]
    fn tails_and_quotes() {
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&long);
        assert!(t.starts_with("line 92") && t.ends_with("line 99"), "{t}");
        assert_eq!(tail(""), "(no output on stderr)");
        assert_eq!(shell_quote("^(?:a)/"), "'^(?:a)/'");
        assert_eq!(shell_quote("--noplot"), "--noplot");
    }
}
