//! `perflab analyze`: change points in any series read from CSV, Parquet or NDJSON with Polars.
//!
//! A perflab history (its folder, or one of its Parquet files) is read as one series per
//! runner and scenario-metric, oldest run first, and each change names its run and commit.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::{
    DataFrame, DataType, IntoLazy, LazyCsvReader, LazyFileListReader, LazyFrame,
    LazyJsonLineReader, PlRefPath, PolarsError, ScanArgsParquet, col, lit,
};
use serde::{Deserialize, Serialize};

use crate::error::AnalyzeError;
use crate::history::{LocatedChange, MetricHistory, read_histories, segment_all};
use crate::stats::{ChangePointConfig, Segment, detect_change_points};
use crate::store::{HistoricalDatabase, scan_history};

/// The format name of a perflab history in errors.
const HISTORY_FORMAT: &str = "perflab history";

/// What to read and how to segment it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeOptions {
    /// The numeric column to analyse: `value` by default.
    pub column: String,
    /// The column that names the series, when the file holds several: `series` by default.
    /// A file without it is one series, named after `column`.
    pub series_column: String,
    /// Change-point settings.
    pub config: ChangePointConfig,
}

/// Change points of every series in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeReport {
    /// The file read.
    pub input: PathBuf,
    /// One entry per series, in order of first appearance.
    pub series: Vec<SeriesAnalysis>,
}

/// Change points of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesAnalysis {
    /// The value of the series column, or the value column's name.
    pub name: String,
    /// Number of observations.
    pub n: usize,
    /// Detected changes (0-based index of the first observation of each new segment); for a
    /// perflab history also the run and commit where each starts.
    pub change_points: Vec<LocatedChange>,
    /// Segments with their means (`end` is exclusive).
    pub segments: Vec<Segment>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            column: "value".into(),
            series_column: "series".into(),
            config: ChangePointConfig::default(),
        }
    }
}

impl AnalyzeReport {
    /// A plain-text table: per series its size, then one line per change and the segments.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        for s in &self.series {
            let _ = writeln!(
                out,
                "series `{}`: {} points, {} change point{}",
                s.name,
                s.n,
                s.change_points.len(),
                if s.change_points.len() == 1 { "" } else { "s" }
            );
            if !s.change_points.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:>8}  {:>14}  {:>14}  {:>9}  {:>9}",
                    "index", "before mean", "after mean", "change", "p-value"
                );
                for located in &s.change_points {
                    let c = &located.change;
                    let change = c
                        .relative_change
                        .map_or_else(|| "-".to_owned(), |r| format!("{:+.2}%", r * 100.0));
                    let mut line = format!(
                        "  {:>8}  {:>14.6}  {:>14.6}  {:>9}  {:>9.2e}",
                        c.index, c.before_mean, c.after_mean, change, c.p_value
                    );
                    if let Some(run) = &located.run_id {
                        let commit = located.commit.as_deref().unwrap_or("unknown");
                        let _ = write!(line, "  run {run} (commit {commit})");
                    }
                    let _ = writeln!(out, "{line}");
                }
            }
            for seg in &s.segments {
                let _ = writeln!(
                    out,
                    "  segment [{}, {}): mean {:.6}",
                    seg.start, seg.end, seg.mean
                );
            }
        }
        out
    }
}

