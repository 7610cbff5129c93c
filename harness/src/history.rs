//! The stored history of each scenario-metric, read with Polars, and the change points in it.
//!
//! A history series is one key (scenario, subject, metric) on one runner: the point value of
//! every run that measured it, oldest run first. [`segment_history`] runs
//! [`detect_change_points`] over it and names the run (and commit) where each new segment
//! starts; [`segment_all`] does that for many series on every core.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use polars::prelude::{Expr, LazyFrame, PolarsError, SortMultipleOptions, col, lit};
use serde::{Deserialize, Serialize};

use crate::compare::MetricKey;
use crate::error::StatsError;
use crate::stats::{ChangePoint, ChangePointConfig, Segmentation, detect_change_points};

/// One key's point values on one runner, oldest run first, with the run of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricHistory {
    /// The runner fingerprint.
    pub fingerprint: String,
    /// Which measurement.
    pub key: MetricKey,
    /// The run of each value (shared between the keys a run measured).
    pub runs: Vec<Arc<RunRef>>,
    /// Point values.
    pub values: Vec<f64>,
}

/// A run as the history names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRef {
    /// Run id.
    pub id: String,
    /// Its git commit, when it had one.
    pub commit: Option<String>,
}

/// A change point with the run and commit of the first observation of the new segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocatedChange {
    /// Where the change is and how large it is.
    #[serde(flatten)]
    pub change: ChangePoint,
    /// The run where the new segment starts (series read from a perflab history only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// That run's commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// A change point in the history of one scenario-metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryChange {
    /// Which measurement.
    pub key: MetricKey,
    /// Number of runs in the series.
    pub n: usize,
    /// The change and where it starts.
    #[serde(flatten)]
    pub change: LocatedChange,
}

impl MetricHistory {
    /// Appends one observation of `run`.
    pub fn push(&mut self, run: Arc<RunRef>, value: f64) {
        self.runs.push(run);
        self.values.push(value);
    }
}

/// Segments `history`. Non-finite values (which carry no level) are left out first, so
/// indices count the finite observations.
///
/// # Errors
/// [`StatsError::InvalidConfig`] for a setting out of range.
pub fn segment_history(
    history: &MetricHistory,
    config: &ChangePointConfig,
) -> Result<(Segmentation, Vec<LocatedChange>), StatsError> {
    let kept: Vec<usize> = (0..history.values.len())
        .filter(|&i| history.values[i].is_finite())
        .collect();
    let values: Vec<f64> = kept.iter().map(|&i| history.values[i]).collect();
    let segmentation = if values.is_empty() {
        Segmentation {
            n: 0,
            change_points: Vec::new(),
            segments: Vec::new(),
            sigma: 0.0,
        }
    } else {
        detect_change_points(&values, config)?
    };
    let located = segmentation
        .change_points
        .iter()
        .map(|c| {
            let run = kept.get(c.index).and_then(|&i| history.runs.get(i));
            LocatedChange {
                change: c.clone(),
                run_id: run.map(|r| r.id.clone()),
                commit: run.and_then(|r| r.commit.clone()),
            }
        })
        .collect();
    Ok((segmentation, located))
}

/// [`segment_history`] of every series, spread over the machine's cores, in input order.
///
/// # Errors
/// As [`segment_history`].
pub fn segment_all(
    histories: &[MetricHistory],
    config: &ChangePointConfig,
) -> Result<Vec<(Segmentation, Vec<LocatedChange>)>, StatsError> {
    let threads = thread::available_parallelism().map_or(1, usize::from);
    let chunk = histories.len().div_ceil(threads).max(1);
    thread::scope(|scope| {
        let workers: Vec<_> = histories
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|h| segment_history(h, config))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect::<Result<Vec<_>, StatsError>>()
    })
}

/// The change points of every series, flattened, in input order.
///
/// # Errors
/// As [`segment_history`].
pub fn history_changes(
    histories: &[MetricHistory],
    config: &ChangePointConfig,
) -> Result<Vec<HistoryChange>, StatsError> {
    let mut out = Vec::new();
    for (h, (segmentation, located)) in histories.iter().zip(segment_all(histories, config)?) {
        out.extend(located.into_iter().map(|change| HistoryChange {
            key: h.key.clone(),
            n: segmentation.n,
            change,
        }));
    }
    Ok(out)
}

/// The measurement series of a history frame (the columns [`crate::run_frame`] writes):
/// one [`MetricHistory`] per runner and key, in order of first appearance, each oldest run
/// first. `filter` narrows the measurement rows (a runner, runs before a given one).
pub(crate) fn read_histories(
    history: LazyFrame,
    filter: Option<Expr>,
) -> Result<Vec<MetricHistory>, PolarsError> {
    let mut measurements = col("record").eq(lit("measurement"));
    if let Some(f) = filter {
        measurements = measurements.and(f);
    }
    // Run ids start with their timestamp, so they order the runs in time.
    let grouped = history
        .filter(measurements)
        .select([
            col("runner_fingerprint"),
            col("scenario"),
            col("subject"),
            col("metric"),
            col("run_id"),
            col("git_commit"),
            col("value"),
        ])
        .sort(
            ["run_id"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .group_by_stable([
            col("runner_fingerprint"),
            col("scenario"),
            col("subject"),
            col("metric"),
        ])
        .agg([col("run_id"), col("git_commit"), col("value")])
        .collect()?;
    let text = |name: &str| grouped.column(name).and_then(|c| c.str());
    let (fingerprint, scenario, subject, metric) = (
        text("runner_fingerprint")?,
        text("scenario")?,
        text("subject")?,
        text("metric")?,
    );
    let list = |name: &str| grouped.column(name).and_then(|c| c.list());
    let (runs, commits, values) = (list("run_id")?, list("git_commit")?, list("value")?);
    // One shared `RunRef` per run: a million rows name only a thousand runs.
    let mut run_refs: HashMap<String, Arc<RunRef>> = HashMap::new();
    let mut out = Vec::with_capacity(grouped.height());
    for i in 0..grouped.height() {
        let (Some(fp), Some(sc), Some(su), Some(me)) = (
            fingerprint.get(i),
            scenario.get(i),
            subject.get(i),
            metric.get(i),
        ) else {
            continue;
        };
        let mut h = MetricHistory {
            fingerprint: fp.to_owned(),
            key: MetricKey {
                scenario: sc.to_owned(),
                subject: su.to_owned(),
                metric: me.to_owned(),
            },
            ..MetricHistory::default()
        };
        if let (Some(r), Some(c), Some(v)) = (
            runs.get_as_series(i),
            commits.get_as_series(i),
            values.get_as_series(i),
        ) {
            for ((r, c), v) in r.str()?.iter().zip(c.str()?.iter()).zip(v.f64()?.iter()) {
                let (Some(r), Some(v)) = (r, v) else {
                    continue;
                };
                let run = match run_refs.get(r) {
                    Some(run) => Arc::clone(run),
                    None => {
                        let run = Arc::new(RunRef {
                            id: r.to_owned(),
                            commit: c.map(str::to_owned),
                        });
                        run_refs.insert(r.to_owned(), Arc::clone(&run));
                        run
                    }
                };
                h.push(run, v);
            }
        }
        out.push(h);
    }
    Ok(out)
}
