//! Comparison of a run (head) with a base run of the same runner: per-key verdicts and evidence.
//!
//! Base and head measurements are paired by (scenario, subject, metric) with a Polars full
//! join of the two runs' history frames. Each pair gets a noise threshold learned from the
//! history of that scenario-metric on the same runner (a lazy scan of the history, grouped by
//! key, fed to [`noise_threshold`]); then [`ab_verdicts`] judges all pairs of the run as one
//! family (Benjamini-Hochberg across the run). A key on one side only, or with different
//! units (or directions) on the two sides, is [`Verdict::Skipped`] with the reason.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;

use polars::prelude::{
    IntoLazy, JoinArgs, JoinCoalesce, JoinType, LazyFrame, PolarsError, SortMultipleOptions, col,
    lit,
};
use serde::{Deserialize, Serialize};

use crate::error::ComparisonError;
use crate::history::{HistoryChange, MetricHistory, read_histories};
use crate::report::format_value;
use crate::schema::{Direction, Measurement, Run, short_commit};
use crate::stats::{
    AbSamples, Evidence, MetricKind, NoiseThreshold, ThresholdSource, Verdict, VerdictConfig,
    ab_verdicts, noise_threshold,
};
use crate::store::{HistoricalDatabase, run_frame, scan_history};

/// A run compared with its base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoricalComparison {
    /// The run compared (head).
    pub run_id: String,
    /// Its suite.
    pub suite: String,
    /// The runner fingerprint both runs share.
    pub fingerprint: String,
    /// The base run: the latest earlier run of the suite on this runner, or the one asked for.
    pub baseline_run_id: Option<String>,
    /// One entry per key: the head's measurements in the head's order, then the keys only
    /// the base has.
    pub entries: Vec<MetricComparison>,
    /// Measurements the base has and this run lacks (also entries, `skipped`).
    pub missing: Vec<MetricKey>,
    /// History files that could not be read while looking for the base.
    pub unreadable: Vec<PathBuf>,
    /// Change points in the history of each of the head's keys on this runner, the head
    /// included, oldest first per key.
    pub change_points: Vec<HistoryChange>,
}

/// Identifies a measurement within a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetricKey {
    /// Scenario id.
    pub scenario: String,
    /// Subject.
    pub subject: String,
    /// Metric.
    pub metric: String,
}

/// One key of the comparison: both sides, the verdict and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// Which measurement.
    pub key: MetricKey,
    /// This run's measurement, when it has one.
    pub current: Option<Measurement>,
    /// The base's, when it has one.
    pub baseline: Option<Measurement>,
    /// `(current - baseline) / baseline` of the point values; `None` without both values
    /// or when the baseline is 0.
    pub relative_change: Option<f64>,
    /// What happened between base and head.
    pub verdict: Verdict,
    /// Why: effect with interval, adjusted p, threshold and its source.
    pub evidence: Evidence,
}

/// A regression found by a comparison (see [`HistoricalComparison::regressions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// Scenario id.
    pub scenario: String,
    /// Subject.
    pub subject: String,
    /// Metric.
    pub metric: String,
    /// Unit of the metric.
    pub unit: String,
    /// Relative change (fraction of the base; +0.15 = 15% higher).
    pub relative_change: f64,
    /// Lower end of the 95% interval of the change (two-sample test only).
    pub ci_low: Option<f64>,
    /// Upper end of the 95% interval of the change.
    pub ci_high: Option<f64>,
    /// Benjamini-Hochberg adjusted p-value (two-sample test only).
    pub p_adjusted: Option<f64>,
    /// The noise threshold the change exceeded, and where it came from.
    pub threshold: NoiseThreshold,
}

/// The outcome of re-measuring a comparison's suspected regressions
/// ([`crate::BenchmarkingFramework::confirm_regressions_blocking`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The re-measurement of the suspected scenarios; `None` when nothing was suspected.
    pub run: Option<Run>,
    /// Where the re-measurement was saved (it is not appended to history).
    pub run_file: Option<PathBuf>,
    /// Suspected regressions that were regressions again.
    pub confirmed: Vec<Regression>,
    /// Suspected regressions the re-measurement did not reproduce.
    pub refuted: Vec<Regression>,
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

