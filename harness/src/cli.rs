//! Command-line interface of the `perflab` binary (clap derive).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use regex::Regex;

/// perflab: run benchmark suites, ingest engine output, and browse the run history.
#[derive(Debug, Parser)]
#[command(name = "perflab", version, propagate_version = true)]
pub(crate) struct Cli {
    /// History folder [default: $CARGO_TARGET_DIR/perflab/history, else
    /// <workspace>/target/perflab/history]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) history: Option<PathBuf>,

    /// Workspace root: suites are read from <workspace>/scenarios/suites and commands run there
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    pub(crate) workspace: PathBuf,

    /// More log output on stderr (-v info, -vv debug); PERFLAB_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Commands,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Commands {
    /// Run a suite: every engine, ingest, append to history, print the table
    Run(RunArgs),
    /// Build a run from existing engine output and append it to history
    Ingest(IngestArgs),
    /// List or show runs in the history
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Detect change points in any series (CSV, Parquet or NDJSON)
    Analyze(AnalyzeArgs),
    /// Compare two runs of the history: a verdict per scenario, subject and metric
    Compare(CompareArgs),
    /// Save, list, show or delete named baselines (baselines/<runner fingerprint>/<name>.json)
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Write the static HTML report (index of runs, a page per run and per scenario)
    Report(ReportArgs),
    /// Print the Markdown summary of a run's comparison (also to $GITHUB_STEP_SUMMARY when set)
    Summary(SummaryArgs),
    /// Post or update the one perflab comment on a pull request (GITHUB_TOKEN)
    Comment(CommentArgs),
    /// Export runs as BMF (for Bencher), CSV or Parquet
    Export(ExportArgs),
}

/// Which run to summarize and what to compare it with.
#[derive(Debug, Args)]
pub(crate) struct SummarySource {
    /// The head run: id or unique prefix [default: the latest run in the history]
    #[arg(long, value_name = "RUN")]
    pub(crate) run: Option<String>,

    /// The base: a run or a baseline of the head's runner [default: its `main` baseline, else
    /// the previous run of its suite on its runner]
    #[arg(long, value_name = "RUN|BASELINE")]
    pub(crate) base: Option<String>,

    /// Link to the HTML report (e.g. the workflow run's artifacts page)
    #[arg(long, value_name = "URL")]
    pub(crate) report_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// A run that must have a page even when it is older than the newest --max-runs
    #[arg(long, value_name = "RUN")]
    pub(crate) run: Option<String>,

    /// Output folder [default: <workspace>/reports/site]
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,

    /// How many of the newest runs get a page
    #[arg(long, value_name = "N", default_value_t = perflab::DEFAULT_MAX_RUNS)]
    pub(crate) max_runs: usize,
}

#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    #[command(flatten)]
    pub(crate) source: SummarySource,

    /// Write the Markdown to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CommentArgs {
    /// Pull request number [default: from the GitHub Actions event]
    #[arg(long, value_name = "N")]
    pub(crate) pr: Option<u64>,

    /// Repository OWNER/NAME [default: $GITHUB_REPOSITORY]
    #[arg(long, value_name = "OWNER/NAME")]
    pub(crate) repo: Option<String>,

    /// Print the comment instead of posting it (needs no token)
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Post this Markdown file instead of summarizing a run (for a workflow that posts what
    /// another, unprivileged one computed)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["run", "base", "report_url"])]
    pub(crate) summary: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) source: SummarySource,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// bmf (one run), csv or parquet
    #[arg(long, value_name = "FORMAT", value_parser = ["bmf", "csv", "parquet"])]
    pub(crate) format: String,

    /// The run: id or unique prefix [default: the latest run]
    #[arg(long, value_name = "RUN", conflicts_with = "all")]
    pub(crate) run: Option<String>,

    /// Every run of the history (csv and parquet)
    #[arg(long)]
    pub(crate) all: bool,

    /// Output file [default: stdout, except for parquet]
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineCommand {
    /// Save a run of the history as baseline NAME of the runner that measured it
    Save {
        /// Baseline name (letters, digits, `_`, `-`, `.`)
        name: String,
        /// The run: id or unique prefix [default: the latest run in the history]
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
    },
    /// List the baselines of every runner; `*` marks this runner's
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show baseline NAME of this runner
    Show {
        /// Baseline name
        name: String,
        /// Print the whole run as JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete baseline NAME of this runner
    Delete {
        /// Baseline name
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The base: a run id, a unique prefix of one, or the name of a baseline of the head's runner
    #[arg(long, value_name = "RUN|BASELINE")]
    pub(crate) base: String,

    /// The head run: id or a unique prefix of one
    #[arg(long, value_name = "RUN")]
    pub(crate) head: String,

    /// Print the comparison and its regressions as JSON on stdout instead of the table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AnalyzeArgs {
    /// The series file: .csv, .parquet (.pq) or .ndjson (.jsonl)
    #[arg(long, value_name = "FILE")]
    pub(crate) input: PathBuf,

    /// The numeric column to analyse
    #[arg(long, value_name = "NAME", default_value = "value")]
    pub(crate) column: String,

    /// The column that names each series (used when the file has it)
    #[arg(long, value_name = "NAME", default_value = "series")]
    pub(crate) series_column: String,

    /// Print JSON on stdout instead of the table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Suite name (scenarios/suites/<SUITE>.toml)
    #[arg(long, value_name = "SUITE")]
    pub(crate) suite: String,

    /// Only scenarios whose id matches this regular expression
    #[arg(long, value_name = "RE", value_parser = parse_regex)]
    pub(crate) filter: Option<Regex>,

    /// Quick run: leave out `quick = false` scenarios and ask the engines for short runs
    #[arg(long)]
    pub(crate) quick: bool,

    /// Compare with this baseline of this runner [default: `main` when this runner has it,
    /// else the latest earlier run of the suite]
    #[arg(long, value_name = "NAME")]
    pub(crate) baseline: Option<String>,

    /// Re-measure each suspected regression (its scenario alone, more samples) and report
    /// which are confirmed
    #[arg(long)]
    pub(crate) confirm: bool,

    /// Exit with code 3 when a regression is confirmed (implies --confirm); a regression the
    /// re-measurement does not reproduce never fails the run
    #[arg(long)]
    pub(crate) fail_on_regression: bool,

    /// Print the run, the comparison and the confirmation as JSON on stdout instead of tables
    #[arg(long)]
    pub(crate) json: bool,

    /// Which runner this is: `cpu` skips GPU scenarios; `gpu` runs them on the adapter the
    /// scenario runner finds (an error when there is none) and puts it into the runner
    /// fingerprint; `auto` is `gpu` when an adapter exists, else `cpu` [default: `auto` for
    /// a suite that requires a GPU, else `cpu`]
    #[arg(long, value_enum)]
    pub(crate) runner: Option<RunnerKind>,
}

/// The kind of runner a suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunnerKind {
    /// No GPU: GPU scenarios are skipped, and the fingerprint has no adapter.
    Cpu,
    /// The GPU adapter (software ones included) runs GPU scenarios and is fingerprinted.
    Gpu,
    /// `gpu` when an adapter exists, else `cpu`.
    Auto,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).multiple(true).args(["criterion", "gungraun", "bmf"])))]