/// Reads `path` (`.csv`, `.parquet`/`.pq`, `.ndjson`/`.jsonl`, by extension) with Polars,
/// groups the rows by the series column when the file has one (keeping row order within each
/// series) and detects the change points of each series.
///
/// A folder is read as a perflab history, and so is a Parquet file with the history's
/// columns (`record`, `run_id`, `runner_fingerprint`, `scenario`, `subject`, `metric`):
/// one series per runner and scenario-metric, in run order (see the module docs).
///
/// # Errors
/// An [`AnalyzeError`] naming the file (and column or row): unreadable or unparsable file,
/// unknown extension, no data rows, missing or non-numeric column, a null, NaN or infinite
/// value.
pub fn analyze_file(path: &Path, options: &AnalyzeOptions) -> Result<AnalyzeReport, AnalyzeError> {
    if path.is_dir() {
        let scanned =
            scan_history(&HistoricalDatabase::new(path)).map_err(|e| AnalyzeError::Parse {
                path: path.to_owned(),
                format: HISTORY_FORMAT,
                message: e.to_string(),
            })?;
        let Some(history) = scanned else {
            return Err(AnalyzeError::Empty {
                path: path.to_owned(),
            });
        };
        return analyze_history(history, path, options);
    }
    let metadata = std::fs::metadata(path).map_err(|source| AnalyzeError::Io {
        path: path.to_owned(),
        source,
    })?;
    if metadata.len() == 0 {
        return Err(AnalyzeError::Empty {
            path: path.to_owned(),
        });
    }
    let (mut lf, format) = scan(path)?;
    let parse = |e: PolarsError| AnalyzeError::Parse {
        path: path.to_owned(),
        format,
        message: e.to_string(),
    };
    let schema = lf.collect_schema().map_err(parse)?;
    if format == "parquet" && HISTORY_COLUMNS.iter().all(|c| schema.contains(c)) {
        return analyze_history(lf, path, options);
    }
    let value_dtype = schema
        .get(&options.column)
        .ok_or_else(|| AnalyzeError::MissingColumn {
            path: path.to_owned(),
            column: options.column.clone(),
            available: schema.iter_names().map(|n| n.to_string()).collect(),
        })?;
    let numeric = value_dtype.is_primitive_numeric();
    let dtype = value_dtype.to_string();
    let grouped = schema.contains(&options.series_column);
    let name = if grouped {
        col(options.series_column.as_str()).cast(DataType::String)
    } else {
        lit(options.column.as_str())
    };
    let df = lf
        .select([
            name.alias("series"),
            col(options.column.as_str()).alias("value"),
        ])
        .collect()
        .map_err(parse)?;
    // A CSV file with a header and no rows has string columns: report it as empty.
    if df.height() == 0 {
        return Err(AnalyzeError::Empty {
            path: path.to_owned(),
        });
    }
    if !numeric {
        return Err(AnalyzeError::NonNumeric {
            path: path.to_owned(),
            column: options.column.clone(),
            dtype,
        });
    }
    let df = df
        .lazy()
        .with_column(col("value").cast(DataType::Float64))
        .collect()
        .map_err(parse)?;
    check_values(&df, path, format, options, grouped)?;
    let groups = df
        .lazy()
        .group_by_stable([col("series")])
        .agg([col("value")])
        .collect()
        .map_err(parse)?;
    let names = groups
        .column("series")
        .and_then(|c| c.str())
        .map_err(parse)?;
    let values = groups
        .column("value")
        .and_then(|c| c.list())
        .map_err(parse)?;
    let mut series = Vec::with_capacity(groups.height());
    for (i, name) in names.iter().enumerate() {
        let name = name.unwrap_or_default().to_owned();
        let xs: Vec<f64> = match values.get_as_series(i) {
            Some(s) => s.f64().map_err(parse)?.iter().flatten().collect(),
            None => Vec::new(),
        };
        let seg =
            detect_change_points(&xs, &options.config).map_err(|source| AnalyzeError::Stats {
                path: path.to_owned(),
                series: name.clone(),
                source,
            })?;
        series.push(SeriesAnalysis {
            name,
            n: seg.n,
            change_points: seg
                .change_points
                .into_iter()
                .map(|change| LocatedChange {
                    change,
                    run_id: None,
                    commit: None,
                })
                .collect(),
            segments: seg.segments,
        });
    }
    Ok(AnalyzeReport {
        input: path.to_owned(),
        series,
    })
}