impl fmt::Display for MetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.scenario, self.subject, self.metric)
    }
}

impl fmt::Display for Regression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            self.scenario,
            self.subject,
            self.metric,
            pct(self.relative_change)
        )?;
        if let (Some(lo), Some(hi)) = (self.ci_low, self.ci_high) {
            write!(f, " [{}, {}]", pct(lo), pct(hi))?;
        }
        if let Some(p) = self.p_adjusted {
            write!(f, ", p adj {p:.2e}")?;
        }
        write!(
            f,
            ", threshold {:.2}% ({})",
            self.threshold.relative * 100.0,
            source_name(self.threshold.source)
        )
    }
}

impl Confirmation {
    /// What was re-measured and which suspected regressions it confirmed, as text lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let total = self.confirmed.len() + self.refuted.len();
        if total == 0 {
            return out;
        }
        let _ = writeln!(
            out,
            "\nconfirmation (each suspect re-measured alone, more samples):"
        );
        for r in &self.confirmed {
            let _ = writeln!(out, "  confirmed      {r}");
        }
        for r in &self.refuted {
            let _ = writeln!(out, "  not confirmed  {r}");
        }
        if let Some(file) = &self.run_file {
            let _ = writeln!(out, "  re-measurement: {}", file.display());
        }
        let _ = writeln!(
            out,
            "{} of {total} suspected regression(s) confirmed",
            self.confirmed.len()
        );
        out
    }
}

impl MetricComparison {
    /// Whether the point value changed for the worse (`Some(true)`), the better, or unknown.
    /// Any nonzero change counts; [`Self::verdict`] says whether it is more than noise.
    pub fn is_worse(&self) -> Option<bool> {
        let change = self.relative_change?;
        let direction = self.current.as_ref().or(self.baseline.as_ref())?.direction;
        Some(match direction {
            Direction::Lower => change > 0.0,
            Direction::Higher => change < 0.0,
        })
    }

    /// The unit of the head's measurement, else the base's.
    pub fn unit(&self) -> &str {
        self.current
            .as_ref()
            .or(self.baseline.as_ref())
            .map_or("", |m| m.unit.as_str())
    }

    /// A side's point value with its unit, or `-`.
    pub fn value_text(&self, side: Option<&Measurement>) -> String {
        side.map_or_else(|| "-".into(), |m| format_value(m.value, &m.unit))
    }

    /// The change with its 95% interval when there is one, e.g. `+4.20% [+3.10%, +5.30%]`.
    pub fn change_text(&self) -> String {
        let ev = &self.evidence;
        match (
            ev.relative_change.or(self.relative_change),
            ev.ci_low,
            ev.ci_high,
        ) {
            (Some(c), Some(lo), Some(hi)) => format!("{} [{}, {}]", pct(c), pct(lo), pct(hi)),
            (Some(c), _, _) => pct(c),
            (None, _, _) => "-".into(),
        }
    }

    /// The Benjamini-Hochberg adjusted p-value, or `-`.
    pub fn p_adjusted_text(&self) -> String {
        self.evidence
            .p_adjusted
            .map_or_else(|| "-".into(), |p| format!("{p:.2e}"))
    }

    /// The noise threshold and where it came from, e.g. `2.00% (floor)`.
    pub fn threshold_text(&self) -> String {
        let t = &self.evidence.threshold;
        format!("{:.2}% ({})", t.relative * 100.0, source_name(t.source))
    }

    /// The size of the change used to order by severity: the verdict's effect, else the point
    /// values' relative change, as an absolute value.
    fn severity(&self) -> f64 {
        self.evidence
            .relative_change
            .or(self.relative_change)
            .filter(|v| v.is_finite())
            .map_or(0.0, f64::abs)
    }
}

/// Regressions first, then improvements, noisy, unchanged and skipped.
fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Regression => 0,
        Verdict::Improvement => 1,
        Verdict::Noisy => 2,
        Verdict::Unchanged => 3,
        Verdict::Skipped => 4,
    }
}

