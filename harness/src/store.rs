//! The history: an append-only Parquet dataset, one file per run, read lazily with Polars.
//!
//! Layout: `<dir>/<run-id>.parquet`, long format. Every row repeats the run's metadata
//! (`schema_version`, `run_id`, `timestamp`, `git_*`, `suite`, `runner_*`) and has a
//! `record` kind: one `run` row per file (so a run with no results still exists), one
//! `measurement` row per [`Measurement`] (`scenario`, `subject`, `metric`, `unit`,
//! `direction`, `value`, `lower`, `upper`, `samples: List(Float64)`), one `failure` row per
//! [`Failure`] (`engine`, `scenario`, `reason`) and one `skipped` row per [`Skipped`]
//! (`scenario`, `reason`). `ordinal` keeps each kind's order, so a run reads back equal.
//!
//! Writes are atomic and never replace a file: the run is written to a hidden temporary file
//! in the same folder, fsynced, hard-linked to its final name (which fails if the name
//! exists), and the folder is fsynced. An exclusive lock file (`.perflab.lock`, via fs4) is
//! held while appending, so concurrent runs both land whole. A file that Polars cannot read
//! is reported with its path and left byte-for-byte untouched.
//!
//! Polars' lazy engine calls `tokio::task::block_in_place` when it finds a tokio runtime, which
//! panics on the thread of a current-thread runtime: call the reading methods outside any
//! runtime or from `spawn_blocking` (as the framework's async methods do).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use polars::prelude::{
    Column, DataFrame, DataType, Float64Type, LazyFrame, ListBuilderTrait,
    ListPrimitiveChunkedBuilder, ParquetWriter, PlRefPath, ScanArgsParquet, Series, col, lit,
};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::fingerprint::{GpuAdapter, GpuDeviceType, RunnerInfo};
use crate::schema::{
    Direction, Engine, Failure, GitInfo, Measurement, Run, SCHEMA_VERSION, Skipped, parse_timestamp,
};

/// The default history folder, relative to the workspace root.
pub const DEFAULT_HISTORY_DIR: &str = "target/perflab/history";

const LOCK_FILE: &str = ".perflab.lock";
const EXTENSION: &str = "parquet";

/// The run history (the seed's `HistoricalDatabase`): a folder of Parquet files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricalDatabase {
    dir: PathBuf,
}

/// One run as listed by [`HistoricalDatabase::list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub id: String,
    /// RFC 3339 start time.
    pub timestamp: String,
    /// Suite name.
    pub suite: String,
    /// Runner fingerprint.
    pub fingerprint: String,
    /// Git commit, when known.
    pub git_commit: Option<String>,
    /// Git branch, when known.
    pub git_branch: Option<String>,
    /// Number of measurements.
    pub measurements: u32,
    /// Number of failures.
    pub failures: u32,
    /// Number of skipped scenarios.
    pub skipped: u32,
    /// The Parquet file.
    pub path: PathBuf,
}

/// The runs of a history, and the files that could not be read.
#[derive(Debug, Default)]
pub struct RunListing {
    /// Readable runs, oldest first (run ids sort by time).
    pub runs: Vec<RunSummary>,
    /// One error per unreadable file ([`StoreError::Corrupt`] or [`StoreError::Invalid`]).
    pub unreadable: Vec<StoreError>,
}

impl HistoricalDatabase {
    /// A history in `dir` (created on the first append).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The history folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a run is stored in.
    pub fn path_of(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.{EXTENSION}"))
    }