/// The columns that mark a Parquet file as a perflab history file.
const HISTORY_COLUMNS: [&str; 6] = [
    "record",
    "run_id",
    "runner_fingerprint",
    "scenario",
    "subject",
    "metric",
];

/// Change points of every runner and scenario-metric of a perflab history. Series are named
/// `scenario subject metric`, with ` @ fingerprint` when more than one runner is present.
fn analyze_history(
    history: LazyFrame,
    path: &Path,
    options: &AnalyzeOptions,
) -> Result<AnalyzeReport, AnalyzeError> {
    let histories = read_histories(history, None).map_err(|e| AnalyzeError::Parse {
        path: path.to_owned(),
        format: HISTORY_FORMAT,
        message: e.to_string(),
    })?;
    if histories.is_empty() {
        return Err(AnalyzeError::Empty {
            path: path.to_owned(),
        });
    }
    let one_runner = histories
        .iter()
        .all(|h| h.fingerprint == histories[0].fingerprint);
    let name = |h: &MetricHistory| {
        if one_runner {
            h.key.to_string()
        } else {
            format!("{} @ {}", h.key, h.fingerprint)
        }
    };
    let segmented =
        segment_all(&histories, &options.config).map_err(|source| AnalyzeError::Stats {
            path: path.to_owned(),
            series: name(&histories[0]),
            source,
        })?;
    let series = histories
        .iter()
        .zip(segmented)
        .map(|(h, (seg, change_points))| SeriesAnalysis {
            name: name(h),
            n: seg.n,
            change_points,
            segments: seg.segments,
        })
        .collect();
    Ok(AnalyzeReport {
        input: path.to_owned(),
        series,
    })
}

/// A lazy scan of `path` chosen by its extension, and the format's name.
fn scan(path: &Path) -> Result<(LazyFrame, &'static str), AnalyzeError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("csv") => "csv",
        Some("parquet" | "pq") => "parquet",
        Some("ndjson" | "jsonl") => "ndjson",
        _ => {
            return Err(AnalyzeError::UnknownFormat {
                path: path.to_owned(),
            });
        }
    };
    let parse = |e: PolarsError| AnalyzeError::Parse {
        path: path.to_owned(),
        format,
        message: e.to_string(),
    };
    let pl_path = PlRefPath::try_from_path(path).map_err(parse)?;
    let lf = match format {
        "csv" => LazyCsvReader::new(pl_path)
            .with_infer_schema_length(None)
            .with_glob(false)
            .finish(),
        "parquet" => LazyFrame::scan_parquet(
            pl_path,
            ScanArgsParquet {
                glob: false,
                ..Default::default()
            },
        ),
        _ => LazyJsonLineReader::new(pl_path)
            .with_infer_schema_length(None)
            .finish(),
    }
    .map_err(parse)?;
    Ok((lf, format))
}

/// Fails on the first null, NaN or infinite value, or null series name.
fn check_values(
    df: &DataFrame,
    path: &Path,
    format: &'static str,
    options: &AnalyzeOptions,
    grouped: bool,
) -> Result<(), AnalyzeError> {
    let parse = |e: PolarsError| AnalyzeError::Parse {
        path: path.to_owned(),
        format,
        message: e.to_string(),
    };
    let bad = |column: &str, row: usize, value: String| AnalyzeError::BadValue {
        path: path.to_owned(),
        column: column.to_owned(),
        row,
        value,
    };
    let values = df.column("value").and_then(|c| c.f64()).map_err(parse)?;
    for (row, v) in values.iter().enumerate() {
        match v {
            None => return Err(bad(&options.column, row, "null".into())),
            Some(v) if !v.is_finite() => return Err(bad(&options.column, row, v.to_string())),
            Some(_) => {}
        }
    }
    if grouped {
        let names = df.column("series").and_then(|c| c.str()).map_err(parse)?;
        if let Some(row) = names.iter().position(|n| n.is_none()) {
            return Err(bad(&options.series_column, row, "null".into()));
        }
    }
    Ok(())
}