impl HistoricalComparison {
    /// Compares `current` (head) with `baseline` (or with nothing: every key `skipped`).
    /// `history` holds, per key, the point values of earlier runs on this runner, oldest
    /// first, from which each key's noise threshold is learned.
    pub fn new(
        current: &Run,
        baseline: Option<&Run>,
        history: &HashMap<MetricKey, Vec<f64>>,
        unreadable: Vec<PathBuf>,
        config: &VerdictConfig,
    ) -> Result<Self, ComparisonError> {
        let pairs = match baseline {
            Some(base) => pair(base, current)?,
            None => (0..current.results.len())
                .map(|i| (None, Some(i)))
                .collect(),
        };
        let mut entries = Vec::with_capacity(pairs.len());
        let mut inputs = Vec::new();
        let mut tested = Vec::new();
        for (b, h) in pairs {
            let base = b.and_then(|i| baseline.and_then(|r| r.results.get(i)));
            let head = h.and_then(|i| current.results.get(i));
            let Some(any) = head.or(base) else { continue };
            let key = MetricKey::of(any);
            let kind = MetricKind::of(&any.metric, &any.unit);
            let threshold = noise_threshold(history.get(&key).map_or(&[][..], Vec::as_slice), kind);
            let reason = match (base, head) {
                (None, _) if baseline.is_none() => Some("no base run to compare with".to_owned()),
                (None, _) => Some("only in head: the base run has no such measurement".to_owned()),
                (_, None) => Some("only in base: the head run has no such measurement".to_owned()),
                (Some(b), Some(h)) if b.unit != h.unit => {
                    Some(format!("mixed units: base `{}`, head `{}`", b.unit, h.unit))
                }
                (Some(b), Some(h)) if b.direction != h.direction => Some(format!(
                    "mixed directions: base {}, head {}",
                    b.direction.as_str(),
                    h.direction.as_str()
                )),
                (Some(b), Some(h)) => {
                    inputs.push(AbSamples {
                        name: key.to_string(),
                        direction: h.direction,
                        base: samples_of(b),
                        head: samples_of(h),
                        threshold,
                    });
                    tested.push(entries.len());
                    None
                }
            };
            let relative_change = match (base, head) {
                (Some(b), Some(h))
                    if b.unit == h.unit
                        && b.value != 0.0
                        && b.value.is_finite()
                        && h.value.is_finite() =>
                {
                    Some((h.value - b.value) / b.value)
                }
                _ => None,
            };
            entries.push(MetricComparison {
                evidence: skipped_evidence(base, head, threshold, reason.unwrap_or_default()),
                key,
                current: head.cloned(),
                baseline: base.cloned(),
                relative_change,
                verdict: Verdict::Skipped,
            });
        }
        for (i, v) in tested.into_iter().zip(ab_verdicts(&inputs, config)) {
            entries[i].verdict = v.verdict;
            entries[i].evidence = v.evidence;
        }
        let mut missing: Vec<MetricKey> = entries
            .iter()
            .filter(|e| e.current.is_none())
            .map(|e| e.key.clone())
            .collect();
        missing.sort();
        Ok(Self {
            run_id: current.id.clone(),
            suite: current.suite.clone(),
            fingerprint: current.runner.fingerprint.clone(),
            baseline_run_id: baseline.map(|b| b.id.clone()),
            entries,
            missing,
            unreadable,
            change_points: Vec::new(),
        })
    }

    /// The entry of one key.
    pub fn entry(&self, scenario: &str, subject: &str, metric: &str) -> Option<&MetricComparison> {
        self.entries.iter().find(|e| {
            e.key.scenario == scenario && e.key.subject == subject && e.key.metric == metric
        })
    }

