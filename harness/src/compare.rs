//! Comparison of a run with an earlier run of the same suite on the same runner.
//!
//! For now each scenario, subject and metric gets the relative change of the point values;
//! both sides keep their whole [`Measurement`] (samples and bounds included) so that the
//! statistical tests of a later issue (Mann-Whitney U, bootstrap CIs, noise thresholds)
//! can be added as further fields of [`MetricComparison`] without changing how it is built.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::schema::{Direction, Measurement, Run};

/// A run compared with its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoricalComparison {
    /// The run compared.
    pub run_id: String,
    /// Its suite.
    pub suite: String,
    /// The runner fingerprint both runs share.
    pub fingerprint: String,
    /// The baseline run: the latest earlier run of the suite on this runner, if any.
    pub baseline_run_id: Option<String>,
    /// One entry per measurement of the run, in the run's order.
    pub entries: Vec<MetricComparison>,
    /// Measurements the baseline has and this run lacks.
    pub missing: Vec<MetricKey>,
    /// History files that could not be read while looking for the baseline.
    pub unreadable: Vec<PathBuf>,
}

/// Identifies a measurement within a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetricKey {
    /// Scenario id.
    pub scenario: String,
    /// Subject.
    pub subject: String,
    /// Metric.
    pub metric: String,
}

/// One measurement of the run beside the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// Which measurement.
    pub key: MetricKey,
    /// This run's measurement.
    pub current: Measurement,
    /// The baseline's, when it has one.
    pub baseline: Option<Measurement>,
    /// `(current - baseline) / baseline` of the point values; `None` without a baseline value
    /// or when the baseline is 0.
    pub relative_change: Option<f64>,
}

impl MetricKey {
    /// The key of `m`.
    pub fn of(m: &Measurement) -> Self {
        Self {
            scenario: m.scenario.clone(),
            subject: m.subject.clone(),
            metric: m.metric.clone(),
        }
    }
}

impl MetricComparison {
    /// Whether the change is for the worse (`Some(true)`), the better, or unknown. Any nonzero
    /// change counts: deciding what is noise is the regression detector's job.
    pub fn is_worse(&self) -> Option<bool> {
        let change = self.relative_change?;
        Some(match self.current.direction {
            Direction::Lower => change > 0.0,
            Direction::Higher => change < 0.0,
        })
    }
}

impl HistoricalComparison {
    /// Compares `current` with `baseline` (or with nothing).
    pub fn new(current: &Run, baseline: Option<&Run>, unreadable: Vec<PathBuf>) -> Self {
        let base: HashMap<MetricKey, &Measurement> = baseline
            .map(|b| b.results.iter().map(|m| (MetricKey::of(m), m)).collect())
            .unwrap_or_default();
        let entries: Vec<MetricComparison> = current
            .results
            .iter()
            .map(|m| {
                let key = MetricKey::of(m);
                let baseline = base.get(&key).map(|b| (*b).clone());
                let relative_change = baseline
                    .as_ref()
                    .filter(|b| b.value != 0.0 && b.value.is_finite() && m.value.is_finite())
                    .map(|b| (m.value - b.value) / b.value);
                MetricComparison {
                    key,
                    current: m.clone(),
                    baseline,
                    relative_change,
                }
            })
            .collect();
        let present: std::collections::HashSet<&MetricKey> =
            entries.iter().map(|e| &e.key).collect();
        let mut missing: Vec<MetricKey> = base
            .keys()
            .filter(|k| !present.contains(k))
            .cloned()
            .collect();
        missing.sort();
        Self {
            run_id: current.id.clone(),
            suite: current.suite.clone(),
            fingerprint: current.runner.fingerprint.clone(),
            baseline_run_id: baseline.map(|b| b.id.clone()),
            entries,
            missing,
            unreadable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{RunnerFacts, RunnerInfo};
    use crate::schema::GitInfo;

    fn run(values: &[(&str, f64)]) -> Run {
        let runner = RunnerInfo::from_facts(RunnerFacts {
            cpu_model: "c".into(),
            cpu_cores: 1,
            memory_gib: 1,
            os: "o".into(),
            kernel: "k".into(),
            rustc: "rustc".into(),
            target: "t".into(),
            gpu: None,
        });
        let mut r = Run::new("memory", runner, GitInfo::default());
        for (metric, v) in values {
            let spec = crate::schema::MetricSpec::known(metric).unwrap();
            r.results.push(Measurement {
                scenario: "memory/a".into(),
                subject: "perflab".into(),
                metric: (*metric).into(),
                unit: spec.unit.into(),
                direction: spec.direction,
                value: *v,
                lower: None,
                upper: None,
                samples: vec![*v],
            });
        }
        r
    }

    #[test]
    fn relative_changes_are_direction_aware() {
        let base = run(&[
            ("wall_time", 100.0),
            ("throughput", 1000.0),
            ("errors", 0.0),
        ]);
        let cur = run(&[
            ("wall_time", 110.0),
            ("throughput", 1100.0),
            ("errors", 2.0),
        ]);
        let c = HistoricalComparison::new(&cur, Some(&base), vec![]);
        assert_eq!(c.baseline_run_id.as_deref(), Some(base.id.as_str()));
        let wall = &c.entries[0];
        assert!((wall.relative_change.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(wall.is_worse(), Some(true));
        assert_eq!(c.entries[1].is_worse(), Some(false));
        assert_eq!(
            c.entries[2].relative_change, None,
            "baseline 0 has no relative change"
        );
        assert!(c.missing.is_empty());
    }

    #[test]
    fn without_baseline_nothing_is_compared() {
        let cur = run(&[("wall_time", 1.0)]);
        let c = HistoricalComparison::new(&cur, None, vec![]);
        assert_eq!(c.baseline_run_id, None);
        assert!(
            c.entries
                .iter()
                .all(|e| e.baseline.is_none() && e.is_worse().is_none())
        );
    }

    #[test]
    fn reports_what_disappeared() {
        let base = run(&[("wall_time", 1.0), ("throughput", 2.0)]);
        let cur = run(&[("wall_time", 1.0)]);
        let c = HistoricalComparison::new(&cur, Some(&base), vec![]);
        assert_eq!(c.missing.len(), 1);
        assert_eq!(c.missing[0].metric, "throughput");
    }
}
