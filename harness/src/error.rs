//! Error types of the perflab library: every error that concerns a file names it.
//!
//! Parse errors also carry the position (`line:column`, 1-based) or the field that is wrong.
//! The seed's error names (`BenchmarkError`, `SuiteError`, `ComparisonError`, `ReportError`)
//! are kept; the other enums cover the pieces those are built from.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Reading the output of a benchmark engine (criterion, gungraun, BMF) failed.
#[derive(Debug, Error)]
pub enum IngestError {
    /// The file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}:{line}:{column}: invalid json: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A field is missing or has the wrong type or value.
    #[error("{}: field `{field}`: {reason}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, as a dotted path from the document root.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The folder holds no results of the expected kind.
    #[error("{}: no {what} found", path.display())]
    Empty {
        /// The folder or file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
}

/// Detecting the runner's description (CPU, memory, OS, toolchain) failed.
#[derive(Debug, Error)]
pub enum FingerprintError {
    /// A helper program (`rustc`) could not be started.
    #[error("cannot run `{program}`: {source}")]
    Command {
        /// The program.
        program: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The operating system could not be queried.
    #[error("cannot read system information: {message}")]
    System {
        /// What sysinfo said.
        message: String,
    },
    /// A helper program ran but its output could not be understood.
    #[error("unexpected output from `{program}`: {reason}")]
    Output {
        /// The program.
        program: String,
        /// What was wrong.
        reason: String,
    },
}

/// The scenario runner could not say what it offers (`perflab-scenarios list --json`, the
/// catalog, or `perflab-scenarios adapter --json`, the GPU adapter).
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status, in words.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// The catalog JSON is malformed.
    #[error("scenario catalog: {reason}")]
    Invalid {
        /// What is wrong, with the entry or field when known.
        reason: String,
    },
    /// The adapter JSON of `perflab-scenarios adapter --json` is malformed.
    #[error("gpu adapter description: {reason}")]
    InvalidAdapter {
        /// What is wrong, with the line and column.
        reason: String,
    },
}

/// Reading or writing the history dataset failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The history lock could not be taken.
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A history file is not readable Parquet; it is left untouched.
    #[error("corrupt history file {} (left untouched): {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader said.
        message: String,
    },
    /// A history file is valid Parquet but does not hold a perflab run.
    #[error("{}: column `{field}`: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The column.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Encoding a run as Parquet failed.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What the Parquet writer said.
        message: String,
    },
    /// A file for this run id already exists; it is never overwritten.
    #[error("{} already exists; history files are never overwritten", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// No run with this id (or id prefix) is in the history.
    #[error("no run `{id}` in {}", dir.display())]
    RunNotFound {
        /// The id or prefix asked for.
        id: String,
        /// The history folder.
        dir: PathBuf,
    },
    /// An id prefix matches more than one run.
    #[error("run id prefix `{id}` is ambiguous: {}", matches.join(", "))]
    AmbiguousRun {
        /// The prefix asked for.
        id: String,
        /// The run ids it matches.
        matches: Vec<String>,
    },
    /// The run to append is not valid.
    #[error("run {id}: {reason}")]
    InvalidRun {
        /// The run id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// Loading, validating or running a suite failed.
#[derive(Debug, Error)]
pub enum SuiteError {
    /// The suite file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The suite file is malformed TOML or has an unknown or ill-typed field.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A scenario id in the suite is not in the catalog.
    #[error("{}:{line}:{column}: unknown scenario id `{id}`", path.display())]
    UnknownScenario {
        /// The file.
        path: PathBuf,
        /// 1-based line of the id.
        line: usize,
        /// 1-based column of the id.
        column: usize,
        /// The id.
        id: String,
    },
    /// No suite file with this name exists.
    #[error("no suite `{name}` (looked for {})", path.display())]
    NotFound {
        /// The suite name.
        name: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// The filter left no scenario of the suite to run.
    #[error("suite `{suite}`: no scenario left to run (filter `{filter}`, quick = {quick})")]
    NothingSelected {
        /// The suite.
        suite: String,
        /// The filter, or `*` when none.
        filter: String,
        /// Whether `--quick` was given.
        quick: bool,
    },
    /// The per-run work folder could not be created.
    #[error("cannot create work folder {}: {source}", path.display())]
    WorkDir {
        /// The folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The scenario catalog could not be obtained.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The runner could not be described.
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    /// The run could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Running every suite failed.
#[derive(Debug, Error)]
pub enum BenchmarkError {
    /// The suites folder could not be listed.
    #[error("cannot list suites in {}: {source}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The suites folder holds no suite file.
    #[error("no suite files (*.toml) in {}", path.display())]
    NoSuites {
        /// The folder.
        path: PathBuf,
    },
    /// One suite could not be run.
    #[error("suite `{suite}`: {source}")]
    Suite {
        /// The suite.
        suite: String,
        /// Why.
        #[source]
        source: SuiteError,
    },
}

/// Comparing a run with history failed.
#[derive(Debug, Error)]
pub enum ComparisonError {
    /// The history could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// The base run was measured on another runner than the head run.
    #[error(
        "base run {base_run} was measured on runner {base_fingerprint} and head run {head_run} on runner {head_fingerprint}: samples from different runners are not comparable; pick a base run from runner {head_fingerprint}"
    )]
    FingerprintMismatch {
        /// The base run's id.
        base_run: String,
        /// The base run's runner fingerprint.
        base_fingerprint: String,
        /// The head run's id.
        head_run: String,
        /// The head run's runner fingerprint.
        head_fingerprint: String,
    },
    /// Polars failed while joining runs or reading their history.
    #[error("{what}: {message}")]
    Polars {
        /// What was being done.
        what: &'static str,
        /// Polars' message.
        message: String,
    },
    /// Change-point detection over the history refused its settings.
    #[error("change points over the history: {0}")]
    ChangePoints(#[from] StatsError),
}

/// Confirming suspected regressions failed.
#[derive(Debug, Error)]
pub enum ConfirmError {
    /// The re-measurement failed.
    #[error("re-measuring the suspected regressions: {0}")]
    Suite(#[from] SuiteError),
    /// Comparing the re-measurement with the base failed.
    #[error("comparing the re-measurement with the base: {0}")]
    Comparison(#[from] ComparisonError),
    /// The scenario filter of the suspects could not be built.
    #[error("selecting the suspected scenarios: {0}")]
    Filter(String),
    /// The re-measurement could not be saved.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Drawing a plot failed.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The data cannot be drawn.
    #[error("{plot} plot: {reason}")]
    Data {
        /// Which plot.
        plot: &'static str,
        /// What is wrong with the data.
        reason: String,
    },
    /// plotters failed.
    #[error("drawing the {plot} plot: {message}")]
    Draw {
        /// Which plot.
        plot: &'static str,
        /// plotters' message.
        message: String,
    },
}

/// Exporting runs failed.
#[derive(Debug, Error)]
pub enum ExportError {
    /// No run to export.
    #[error("no run to export")]
    Empty,
    /// BMF describes one run.
    #[error("bmf export takes one run, not {0}: pick one with --run")]
    BmfTakesOneRun(usize),
    /// Polars could not build or write the table.
    #[error("building the export table: {0}")]
    Polars(String),
}

impl From<ComparisonError> for ReportError {
    fn from(e: ComparisonError) -> Self {
        Self::Comparison(Box::new(e))
    }
}

/// Writing the HTML report failed.
#[derive(Debug, Error)]
pub enum SiteError {
    /// The history could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A run could not be compared with its base.
    #[error(transparent)]
    Comparison(#[from] ComparisonError),
    /// A run could not be laid out.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The history's series could not be read or segmented.
    #[error("reading the history for the scenario pages: {0}")]
    History(String),
    /// A template failed to render.
    #[error("template {template}: {message}")]
    Template {
        /// The template.
        template: &'static str,
        /// minijinja's message.
        message: String,
    },
    /// A page could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The run asked for is not in the history.
    #[error("no run `{0}` in the history")]
    UnknownRun(String),
}

/// Building a performance report failed.
#[derive(Debug, Error)]
pub enum ReportError {
    /// A measurement's value is NaN or infinite, so no ratio or target can be computed.
    #[error("{scenario} {subject} {metric}: value {value} is not finite")]
    NonFinite {
        /// The scenario.
        scenario: String,
        /// The subject.
        subject: String,
        /// The metric.
        metric: String,
        /// The value.
        value: f64,
    },
    /// The suite file named by the run could not be loaded.
    #[error(transparent)]
    Suite(#[from] SuiteError),
    /// The run could not be compared with its base for the plots.
    #[error("comparing the run for its plots: {0}")]
    Comparison(Box<ComparisonError>),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// A statistic could not be computed from its input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    /// The input holds no observations.
    #[error("{what}: no observations")]
    Empty {
        /// Which input (`series`, `x`, `y`, ...).
        what: &'static str,
    },
    /// An observation is NaN or infinite.
    #[error("{what}: observation {index} is {value}, not a finite number")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// 0-based position of the observation.
        index: usize,
        /// The observation.
        value: f64,
    },
    /// A configuration value is out of range.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// Its allowed range.
        reason: &'static str,
    },
}

/// `perflab analyze` could not read or analyse a series file.
#[derive(Debug, Error)]
pub enum AnalyzeError {
    /// The file could not be opened.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The file name does not end in a known extension.
    #[error(
        "{}: unknown file type; expected .csv, .parquet (.pq), .ndjson or .jsonl",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// Polars could not parse the file.
    #[error("{}: cannot parse as {format}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The format it was read as.
        format: &'static str,
        /// What Polars said.
        message: String,
    },
    /// The file holds no rows.
    #[error("{}: no data rows", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The value or series column is not in the file.
    #[error("{}: no column `{column}` (columns: {})", path.display(), available.join(", "))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The columns the file has.
        available: Vec<String>,
    },
    /// The value column does not hold numbers.
    #[error("{}: column `{column}` is {dtype}, not numeric", path.display())]
    NonNumeric {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Its data type, as Polars names it.
        dtype: String,
    },
    /// A value is missing, NaN or infinite.
    #[error("{}: column `{column}`: row {row} (0-based, header excluded) is {value}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// 0-based data row.
        row: usize,
        /// `null`, `NaN`, `inf` or `-inf`.
        value: String,
    },
    /// Change-point detection rejected a series.
    #[error("{}: series `{series}`: {source}", path.display())]
    Stats {
        /// The file.
        path: PathBuf,
        /// The series.
        series: String,
        /// Why.
        #[source]
        source: StatsError,
    },
}

/// Errors of the named baselines in `baselines/<fingerprint>/<name>.json`.
#[derive(Debug, Error)]
pub enum BaselineError {
    /// A baseline file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A baseline file is not a perflab run; it is left untouched.
    #[error("{} (left untouched): {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A baseline name that cannot be a file name.
    #[error(
        "baseline name `{name}` must be letters, digits, `_`, `-` or `.`, not starting with `.`"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No baseline of this name for this runner, nor for any other.
    #[error("no baseline `{name}` for runner {fingerprint} in {}", dir.display())]
    NotFound {
        /// The name asked for.
        name: String,
        /// This runner's fingerprint.
        fingerprint: String,
        /// The baselines folder.
        dir: PathBuf,
    },
    /// The baseline exists, but only for other runners, whose results are never compared.
    #[error(
        "baseline `{name}` belongs to runner {}, not to this runner {fingerprint}: results from different machines or toolchains are never compared; save a baseline on this runner",
        others.join(", ")
    )]
    OtherRunner {
        /// The name asked for.
        name: String,
        /// This runner's fingerprint.
        fingerprint: String,
        /// The runners that have a baseline of this name.
        others: Vec<String>,
    },
    /// The baseline is a run of another suite, whose scenarios the run does not have.
    #[error(
        "baseline `{name}` of runner {fingerprint} is a run of suite `{baseline_suite}`, not of `{suite}`: compare with a baseline or run of suite `{suite}`"
    )]
    OtherSuite {
        /// The name asked for.
        name: String,
        /// The runner's fingerprint.
        fingerprint: String,
        /// The suite the baseline measured.
        baseline_suite: String,
        /// The suite of the run to compare.
        suite: String,
    },
    /// The run to save is inconsistent.
    #[error("run {id} cannot be a baseline: {reason}")]
    InvalidRun {
        /// The run id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Errors of the sticky pull-request comment. None of them ever holds the token.
#[derive(Debug, Error)]
pub enum GithubError {
    /// `GITHUB_TOKEN` is unset or blank.
    #[error(
        "GITHUB_TOKEN is not set: export a token that may write pull-request comments (in GitHub Actions, `GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}`)"
    )]
    MissingToken,
    /// The token holds characters that cannot be sent in an HTTP header.
    #[error("GITHUB_TOKEN holds whitespace or control characters inside it; it cannot be a token")]
    InvalidToken,
    /// No `--repo` and no `GITHUB_REPOSITORY`.
    #[error("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")]
    MissingRepository,
    /// The repository is not `OWNER/NAME`.
    #[error("repository `{value}` is not OWNER/NAME")]
    InvalidRepository {
        /// What was given.
        value: String,
    },
    /// No `--pr`, and the environment names no pull request.
    #[error(
        "no pull request number: pass --pr N, or run on a pull_request event (GITHUB_EVENT_PATH, or GITHUB_REF=refs/pull/N/merge)"
    )]
    MissingPullRequest,
    /// The pull request number is not a positive integer.
    #[error("`{value}` does not name a pull request number")]
    InvalidPullRequest {
        /// What was given.
        value: String,
    },
    /// The GitHub Actions event file could not be read.
    #[error("cannot read the github event {}: {message}", path.display())]
    Event {
        /// The file (`GITHUB_EVENT_PATH`).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The API root is not an `http(s)://HOST[/PATH]` URL.
    #[error("github api url `{value}`: {reason}")]
    InvalidApiBase {
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the github client: {message}")]
    Client {
        /// Why.
        message: String,
    },
    /// 401: the token is not accepted.
    #[error(
        "GITHUB_TOKEN was rejected (401: {message}): it is expired, revoked or not a github token"
    )]
    Unauthorized {
        /// GitHub's message.
        message: String,
    },
    /// 403 without a rate limit: the token lacks a permission.
    #[error(
        "GITHUB_TOKEN may not {action} {target} (403: {message}): the token needs the `pull-requests: write` permission (or `issues: write`); set `permissions: pull-requests: write` in the workflow (a workflow run from a fork gets a read-only token)"
    )]
    Forbidden {
        /// What was attempted, such as `comment on`.
        action: &'static str,
        /// `OWNER/NAME#PR`.
        target: String,
        /// GitHub's message.
        message: String,
    },
    /// 404: the repository or PR does not exist, or the token cannot see it.
    #[error(
        "{repository} pull request #{pr} not found (404 on {request}): check --repo and --pr, or the token cannot see the repository (a private one needs `contents: read` and `pull-requests: read`)"
    )]
    NotFound {
        /// `OWNER/NAME`.
        repository: String,
        /// The PR number.
        pr: u64,
        /// The request, such as `GET /repos/…`.
        request: String,
    },
    /// The rate limit resets later than the longest wait allowed.
    #[error(
        "github rate limit reached on {request}: it resets in {wait_s} s, later than the {max_wait_s} s this run may wait"
    )]
    RateLimited {
        /// The request.
        request: String,
        /// Seconds until the limit resets.
        wait_s: u64,
        /// The longest single wait allowed.
        max_wait_s: u64,
    },
    /// A request kept failing with 5xx answers, transport errors or rate limits.
    #[error("{request} still failing after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The request.
        request: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Any other unsuccessful answer.
    #[error("{request} failed ({status}): {message}")]
    Api {
        /// The request.
        request: String,
        /// The HTTP status code.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// A successful answer whose JSON is not what the API documents.
    #[error("unexpected answer to {request}: {message}")]
    Response {
        /// The request.
        request: String,
        /// What the JSON parser said.
        message: String,
    },
    /// A next-page link that cannot be followed.
    #[error("cannot follow the next-page link {url}: {reason}")]
    Pagination {
        /// The link.
        url: String,
        /// Why.
        reason: String,
    },
}