    /// The entries by severity: regressions, improvements, noisy, unchanged, skipped; within
    /// each, the largest relative change first.
    pub fn by_severity(&self) -> Vec<&MetricComparison> {
        let mut v: Vec<&MetricComparison> = self.entries.iter().collect();
        v.sort_by(|a, b| {
            verdict_rank(a.verdict)
                .cmp(&verdict_rank(b.verdict))
                .then_with(|| b.severity().total_cmp(&a.severity()))
                .then_with(|| a.key.cmp(&b.key))
        });
        v
    }

    /// The regressions, largest relative change first.
    pub fn regressions(&self) -> Vec<Regression> {
        self.by_severity()
            .into_iter()
            .filter(|e| e.verdict == Verdict::Regression)
            .map(|e| Regression {
                scenario: e.key.scenario.clone(),
                subject: e.key.subject.clone(),
                metric: e.key.metric.clone(),
                unit: e.unit().to_owned(),
                relative_change: e
                    .evidence
                    .relative_change
                    .or(e.relative_change)
                    .unwrap_or(0.0),
                ci_low: e.evidence.ci_low,
                ci_high: e.evidence.ci_high,
                p_adjusted: e.evidence.p_adjusted,
                threshold: e.evidence.threshold,
            })
            .collect()
    }

    /// A terminal table ordered by severity, with a count per verdict.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let base = self.baseline_run_id.as_deref().unwrap_or("(none)");
        let _ = writeln!(
            out,
            "base {base} -> head {} (suite {}, runner {})",
            self.run_id, self.suite, self.fingerprint
        );
        let header = [
            "verdict",
            "scenario",
            "subject",
            "metric",
            "base",
            "head",
            "change [95% CI]",
            "p adj",
            "threshold",
            "reason",
        ];
        let mut rows: Vec<[String; 10]> = vec![header.map(str::to_owned)];
        for e in self.by_severity() {
            let ev = &e.evidence;
            rows.push([
                e.verdict.to_string(),
                e.key.scenario.clone(),
                e.key.subject.clone(),
                e.key.metric.clone(),
                e.value_text(e.baseline.as_ref()),
                e.value_text(e.current.as_ref()),
                e.change_text(),
                e.p_adjusted_text(),
                e.threshold_text(),
                ev.reason.clone(),
            ]);
        }
        let mut widths = [0usize; 10];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i == row.len() - 1 {
                    line.push_str(cell);
                } else {
                    let pad = w - cell.chars().count();
                    let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let count = |v: Verdict| self.entries.iter().filter(|e| e.verdict == v).count();
        let _ = writeln!(
            out,
            "{} regression(s), {} improvement(s), {} noisy, {} unchanged, {} skipped",
            count(Verdict::Regression),
            count(Verdict::Improvement),
            count(Verdict::Noisy),
            count(Verdict::Unchanged),
            count(Verdict::Skipped)
        );
        if !self.change_points.is_empty() {
            let _ = writeln!(
                out,
                "\nchange points in this runner's history ({}):",
                self.change_points.len()
            );
            for c in &self.change_points {
                let unit = self
                    .entry(&c.key.scenario, &c.key.subject, &c.key.metric)
                    .map_or("", MetricComparison::unit);
                let located = &c.change;
                let _ = writeln!(
                    out,
                    "  {}: from run {} (commit {}, point {} of {}): {} -> {} ({})",
                    c.key,
                    located.run_id.as_deref().unwrap_or("?"),
                    located.commit.as_deref().map_or("unknown", short_commit),
                    located.change.index,
                    c.n,
                    format_value(located.change.before_mean, unit),
                    format_value(located.change.after_mean, unit),
                    located.change.relative_change.map_or("-".into(), pct),
                );
            }
        }
        out
    }
}

fn pct(v: f64) -> String {
    format!("{:+.2}%", v * 100.0)
}

fn source_name(s: ThresholdSource) -> &'static str {
    match s {
        ThresholdSource::History { .. } => "history",
        ThresholdSource::Floor { .. } => "floor",
        ThresholdSource::Fallback { .. } => "fallback",
    }
}

/// The raw samples of `m`, or its point value when it has none (a one-shot BMF value).
fn samples_of(m: &Measurement) -> Vec<f64> {
    if m.samples.is_empty() {
        vec![m.value]
    } else {
        m.samples.clone()
    }
}