    /// Appends `run` as a new file; returns its path. Never replaces an existing file.
    pub fn append(&self, run: &Run) -> Result<PathBuf, StoreError> {
        run.check().map_err(|reason| StoreError::InvalidRun {
            id: run.id.clone(),
            reason,
        })?;
        fs::create_dir_all(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let _lock = self.lock()?;
        let target = self.path_of(&run.id);
        if target.exists() {
            return Err(StoreError::Exists { path: target });
        }
        let mut df = run_to_frame(run).map_err(|e| StoreError::Write {
            path: target.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.dir.join(format!(
            ".{}.{EXTENSION}.tmp-{:08x}",
            run.id,
            rand::random::<u32>()
        ));
        let result = write_new(&tmp, &target, &mut df).and_then(|()| sync_dir(&self.dir));
        // The temporary name is ours alone; remove it whatever happened.
        let _ = fs::remove_file(&tmp);
        result?;
        tracing::debug!(path = %target.display(), "run appended to history");
        Ok(target)
    }

    /// Lists the runs, scanning each file lazily and grouping its rows by run id.
    pub fn list(&self) -> Result<RunListing, StoreError> {
        let mut listing = RunListing::default();
        for path in self.files()? {
            match summarize(&path) {
                Ok(mut runs) => listing.runs.append(&mut runs),
                Err(e) => {
                    tracing::warn!("{e}");
                    listing.unreadable.push(e);
                }
            }
        }
        listing.runs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(listing)
    }

    /// Loads the run with this id, or the one run whose id starts with it.
    pub fn load(&self, id: &str) -> Result<Run, StoreError> {
        let exact = self.path_of(id);
        let path = if exact.is_file() {
            exact
        } else {
            let matches: Vec<PathBuf> = self
                .files()?
                .into_iter()
                .filter(|p| stem(p).is_some_and(|s| s.starts_with(id)))
                .collect();
            match matches.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(StoreError::RunNotFound {
                        id: id.to_owned(),
                        dir: self.dir.clone(),
                    });
                }
                many => {
                    return Err(StoreError::AmbiguousRun {
                        id: id.to_owned(),
                        matches: many
                            .iter()
                            .filter_map(|p| stem(p))
                            .map(str::to_owned)
                            .collect(),
                    });
                }
            }
        };
        read_run(&path)
    }

    /// The latest run before `run_id` (by id) of `suite` on the runner `fingerprint`, if any.
    /// Unreadable files are skipped (and returned, so the caller can report them).
    pub fn latest_before(
        &self,
        suite: &str,
        fingerprint: &str,
        run_id: &str,
    ) -> Result<(Option<Run>, Vec<StoreError>), StoreError> {
        // Files are named by their run id, and run ids sort by time: walk back from the
        // newest earlier file and stop at the first run that matches, instead of
        // summarizing the whole history.
        let mut unreadable = Vec::new();
        for path in self.files()?.iter().rev() {
            if stem(path).is_none_or(|s| s >= run_id) {
                continue;
            }
            let runs = match summarize(path) {
                Ok(runs) => runs,
                Err(e) => {
                    tracing::warn!("{e}");
                    unreadable.push(e);
                    continue;
                }
            };
            let found = runs
                .iter()
                .filter(|r| {
                    r.suite == suite && r.fingerprint == fingerprint && r.id.as_str() < run_id
                })
                .max_by(|a, b| a.id.cmp(&b.id));
            if let Some(r) = found {
                return Ok((Some(read_run(&r.path)?), unreadable));
            }
        }
        Ok((None, unreadable))
    }

    /// The history's Parquet files, sorted (hidden temporary files excluded).
    fn files(&self) -> Result<Vec<PathBuf>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io {
                path: self.dir.clone(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.')
                && path.extension().is_some_and(|e| e == EXTENSION)
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    fn lock(&self) -> Result<File, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Lock {
                path: path.clone(),
                source,
            })?;
        fs4::FileExt::lock(&file).map_err(|source| StoreError::Lock { path, source })?;
        // Closing the file (on drop) releases the lock.
        Ok(file)
    }
}

fn stem(path: &Path) -> Option<&str> {
    path.file_stem().and_then(|s| s.to_str())
}

/// Writes `df` to the fresh file `tmp`, fsyncs it, and links it to `target` without replacing.
fn write_new(tmp: &Path, target: &Path, df: &mut DataFrame) -> Result<(), StoreError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { path, source }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(io_err(tmp))?;
    ParquetWriter::new(&mut file)
        .finish(df)
        .map_err(|e| StoreError::Write {
            path: target.to_owned(),
            message: e.to_string(),
        })?;
    file.sync_all().map_err(io_err(tmp))?;
    drop(file);
    match fs::hard_link(tmp, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Exists {
            path: target.to_owned(),
        }),
        Err(e) => {
            // Filesystems without hard links: we hold the lock and checked that `target`
            // does not exist, so a rename cannot replace another run's file.
            tracing::debug!(error = %e, "hard link failed; renaming instead");
            if target.exists() {
                return Err(StoreError::Exists {
                    path: target.to_owned(),
                });
            }
            fs::rename(tmp, target).map_err(io_err(target))
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Builds the long-format frame of a run.
fn run_to_frame(run: &Run) -> polars::prelude::PolarsResult<DataFrame> {
    let n = 1 + run.results.len() + run.failures.len() + run.skipped.len();
    let mut record: Vec<&str> = Vec::with_capacity(n);
    let mut ordinal: Vec<u32> = Vec::with_capacity(n);
    let mut scenario: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut subject: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut metric: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut unit: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut direction: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut value: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut lower: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut upper: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut engine: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut reason: Vec<Option<&str>> = Vec::with_capacity(n);
    let values: usize = run.results.iter().map(|m| m.samples.len()).sum();
    let mut samples = ListPrimitiveChunkedBuilder::<Float64Type>::new(
        "samples".into(),
        n,
        values,
        DataType::Float64,
    );

    let mut push = |kind: &'static str, ord: usize| {
        record.push(kind);
        ordinal.push(u32::try_from(ord).unwrap_or(u32::MAX));
    };
    push("run", 0);
    for (i, _) in run.results.iter().enumerate() {
        push("measurement", i);
    }
    for (i, _) in run.failures.iter().enumerate() {
        push("failure", i);
    }
    for (i, _) in run.skipped.iter().enumerate() {
        push("skipped", i);
    }

    // The `run` row.
    scenario.push(None);
    subject.push(None);
    metric.push(None);
    unit.push(None);
    direction.push(None);
    value.push(None);
    lower.push(None);
    upper.push(None);
    engine.push(None);
    reason.push(None);
    samples.append_null();
    for m in &run.results {
        scenario.push(Some(&m.scenario));
        subject.push(Some(&m.subject));
        metric.push(Some(&m.metric));
        unit.push(Some(&m.unit));
        direction.push(Some(m.direction.as_str()));
        value.push(Some(m.value));
        lower.push(m.lower);
        upper.push(m.upper);
        engine.push(None);
        reason.push(None);
        samples.append_slice(&m.samples);
    }
    for f in &run.failures {
        scenario.push(f.scenario.as_deref());
        subject.push(None);
        metric.push(None);
        unit.push(None);
        direction.push(None);
        value.push(None);
        lower.push(None);
        upper.push(None);
        engine.push(f.engine.map(Engine::as_str));
        reason.push(Some(&f.reason));
        samples.append_null();
    }
    for s in &run.skipped {
        scenario.push(Some(&s.scenario));
        subject.push(None);
        metric.push(None);
        unit.push(None);
        direction.push(None);
        value.push(None);
        lower.push(None);
        upper.push(None);
        engine.push(None);
        reason.push(Some(&s.reason));
        samples.append_null();
    }

    let repeat_str = |name: &str, v: &str| Column::new(name.into(), vec![v; n]);
    let repeat_opt = |name: &str, v: Option<&str>| Column::new(name.into(), vec![v; n]);
    let r = &run.runner;
    let gpu = r.gpu.as_ref();
    let columns = vec![
        Column::new("schema_version".into(), vec![run.schema_version; n]),
        repeat_str("run_id", &run.id),
        repeat_str("timestamp", &run.timestamp_rfc3339()),
        repeat_opt("git_commit", run.git.commit.as_deref()),
        repeat_opt("git_branch", run.git.branch.as_deref()),
        repeat_str("suite", &run.suite),
        repeat_str("runner_fingerprint", &r.fingerprint),
        repeat_str("runner_cpu_model", &r.cpu_model),
        Column::new("runner_cpu_cores".into(), vec![r.cpu_cores; n]),
        Column::new("runner_memory_gib".into(), vec![r.memory_gib; n]),
        repeat_str("runner_os", &r.os),
        repeat_str("runner_kernel", &r.kernel),
        repeat_str("runner_rustc", &r.rustc),
        repeat_str("runner_target", &r.target),
        repeat_opt("runner_gpu_name", gpu.map(|g| g.name.as_str())),
        Column::new("runner_gpu_vendor".into(), vec![gpu.map(|g| g.vendor); n]),
        repeat_opt(
            "runner_gpu_device_type",
            gpu.map(|g| g.device_type.as_str()),
        ),
        repeat_opt("runner_gpu_driver", gpu.map(|g| g.driver.as_str())),
        Column::new("record".into(), record),
        Column::new("ordinal".into(), ordinal),
        Column::new("scenario".into(), scenario),
        Column::new("subject".into(), subject),
        Column::new("metric".into(), metric),
        Column::new("unit".into(), unit),
        Column::new("direction".into(), direction),
        Column::new("value".into(), value),
        Column::new("lower".into(), lower),
        Column::new("upper".into(), upper),
        Series::from(samples.finish()).into(),
        Column::new("engine".into(), engine),
        Column::new("reason".into(), reason),
    ];
    DataFrame::new(n, columns)
}

/// A lazy scan of one history file (no globbing: the path is taken literally).
fn scan(path: &Path) -> Result<LazyFrame, StoreError> {
    let corrupt = |e: polars::prelude::PolarsError| StoreError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let pl_path = PlRefPath::try_from_path(path).map_err(corrupt)?;
    LazyFrame::scan_parquet(
        pl_path,
        ScanArgsParquet {
            glob: false,
            cache: false,
            ..Default::default()
        },
    )
    .map_err(corrupt)
}

/// The columns every history file has, with their types.
fn expected_columns() -> Vec<(&'static str, DataType)> {
    use DataType::{Float64, List, String as Str, UInt32, UInt64};
    vec![
        ("schema_version", UInt32),
        ("run_id", Str),
        ("timestamp", Str),
        ("git_commit", Str),
        ("git_branch", Str),
        ("suite", Str),
        ("runner_fingerprint", Str),
        ("runner_cpu_model", Str),
        ("runner_cpu_cores", UInt32),
        ("runner_memory_gib", UInt64),
        ("runner_os", Str),
        ("runner_kernel", Str),
        ("runner_rustc", Str),
        ("runner_target", Str),
        ("runner_gpu_name", Str),
        ("runner_gpu_vendor", UInt32),
        ("runner_gpu_device_type", Str),
        ("runner_gpu_driver", Str),
        ("record", Str),
        ("ordinal", UInt32),
        ("scenario", Str),
        ("subject", Str),
        ("metric", Str),
        ("unit", Str),
        ("direction", Str),
        ("value", Float64),
        ("lower", Float64),
        ("upper", Float64),
        ("samples", List(Box::new(Float64))),
        ("engine", Str),
        ("reason", Str),
    ]
}

/// Scans `path` and checks its schema: a file Polars cannot read is `Corrupt`, one with a
/// missing or mistyped column is `Invalid`.
fn checked_scan(path: &Path) -> Result<LazyFrame, StoreError> {
    let mut lf = scan(path)?;
    let schema = lf.collect_schema().map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    for (name, dtype) in expected_columns() {
        match schema.get(name) {
            None => {
                return Err(StoreError::Invalid {
                    path: path.to_owned(),
                    field: name.to_owned(),
                    reason: "missing".into(),
                });
            }
            // An all-null column may have been written as Null by another tool; accept it.
            Some(found) if *found != dtype && *found != DataType::Null => {
                return Err(StoreError::Invalid {
                    path: path.to_owned(),
                    field: name.to_owned(),
                    reason: format!("expected {dtype}, found {found}"),
                });
            }
            Some(_) => {}
        }
    }
    Ok(lf)
}

fn collect(lf: LazyFrame, path: &Path) -> Result<DataFrame, StoreError> {
    lf.collect().map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The runs in one file: group its rows by run id and count each record kind.
fn summarize(path: &Path) -> Result<Vec<RunSummary>, StoreError> {
    let lf = checked_scan(path)?;
    let count = |kind: &str| {
        col("record")
            .eq(lit(kind))
            .cast(DataType::UInt32)
            .sum()
            .alias(format!("n_{kind}"))
    };
    let df = collect(
        lf.group_by([col("run_id")])
            .agg([
                col("timestamp").first(),
                col("suite").first(),
                col("runner_fingerprint").first(),
                col("git_commit").first(),
                col("git_branch").first(),
                col("schema_version").max(),
                count("run"),
                count("measurement"),
                count("failure"),
                count("skipped"),
            ])
            .sort(["run_id"], Default::default()),
        path,
    )?;
    let t = Table::new(&df, path);
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let id = t.req_str("run_id", i)?;
        let version = t.req_u32("schema_version", i)?;
        if version > SCHEMA_VERSION {
            return Err(t.invalid(
                "schema_version",
                format!("{version} is newer than this build reads ({SCHEMA_VERSION})"),
            ));
        }
        if t.req_u32("n_run", i)? != 1 {
            return Err(t.invalid("record", format!("run {id} has no single `run` row")));
        }
        out.push(RunSummary {
            id: id.to_owned(),
            timestamp: t.req_str("timestamp", i)?.to_owned(),
            suite: t.req_str("suite", i)?.to_owned(),
            fingerprint: t.req_str("runner_fingerprint", i)?.to_owned(),
            git_commit: t.opt_str("git_commit", i)?.map(str::to_owned),
            git_branch: t.opt_str("git_branch", i)?.map(str::to_owned),
            measurements: t.req_u32("n_measurement", i)?,
            failures: t.req_u32("n_failure", i)?,
            skipped: t.req_u32("n_skipped", i)?,
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// Reads the whole run stored in `path`.
pub(crate) fn read_run(path: &Path) -> Result<Run, StoreError> {
    let lf = checked_scan(path)?;
    let df = collect(lf, path)?;
    frame_to_run(&df, path)
}

fn frame_to_run(df: &DataFrame, path: &Path) -> Result<Run, StoreError> {
    let t = Table::new(df, path);
    let head = (0..df.height())
        .find(|&i| t.opt_str("record", i).ok().flatten() == Some("run"))
        .ok_or_else(|| t.invalid("record", "no `run` row".into()))?;
    let id = t.req_str("run_id", head)?.to_owned();
    if let Some(i) = (0..df.height()).find(|&i| t.opt_str("run_id", i).ok().flatten() != Some(&id))
    {
        return Err(t.invalid("run_id", format!("row {i} belongs to another run")));
    }
    let schema_version = t.req_u32("schema_version", head)?;
    if schema_version == 0 || schema_version > SCHEMA_VERSION {
        return Err(t.invalid(
            "schema_version",
            format!("{schema_version} is not supported (1..={SCHEMA_VERSION})"),
        ));
    }
    let timestamp = parse_timestamp(t.req_str("timestamp", head)?)
        .map_err(|reason| t.invalid("timestamp", reason))?;
    let gpu = match t.opt_str("runner_gpu_name", head)? {
        None => None,
        Some(name) => {
            let dt = t.req_str("runner_gpu_device_type", head)?;
            Some(GpuAdapter {
                name: name.to_owned(),
                vendor: t.req_u32("runner_gpu_vendor", head)?,
                device_type: GpuDeviceType::parse(dt).ok_or_else(|| {
                    t.invalid(
                        "runner_gpu_device_type",
                        format!("unknown device type `{dt}`"),
                    )
                })?,
                driver: t.req_str("runner_gpu_driver", head)?.to_owned(),
            })
        }
    };
    let runner = RunnerInfo {
        fingerprint: t.req_str("runner_fingerprint", head)?.to_owned(),
        cpu_model: t.req_str("runner_cpu_model", head)?.to_owned(),
        cpu_cores: t.req_u32("runner_cpu_cores", head)?,
        memory_gib: t.req_u64("runner_memory_gib", head)?,
        os: t.req_str("runner_os", head)?.to_owned(),
        kernel: t.req_str("runner_kernel", head)?.to_owned(),
        rustc: t.req_str("runner_rustc", head)?.to_owned(),
        target: t.req_str("runner_target", head)?.to_owned(),
        gpu,
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for i in 0..df.height() {
        let ord = t.req_u32("ordinal", i)?;
        match t.req_str("record", i)? {
            "run" => {}
            "measurement" => {
                let dir = t.req_str("direction", i)?;
                let m = Measurement {
                    scenario: t.req_str("scenario", i)?.to_owned(),
                    subject: t.req_str("subject", i)?.to_owned(),
                    metric: t.req_str("metric", i)?.to_owned(),
                    unit: t.req_str("unit", i)?.to_owned(),
                    direction: dir
                        .parse::<Direction>()
                        .map_err(|reason| t.invalid("direction", reason))?,
                    value: t.req_f64("value", i)?,
                    lower: t.opt_f64("lower", i)?,
                    upper: t.opt_f64("upper", i)?,
                    samples: t.f64_list("samples", i)?,
                };
                results.push((ord, m));
            }
            "failure" => {
                let engine = t
                    .opt_str("engine", i)?
                    .map(|e| {
                        e.parse::<Engine>()
                            .map_err(|reason| t.invalid("engine", reason))
                    })
                    .transpose()?;
                failures.push((
                    ord,
                    Failure {
                        engine,
                        scenario: t.opt_str("scenario", i)?.map(str::to_owned),
                        reason: t.req_str("reason", i)?.to_owned(),
                    },
                ));
            }
            "skipped" => skipped.push((
                ord,
                Skipped {
                    scenario: t.req_str("scenario", i)?.to_owned(),
                    reason: t.req_str("reason", i)?.to_owned(),
                },
            )),
            other => return Err(t.invalid("record", format!("unknown record kind `{other}`"))),
        }
    }
    results.sort_by_key(|(o, _)| *o);
    failures.sort_by_key(|(o, _)| *o);
    skipped.sort_by_key(|(o, _)| *o);
    Ok(Run {
        schema_version,
        id,
        timestamp,
        git: GitInfo {
            commit: t.opt_str("git_commit", head)?.map(str::to_owned),
            branch: t.opt_str("git_branch", head)?.map(str::to_owned),
        },
        runner,
        suite: t.req_str("suite", head)?.to_owned(),
        results: results.into_iter().map(|(_, m)| m).collect(),
        failures: failures.into_iter().map(|(_, f)| f).collect(),
        skipped: skipped.into_iter().map(|(_, s)| s).collect(),
    })
}

/// Typed cell access whose errors name the file and column.
struct Table<'a> {
    df: &'a DataFrame,
    path: &'a Path,
}

impl<'a> Table<'a> {
    fn new(df: &'a DataFrame, path: &'a Path) -> Self {
        Self { df, path }
    }

    fn invalid(&self, field: &str, reason: String) -> StoreError {
        StoreError::Invalid {
            path: self.path.to_owned(),
            field: field.to_owned(),
            reason,
        }
    }

    fn column(&self, name: &str) -> Result<&'a Column, StoreError> {
        self.df
            .column(name)
            .map_err(|_| self.invalid(name, "missing".into()))
    }

    fn is_null_column(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.column(name)?.dtype() == &DataType::Null)
    }

    fn opt_str(&self, name: &str, i: usize) -> Result<Option<&'a str>, StoreError> {
        if self.is_null_column(name)? {
            return Ok(None);
        }
        let ca = self
            .column(name)?
            .str()
            .map_err(|e| self.invalid(name, e.to_string()))?;
        Ok(ca.get(i))
    }

    fn req_str(&self, name: &str, i: usize) -> Result<&'a str, StoreError> {
        self.opt_str(name, i)?
            .ok_or_else(|| self.invalid(name, format!("null in row {i}")))
    }

    fn req_u32(&self, name: &str, i: usize) -> Result<u32, StoreError> {
        let ca = self
            .column(name)?
            .u32()
            .map_err(|e| self.invalid(name, e.to_string()))?;
        ca.get(i)
            .ok_or_else(|| self.invalid(name, format!("null in row {i}")))
    }

    fn req_u64(&self, name: &str, i: usize) -> Result<u64, StoreError> {
        let ca = self
            .column(name)?
            .u64()
            .map_err(|e| self.invalid(name, e.to_string()))?;
        ca.get(i)
            .ok_or_else(|| self.invalid(name, format!("null in row {i}")))
    }

    fn opt_f64(&self, name: &str, i: usize) -> Result<Option<f64>, StoreError> {
        if self.is_null_column(name)? {
            return Ok(None);
        }
        let ca = self
            .column(name)?
            .f64()
            .map_err(|e| self.invalid(name, e.to_string()))?;
        Ok(ca.get(i))
    }

    fn req_f64(&self, name: &str, i: usize) -> Result<f64, StoreError> {
        self.opt_f64(name, i)?
            .ok_or_else(|| self.invalid(name, format!("null in row {i}")))
    }

    fn f64_list(&self, name: &str, i: usize) -> Result<Vec<f64>, StoreError> {
        let ca = self
            .column(name)?
            .list()
            .map_err(|e| self.invalid(name, e.to_string()))?;
        let Some(s) = ca.get_as_series(i) else {
            return Ok(Vec::new());
        };
        let values = s.f64().map_err(|e| self.invalid(name, e.to_string()))?;
        (0..values.len())
            .map(|j| {
                values
                    .get(j)
                    .ok_or_else(|| self.invalid(name, format!("null sample in row {i}")))
            })
            .collect()
    }
}

/// Reads the run in a Parquet file outside any history (e.g. an exported run).
pub fn read_run_file(path: &Path) -> Result<Run, StoreError> {
    read_run(path)
}

/// Frames a run as the history stores it (for exports and tests).
pub fn run_frame(run: &Run) -> Result<DataFrame, StoreError> {
    run_to_frame(run).map_err(|e| StoreError::Write {
        path: PathBuf::from(format!("<run {}>", run.id)),
        message: e.to_string(),
    })
}

/// Opens the history's rows of many runs as one lazy frame (for analyses over history).
pub fn scan_history(db: &HistoricalDatabase) -> Result<Option<LazyFrame>, StoreError> {
    let mut frames = Vec::new();
    for path in db.files()? {
        match checked_scan(&path) {
            Ok(lf) => frames.push(lf),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    if frames.is_empty() {
        return Ok(None);
    }
    polars::prelude::concat(frames, Default::default())
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            path: db.dir.clone(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::RunnerFacts;

    fn runner(gpu: Option<GpuAdapter>) -> RunnerInfo {
        RunnerInfo::from_facts(RunnerFacts {
            cpu_model: "Test CPU".into(),
            cpu_cores: 2,
            memory_gib: 8,
            os: "Linux".into(),
            kernel: "6.8".into(),
            rustc: "rustc 1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            gpu,
        })
    }

    fn sample_run(gpu: Option<GpuAdapter>) -> Run {
        let mut run = Run::new(
            "memory",
            runner(gpu),
            GitInfo {
                commit: Some("abc123".into()),
                branch: None,
            },
        );
        for (subject, v) in [("perflab", 10.0), ("vec", 12.0)] {
            run.results.push(Measurement {
                scenario: "memory/pool_cycle/kib1".into(),
                subject: subject.into(),
                metric: "wall_time".into(),
                unit: "ns".into(),
                direction: Direction::Lower,
                value: v,
                lower: Some(v - 1.0),
                upper: None,
                samples: vec![v - 0.5, v, v + 0.5],
            });
        }
        run.results.push(Measurement {
            scenario: "memory/pool_cycle/kib1".into(),
            subject: "perflab".into(),
            metric: "frobs".into(),
            unit: String::new(),
            direction: Direction::Higher,
            value: 3.0,
            lower: None,
            upper: None,
            samples: vec![],
        });
        run.failures.push(Failure {
            engine: Some(Engine::Callgrind),
            scenario: Some("memory/pool_cycle_ir/kib1".into()),
            reason: "exit status 101".into(),
        });
        run.skipped.push(Skipped {
            scenario: "memory/gpu/x".into(),
            reason: "requires gpu".into(),
        });
        run
    }

    #[test]
    fn a_run_round_trips_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let db = HistoricalDatabase::new(dir.path().join("h"));
        for gpu in [
            None,
            Some(GpuAdapter {
                name: "llvmpipe".into(),
                vendor: 0x10005,
                device_type: GpuDeviceType::Cpu,
                driver: "Mesa".into(),
            }),
        ] {
            let run = sample_run(gpu);
            let path = db.append(&run).unwrap();
            assert_eq!(path, db.path_of(&run.id));
            assert_eq!(db.load(&run.id).unwrap(), run);
        }
        let listing = db.list().unwrap();
        assert_eq!(listing.runs.len(), 2);
        assert!(listing.unreadable.is_empty());
        let s = &listing.runs[0];
        assert_eq!((s.measurements, s.failures, s.skipped), (3, 1, 1));
        assert_eq!(s.git_commit.as_deref(), Some("abc123"));
        let leftovers: Vec<_> = fs::read_dir(db.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn the_whole_history_scans_as_one_lazy_frame() {
        let dir = tempfile::tempdir().unwrap();
        let db = HistoricalDatabase::new(dir.path());
        assert!(scan_history(&db).unwrap().is_none());
        db.append(&sample_run(None)).unwrap();
        db.append(&sample_run(None)).unwrap();
        let df = scan_history(&db)
            .unwrap()
            .unwrap()
            .filter(col("record").eq(lit("measurement")))
            .select([col("run_id"), col("value")])
            .collect()
            .unwrap();
        assert_eq!(df.height(), 6);
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = HistoricalDatabase::new(dir.path());
        let run = sample_run(None);
        db.append(&run).unwrap();
        let before = fs::read(db.path_of(&run.id)).unwrap();
        let mut again = run.clone();
        again.suite = "other".into();
        assert!(matches!(db.append(&again), Err(StoreError::Exists { .. })));
        assert_eq!(fs::read(db.path_of(&run.id)).unwrap(), before);
    }

    #[test]
    fn prefixes_resolve_and_unknown_ids_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = HistoricalDatabase::new(dir.path());
        let run = sample_run(None);
        db.append(&run).unwrap();
        assert_eq!(db.load(&run.id[..12]).unwrap().id, run.id);
        let e = db.load("19990101").unwrap_err();
        assert!(matches!(e, StoreError::RunNotFound { .. }), "{e}");
    }

    #[test]
    fn invalid_runs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = HistoricalDatabase::new(dir.path());
        let mut run = sample_run(None);
        run.results[0].subject = "Bad Subject".into();
        assert!(matches!(
            db.append(&run),
            Err(StoreError::InvalidRun { .. })
        ));
    }

    #[test]
    fn a_foreign_parquet_file_is_invalid_not_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.parquet");
        let mut df = DataFrame::new(1, vec![Column::new("x".into(), vec![1u32])]).unwrap();
        ParquetWriter::new(File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let listing = HistoricalDatabase::new(dir.path()).list().unwrap();
        assert_eq!(listing.unreadable.len(), 1);
        let e = listing.unreadable[0].to_string();
        assert!(
            e.contains("foreign.parquet") && e.contains("schema_version"),
            "{e}"
        );
    }
}