pub(crate) struct IngestArgs {
    /// A criterion output folder (what CRITERION_HOME named)
    #[arg(long, value_name = "DIR")]
    pub(crate) criterion: Option<PathBuf>,

    /// A gungraun home folder with summary.json files (GUNGRAUN_SAVE_SUMMARY=json)
    #[arg(long, value_name = "DIR")]
    pub(crate) gungraun: Option<PathBuf>,

    /// A Bencher Metric Format JSON file (from perflab-scenarios or any other tool)
    #[arg(long, value_name = "FILE")]
    pub(crate) bmf: Option<PathBuf>,

    /// Suite name recorded in the run (targets are evaluated when the suite file exists)
    #[arg(long, value_name = "SUITE", default_value = "adhoc")]
    pub(crate) suite: String,

    /// Print the run as JSON on stdout instead of the table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum HistoryCommand {
    /// List the runs, oldest first
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one run (by id or unique id prefix)
    Show {
        /// Run id or a unique prefix of one
        run: String,
        /// Print the whole run as JSON
        #[arg(long)]
        json: bool,
    },
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ingest_needs_a_source() {
        assert!(Cli::try_parse_from(["perflab", "ingest"]).is_err());
        let cli = Cli::try_parse_from(["perflab", "ingest", "--bmf", "x.json", "--criterion", "d"])
            .unwrap();
        assert!(matches!(cli.command, Commands::Ingest(_)));
    }

    #[test]
    fn analyze_defaults() {
        let cli = Cli::try_parse_from(["perflab", "analyze", "--input", "s.csv"]).unwrap();
        let Commands::Analyze(a) = cli.command else {
            panic!("not analyze")
        };
        assert_eq!(
            (a.column.as_str(), a.series_column.as_str(), a.json),
            ("value", "series", false)
        );
        assert!(Cli::try_parse_from(["perflab", "analyze"]).is_err());
    }

    #[test]
    fn compare_needs_base_and_head() {
        assert!(Cli::try_parse_from(["perflab", "compare", "--base", "a"]).is_err());
        let cli =
            Cli::try_parse_from(["perflab", "compare", "--base", "a", "--head", "b", "--json"])
                .unwrap();
        let Commands::Compare(c) = cli.command else {
            panic!("not compare")
        };
        assert_eq!((c.base.as_str(), c.head.as_str(), c.json), ("a", "b", true));
    }

    #[test]
    fn report_commands_parse() {
        let cli = Cli::try_parse_from(["perflab", "export", "--format", "csv", "--all"]).unwrap();
        assert!(matches!(
            cli.command,
            Commands::Export(ExportArgs { all: true, .. })
        ));
        assert!(Cli::try_parse_from(["perflab", "export", "--format", "xlsx"]).is_err());
        assert!(
            Cli::try_parse_from([
                "perflab", "export", "--format", "csv", "--all", "--run", "r"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from(["perflab", "comment", "--pr", "7", "--dry-run"]).unwrap();
        assert!(matches!(
            cli.command,
            Commands::Comment(CommentArgs {
                pr: Some(7),
                dry_run: true,
                ..
            })
        ));
        assert!(
            Cli::try_parse_from(["perflab", "comment", "--summary", "s.md", "--run", "r"]).is_err()
        );
    }

    #[test]
    fn bad_filters_are_rejected() {
        let e =
            Cli::try_parse_from(["perflab", "run", "--suite", "m", "--filter", "("]).unwrap_err();
        assert!(e.to_string().contains("--filter"), "{e}");
    }
}