/// The evidence of a key decided before any test: sample counts, threshold and the reason.
fn skipped_evidence(
    base: Option<&Measurement>,
    head: Option<&Measurement>,
    threshold: NoiseThreshold,
    reason: String,
) -> Evidence {
    Evidence::counts_only(
        base.map_or(0, |m| m.samples.len()),
        head.map_or(0, |m| m.samples.len()),
        threshold,
        reason,
    )
}

fn polars_err(what: &'static str) -> impl Fn(PolarsError) -> ComparisonError {
    move |e| ComparisonError::Polars {
        what,
        message: e.to_string(),
    }
}

fn key_columns() -> [polars::prelude::Expr; 3] {
    [col("scenario"), col("subject"), col("metric")]
}

/// The measurement keys of `run` with their index in `run.results` as column `ordinal`.
fn measurement_keys(run: &Run, ordinal: &str) -> Result<LazyFrame, ComparisonError> {
    Ok(run_frame(run)?
        .lazy()
        .filter(col("record").eq(lit("measurement")))
        .select([
            col("scenario"),
            col("subject"),
            col("metric"),
            col("ordinal").alias(ordinal),
        ]))
}

/// Indices into `base.results` and `head.results` of one key; `None` where a side lacks it.
type Pair = (Option<usize>, Option<usize>);

