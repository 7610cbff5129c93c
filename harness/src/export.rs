//! Export of stored runs: Bencher Metric Format for Bencher, CSV and Parquet for notebooks.
//!
//! BMF takes one run (`{"scenario@subject": {"metric": {"value", "lower_value",
//! "upper_value"}}}`, which perflab's own BMF ingest reads back). CSV and Parquet take any
//! number of runs, one row per measurement with the run's id, time, commit, branch, suite and
//! runner; Parquet keeps the raw samples as a list column, CSV gives their count.

use std::io::Cursor;

use polars::prelude::{
    CsvWriter, DataFrame, IntoLazy, ParquetWriter, PolarsError, SerWriter, col, concat, lit,
};
use serde_json::{Map, Value, json};

use crate::error::ExportError;
use crate::schema::Run;
use crate::store::run_frame;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Bencher Metric Format JSON (one run).
    Bmf,
    /// Comma-separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl ExportFormat {
    /// Parses `bmf`, `csv` or `parquet`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "bmf" => Some(Self::Bmf),
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// The columns exported per measurement, in order.
const COLUMNS: [&str; 15] = [
    "run_id",
    "timestamp",
    "git_commit",
    "git_branch",
    "suite",
    "runner_fingerprint",
    "runner_cpu_model",
    "scenario",
    "subject",
    "metric",
    "unit",
    "direction",
    "value",
    "lower",
    "upper",
];

/// `runs` in `format`, as bytes.
///
/// # Errors
/// [`ExportError::BmfTakesOneRun`] for BMF of more or fewer than one run, [`ExportError::Empty`]
/// without runs, [`ExportError::Polars`] when a frame cannot be built or written.
pub fn export_runs(runs: &[Run], format: ExportFormat) -> Result<Vec<u8>, ExportError> {
    if runs.is_empty() {
        return Err(ExportError::Empty);
    }
    match format {
        ExportFormat::Bmf => match runs {
            [run] => Ok(bmf(run)),
            _ => Err(ExportError::BmfTakesOneRun(runs.len())),
        },
        ExportFormat::Csv => {
            let mut df = measurements(runs, false)?;
            let mut out = Vec::new();
            CsvWriter::new(&mut out)
                .include_header(true)
                .finish(&mut df)
                .map_err(polars_err)?;
            Ok(out)
        }
        ExportFormat::Parquet => {
            let mut df = measurements(runs, true)?;
            let mut out = Cursor::new(Vec::new());
            ParquetWriter::new(&mut out)
                .finish(&mut df)
                .map_err(polars_err)?;
            Ok(out.into_inner())
        }
    }
}

/// One run as BMF: every measurement under `scenario@subject`, its metric as the measure.
fn bmf(run: &Run) -> Vec<u8> {
    let mut benchmarks = Map::new();
    for m in &run.results {
        let name = format!("{}@{}", m.scenario, m.subject);
        let mut measure = Map::new();
        measure.insert("value".into(), json!(m.value));
        if let Some(lo) = m.lower {
            measure.insert("lower_value".into(), json!(lo));
        }
        if let Some(hi) = m.upper {
            measure.insert("upper_value".into(), json!(hi));
        }
        if let Value::Object(entry) = benchmarks
            .entry(name)
            .or_insert_with(|| Value::Object(Map::new()))
        {
            entry.insert(m.metric.clone(), Value::Object(measure));
        }
    }
    let mut out =
        serde_json::to_vec_pretty(&Value::Object(benchmarks)).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

/// The measurement rows of `runs`; with `samples`, the raw samples as a list column, else
/// their count.
fn measurements(runs: &[Run], samples: bool) -> Result<DataFrame, ExportError> {
    let mut frames = Vec::with_capacity(runs.len());
    for run in runs {
        let df = run_frame(run).map_err(|e| ExportError::Polars(e.to_string()))?;
        let mut columns: Vec<_> = COLUMNS.iter().map(|c| col(*c)).collect();
        columns.push(if samples {
            col("samples")
        } else {
            col("samples").list().len().alias("n_samples")
        });
        frames.push(
            df.lazy()
                .filter(col("record").eq(lit("measurement")))
                .select(columns),
        );
    }
    concat(frames, Default::default())
        .and_then(|lf| lf.collect())
        .map_err(polars_err)
}

fn polars_err(e: PolarsError) -> ExportError {
    ExportError::Polars(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{RunnerFacts, RunnerInfo};
    use crate::ingest::parse_bmf;
    use crate::schema::{GitInfo, Measurement, MetricSpec};

    fn run(value: f64) -> Run {
        let runner = RunnerInfo::from_facts(RunnerFacts {
            cpu_model: "c".into(),
            cpu_cores: 1,
            memory_gib: 1,
            os: "o".into(),
            kernel: "k".into(),
            rustc: "r".into(),
            target: "t".into(),
            gpu: None,
        });
        let mut r = Run::new("memory", runner, GitInfo::default());
        let spec = MetricSpec::known("wall_time").unwrap();
        for subject in ["perflab", "vec"] {
            r.results.push(Measurement {
                scenario: "memory/a/b64".into(),
                subject: subject.into(),
                metric: "wall_time".into(),
                unit: spec.unit.into(),
                direction: spec.direction,
                value,
                lower: Some(value - 1.0),
                upper: Some(value + 1.0),
                samples: vec![value - 1.0, value, value + 1.0],
            });
        }
        r
    }

    #[test]
    fn bmf_round_trips_through_perflab_ingest() {
        let r = run(10.0);
        let bytes = export_runs(std::slice::from_ref(&r), ExportFormat::Bmf).unwrap();
        let back = parse_bmf(
            std::path::Path::new("export.json"),
            std::str::from_utf8(&bytes).unwrap(),
        )
        .unwrap();
        assert_eq!(back.len(), 2);
        let vec = back.iter().find(|m| m.subject == "vec").unwrap();
        assert_eq!(
            (
                vec.scenario.as_str(),
                vec.metric.as_str(),
                vec.value,
                vec.lower,
                vec.upper
            ),
            ("memory/a/b64", "wall_time", 10.0, Some(9.0), Some(11.0))
        );
        let e = export_runs(&[r.clone(), r], ExportFormat::Bmf).unwrap_err();
        assert!(e.to_string().contains("one run"), "{e}");
    }

    #[test]
    fn csv_has_a_row_per_measurement_and_the_sample_count() {
        let bytes = export_runs(&[run(10.0), run(12.0)], ExportFormat::Csv).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("run_id,timestamp,git_commit"),
            "{header}"
        );
        assert!(header.ends_with(",value,lower,upper,n_samples"), "{header}");
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 4);
        assert!(rows[0].ends_with(",10.0,9.0,11.0,3"), "{}", rows[0]);
    }

    #[test]
    fn parquet_keeps_the_samples() {
        use polars::prelude::SerReader as _;
        let bytes = export_runs(&[run(10.0)], ExportFormat::Parquet).unwrap();
        let df = polars::prelude::ParquetReader::new(Cursor::new(bytes))
            .finish()
            .unwrap();
        assert_eq!(df.height(), 2);
        let samples = df.column("samples").unwrap().list().unwrap();
        assert_eq!(samples.get_as_series(0).unwrap().len(), 3);
        assert!(export_runs(&[], ExportFormat::Parquet).is_err());
        assert_eq!(ExportFormat::parse("csv"), Some(ExportFormat::Csv));
        assert_eq!(ExportFormat::parse("xlsx"), None);
    }
}
