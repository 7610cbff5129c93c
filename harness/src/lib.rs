//! perflab: the benchmark harness — result schema, ingest, history, suites and the run flow.
//!
//! The modules are private; the API is re-exported flat here. See `DESIGN.md` ("Data",
//! "Runners") for the model: a [`Run`] holds [`Measurement`]s per scenario, subject and
//! metric, stored in an append-only Parquet history ([`HistoricalDatabase`]) and produced by
//! [`BenchmarkingFramework::run_suite`] from the engines' own output. The statistics behind
//! verdicts ([`ab_verdicts`], [`noise_threshold`]) and change points ([`detect_change_points`],
//! [`analyze_file`]) are described in the crate README, "How a verdict is decided".

mod analyze;
mod atomic;
mod baseline;
mod catalog;
mod compare;
mod error;
mod export;
mod fingerprint;
mod framework;
mod github;
mod history;
mod ingest;
mod markdown;
mod plot;
mod report;
mod schema;
mod site;
mod stats;
mod store;
mod suite;

pub use analyze::{AnalyzeOptions, AnalyzeReport, SeriesAnalysis, analyze_file};
pub use atomic::write_file_atomically;
pub use baseline::{BaselineEntry, BaselineStore};
pub use catalog::{Capabilities, Catalog, CatalogEntry, Requirement};
pub use compare::{Confirmation, HistoricalComparison, MetricComparison, MetricKey, Regression};
pub use error::{
    AnalyzeError, BaselineError, BenchmarkError, CatalogError, ComparisonError, ConfirmError,
    ExportError, FingerprintError, GithubError, IngestError, PlotError, ReportError, SiteError,
    StatsError, StoreError, SuiteError,
};
pub use export::{ExportFormat, export_runs};
pub use fingerprint::{GpuAdapter, GpuDeviceType, RunnerFacts, RunnerInfo};
pub use framework::{
    BenchmarkReport, BenchmarkResults, BenchmarkingFramework, CargoRunner, CommandOutput,
    CommandPurpose, CommandRunner, CommandSpec, FrameworkConfig, SuiteReport, detect_git,
};
pub use github::{
    COMMENT_MARKER, CommentAction, CommentOutcome, CommentTarget, DEFAULT_API_BASE, GithubToken,
    RetryPolicy, StickyComment, with_marker,
};
pub use history::{
    HistoryChange, LocatedChange, MetricHistory, RunRef, history_changes, segment_all,
    segment_history,
};
pub use ingest::{ingest_bmf, ingest_criterion, ingest_gungraun, parse_bmf};
pub use markdown::{
    GITHUB_COMMENT_LIMIT, SummaryOptions, append_step_summary, fit_to_limit, markdown_summary,
};
pub use plot::{
    ChangeBar, Figure, HistoryPlot, ReportPlots, distribution_svg, history_svg, summary_svg,
};
pub use report::{AnchorRatio, PerformanceReport, ReportRow, format_value};
pub use schema::{
    Direction, Engine, Failure, GitInfo, Measurement, MetricSpec, PERFLAB_SUBJECT, Run,
    SCHEMA_VERSION, Skipped, format_timestamp, is_run_id, is_scenario_id, is_subject, new_run_id,
    parse_timestamp, short_commit,
};
pub use site::{DEFAULT_MAX_RUNS, Site, scenario_file, write_site};
pub use stats::{
    AbSamples, AbVerdict, ChangePoint, ChangePointConfig, Evidence, MIN_HISTORY_DELTAS,
    MannWhitney, MetricKind, NoiseThreshold, Segment, Segmentation, ShiftEstimate, TestMethod,
    ThresholdSource, Verdict, VerdictConfig, ab_verdicts, benjamini_hochberg, detect_change_points,
    hodges_lehmann, mann_whitney_u, noise_threshold,
};
pub use store::{
    DEFAULT_HISTORY_DIR, HistoricalDatabase, RunListing, RunSummary, read_run_file, run_frame,
    scan_history,
};
pub use suite::{
    AnchorRef, BenchmarkSuite, BenchmarkTest, EnvironmentRequirements, Location, PerformanceTarget,
    PerformanceTargets, ScenarioGlob, TargetOutcome, TargetStatus, best_anchor,
};