/// Pairs the measurements of `base` and `head` by key (a Polars full join): `(base index,
/// head index)`, in the head's order, then the base-only keys in the base's order.
fn pair(base: &Run, head: &Run) -> Result<Vec<Pair>, ComparisonError> {
    let err = polars_err("joining base and head measurements");
    let joined = measurement_keys(head, "head_ordinal")?
        .join(
            measurement_keys(base, "base_ordinal")?,
            key_columns(),
            key_columns(),
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .sort(
            ["head_ordinal", "base_ordinal"],
            SortMultipleOptions::default().with_nulls_last(true),
        )
        .collect()
        .map_err(&err)?;
    let index = |name: &str| -> Result<Vec<Option<usize>>, ComparisonError> {
        let ca = joined.column(name).and_then(|c| c.u32()).map_err(&err)?;
        Ok(ca
            .iter()
            .map(|v| v.and_then(|v| usize::try_from(v).ok()))
            .collect())
    };
    Ok(index("base_ordinal")?
        .into_iter()
        .zip(index("head_ordinal")?)
        .collect())
}

/// The measurement series of every key measured on runner `fingerprint` in runs before
/// `before` (by id): a lazy scan of the whole history, filtered and grouped by key.
pub(crate) fn runner_histories(
    db: &HistoricalDatabase,
    fingerprint: &str,
    before: &str,
) -> Result<Vec<MetricHistory>, ComparisonError> {
    let Some(history) = scan_history(db)? else {
        return Ok(Vec::new());
    };
    let filter = col("runner_fingerprint")
        .eq(lit(fingerprint))
        .and(col("run_id").lt(lit(before)));
    read_histories(history, Some(filter))
        .map_err(polars_err("reading the history of the compared metrics"))
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

    fn compare(cur: &Run, base: Option<&Run>) -> HistoricalComparison {
        HistoricalComparison::new(
            cur,
            base,
            &HashMap::new(),
            vec![],
            &VerdictConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn relative_changes_and_verdicts_are_direction_aware() {
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
        // Single samples of noisy metrics say nothing without a history of their noise.
        let blind = compare(&cur, Some(&base));
        assert_eq!(blind.entries[0].verdict, Verdict::Noisy);
        assert_eq!(blind.entries[1].verdict, Verdict::Noisy);
        // With a flat history, the kinds' floors (2% for times, 1% otherwise) apply.
        let history: HashMap<MetricKey, Vec<f64>> = base
            .results
            .iter()
            .map(|m| (MetricKey::of(m), vec![m.value; 10]))
            .collect();
        let c = HistoricalComparison::new(
            &cur,
            Some(&base),
            &history,
            vec![],
            &VerdictConfig::default(),
        )
        .unwrap();
        assert_eq!(c.baseline_run_id.as_deref(), Some(base.id.as_str()));
        let wall = &c.entries[0];
        assert!((wall.relative_change.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(wall.is_worse(), Some(true));
        assert_eq!(wall.verdict, Verdict::Regression, "{wall:?}");
        assert!(matches!(
            wall.evidence.threshold.source,
            ThresholdSource::Floor { deltas: 9, .. }
        ));
        assert_eq!(c.entries[1].is_worse(), Some(false));
        assert_eq!(c.entries[1].verdict, Verdict::Improvement);
        assert_eq!(
            c.entries[2].relative_change, None,
            "baseline 0 has no relative change"
        );
        assert_eq!(c.entries[2].verdict, Verdict::Skipped);
        assert!(c.missing.is_empty());
        let regs = c.regressions();
        assert_eq!(regs.len(), 1);
        assert_eq!(regs[0].metric, "wall_time");
        assert!((regs[0].relative_change - 0.1).abs() < 1e-12);
        let order: Vec<Verdict> = c.by_severity().iter().map(|e| e.verdict).collect();
        assert_eq!(
            order,
            [Verdict::Regression, Verdict::Improvement, Verdict::Skipped]
        );
        let table = c.render_table();
        assert!(
            table.contains("1 regression(s), 1 improvement(s)"),
            "{table}"
        );
    }

    #[test]
    fn history_sets_the_threshold() {
        let base = run(&[("wall_time", 100.0)]);
        let cur = run(&[("wall_time", 104.0)]);
        // No history: one value per side of a time says nothing.
        let blind = compare(&cur, Some(&base));
        assert_eq!(blind.entries[0].verdict, Verdict::Noisy);
        assert!(
            blind.entries[0]
                .evidence
                .reason
                .contains("too little history")
        );
        // A flat history: the 2% floor for times, +4% is a regression.
        let key = MetricKey::of(&cur.results[0]);
        let history = HashMap::from([(key, vec![100.0; 10])]);
        let c = HistoricalComparison::new(
            &cur,
            Some(&base),
            &history,
            vec![],
            &VerdictConfig::default(),
        )
        .unwrap();
        assert_eq!(c.entries[0].verdict, Verdict::Regression);
        assert_eq!(c.entries[0].evidence.threshold.relative, 0.02);
    }

    #[test]
    fn without_baseline_everything_is_skipped() {
        let cur = run(&[("wall_time", 1.0)]);
        let c = compare(&cur, None);
        assert_eq!(c.baseline_run_id, None);
        assert!(c.entries.iter().all(|e| e.baseline.is_none()
            && e.is_worse().is_none()
            && e.verdict == Verdict::Skipped
            && e.evidence.reason.contains("no base run")));
    }

    #[test]
    fn reports_what_disappeared_or_changed_unit() {
        let base = run(&[("wall_time", 1.0), ("throughput", 2.0)]);
        let mut cur = run(&[("wall_time", 1.0), ("instructions", 5.0)]);
        cur.results[0].unit = "us".into();
        let c = compare(&cur, Some(&base));
        assert_eq!(c.missing.len(), 1);
        assert_eq!(c.missing[0].metric, "throughput");
        let wall = c.entry("memory/a", "perflab", "wall_time").unwrap();
        assert_eq!(wall.verdict, Verdict::Skipped);
        assert_eq!(wall.evidence.reason, "mixed units: base `ns`, head `us`");
        assert_eq!(wall.relative_change, None);
        let gone = c.entry("memory/a", "perflab", "throughput").unwrap();
        assert_eq!(gone.verdict, Verdict::Skipped);
        assert!(gone.evidence.reason.starts_with("only in base"));
        let new = c.entry("memory/a", "perflab", "instructions").unwrap();
        assert!(new.evidence.reason.starts_with("only in head"));
        assert_eq!(c.entries.len(), 3);
        assert!(c.entries[2].current.is_none(), "base-only keys come last");
    }
}
