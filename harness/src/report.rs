//! The performance report of one run: rows with ratios to anchors and target verdicts,
//! rendered as a plain terminal table (the HTML site and the Markdown summary reuse its rows).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::fingerprint::RunnerInfo;
use crate::plot::ReportPlots;
use crate::schema::{Failure, GitInfo, PERFLAB_SUBJECT, Run, Skipped};
use crate::suite::{TargetOutcome, TargetStatus};

/// A run laid out for people: one row per measurement, plus targets, failures and skips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceReport {
    /// The run id.
    pub run_id: String,
    /// The suite.
    pub suite: String,
    /// RFC 3339 start time.
    pub timestamp: String,
    /// Source revision.
    pub git: GitInfo,
    /// The machine.
    pub runner: RunnerInfo,
    /// One row per measurement, by scenario and metric, `perflab` before its anchors.
    pub rows: Vec<ReportRow>,
    /// Target verdicts.
    pub targets: Vec<TargetOutcome>,
    /// What failed.
    pub failures: Vec<Failure>,
    /// What was skipped.
    pub skipped: Vec<Skipped>,
    /// The plots, when the report was made with them
    /// ([`crate::BenchmarkingFramework::generate_performance_report`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plots: Option<ReportPlots>,
}

/// One measurement in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// Scenario id.
    pub scenario: String,
    /// Subject.
    pub subject: String,
    /// Metric.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Point value.
    pub value: f64,
    /// For `perflab`: perflab/anchor for each anchor. For an anchor: perflab/this anchor.
    pub ratios: Vec<AnchorRatio>,
    /// Verdicts of the targets that bound this row's subject and metric.
    pub targets: Vec<String>,
}

/// `value(perflab) / value(anchor)` in one scenario and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorRatio {
    /// The anchor subject.
    pub anchor: String,
    /// The ratio.
    pub ratio: f64,
}

impl ReportRow {
    /// The anchor ratios in words: `0.412x vs opool, …` for `perflab`, `perflab 0.412x` for
    /// an anchor, `-` without any.
    pub fn ratio_text(&self) -> String {
        let parts: Vec<String> = self
            .ratios
            .iter()
            .map(|a| {
                if self.subject == PERFLAB_SUBJECT {
                    format!("{}x vs {}", fmt_ratio(a.ratio), a.anchor)
                } else {
                    format!("perflab {}x", fmt_ratio(a.ratio))
                }
            })
            .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }

    /// The target verdicts of this row joined with `; `, or `-`.
    pub fn targets_text(&self) -> String {
        if self.targets.is_empty() {
            "-".into()
        } else {
            self.targets.join("; ")
        }
    }
}

impl PerformanceReport {
    /// Lays out `run` with the target verdicts `targets`.
    pub fn new(run: &Run, targets: Vec<TargetOutcome>) -> Result<Self, ReportError> {
        if let Some(m) = run.results.iter().find(|m| !m.value.is_finite()) {
            return Err(ReportError::NonFinite {
                scenario: m.scenario.clone(),
                subject: m.subject.clone(),
                metric: m.metric.clone(),
                value: m.value,
            });
        }
        // Rows grouped by scenario and metric, `perflab` first, then the anchors by name.
        let mut ordered: Vec<&crate::schema::Measurement> = run.results.iter().collect();
        ordered.sort_by(|a, b| {
            (
                &a.scenario,
                &a.metric,
                a.subject != PERFLAB_SUBJECT,
                &a.subject,
            )
                .cmp(&(
                    &b.scenario,
                    &b.metric,
                    b.subject != PERFLAB_SUBJECT,
                    &b.subject,
                ))
        });
        let rows = ordered
            .into_iter()
            .map(|m| {
                let ratio = |perflab: f64, anchor: f64| (anchor != 0.0).then(|| perflab / anchor);
                let ratios = if m.subject == PERFLAB_SUBJECT {
                    run.results
                        .iter()
                        .filter(|a| {
                            a.scenario == m.scenario
                                && a.metric == m.metric
                                && a.subject != PERFLAB_SUBJECT
                        })
                        .filter_map(|a| {
                            ratio(m.value, a.value).map(|r| AnchorRatio {
                                anchor: a.subject.clone(),
                                ratio: r,
                            })
                        })
                        .collect()
                } else {
                    run.measurement(&m.scenario, PERFLAB_SUBJECT, &m.metric)
                        .and_then(|p| ratio(p.value, m.value))
                        .map(|r| AnchorRatio {
                            anchor: m.subject.clone(),
                            ratio: r,
                        })
                        .into_iter()
                        .collect()
                };
                let targets = targets
                    .iter()
                    .filter(|t| {
                        t.scenario.as_deref() == Some(m.scenario.as_str())
                            && t.subject == m.subject
                            && t.metric == m.metric
                    })
                    .map(verdict_text)
                    .collect();
                ReportRow {
                    scenario: m.scenario.clone(),
                    subject: m.subject.clone(),
                    metric: m.metric.clone(),
                    unit: m.unit.clone(),
                    value: m.value,
                    ratios,
                    targets,
                }
            })
            .collect();
        Ok(Self {
            run_id: run.id.clone(),
            suite: run.suite.clone(),
            timestamp: run.timestamp_rfc3339(),
            git: run.git.clone(),
            runner: run.runner.clone(),
            rows,
            targets,
            failures: run.failures.clone(),
            skipped: run.skipped.clone(),
            plots: None,
        })
    }

    /// Whether every evaluated target was met (targets without data do not count as met).
    pub fn targets_met(&self) -> bool {
        self.targets.iter().all(|t| t.status == TargetStatus::Met)
    }

    /// The report as a terminal table followed by targets not shown in rows, skips and failures.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "run {}  suite {}  at {}",
            self.run_id, self.suite, self.timestamp
        );
        let _ = writeln!(
            out,
            "runner {}: {}",
            self.runner.fingerprint,
            self.runner.describe()
        );
        if let Some(commit) = &self.git.commit {
            let _ = writeln!(
                out,
                "git {} ({})",
                commit,
                self.git.branch.as_deref().unwrap_or("no branch")
            );
        }
        out.push('\n');
        let header = [
            "scenario",
            "subject",
            "metric",
            "value",
            "ratio to anchor",
            "target",
        ];
        let body: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.scenario.clone(),
                    r.subject.clone(),
                    r.metric.clone(),
                    format_value(r.value, &r.unit),
                    r.ratio_text(),
                    r.targets_text(),
                ]
            })
            .collect();
        if body.is_empty() {
            out.push_str("no measurements\n");
        } else {
            render_rows(&mut out, &header, &body);
        }

        let unshown: Vec<&TargetOutcome> = self
            .targets
            .iter()
            .filter(|t| {
                !self.rows.iter().any(|r| {
                    t.scenario.as_deref() == Some(r.scenario.as_str())
                        && t.subject == r.subject
                        && t.metric == r.metric
                })
            })
            .collect();
        if !unshown.is_empty() {
            out.push_str("\ntargets without a measurement:\n");
            for t in unshown {
                let _ = writeln!(
                    out,
                    "  {} [{}]: {}{}",
                    t.scenario.as_deref().unwrap_or(&t.pattern),
                    t.requirement,
                    t.verdict(),
                    t.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
        if !self.skipped.is_empty() {
            out.push_str("\nskipped:\n");
            for s in &self.skipped {
                let _ = writeln!(out, "  {}: {}", s.scenario, s.reason);
            }
        }
        if !self.failures.is_empty() {
            out.push_str("\nfailed:\n");
            for f in &self.failures {
                let what = match (&f.engine, &f.scenario) {
                    (Some(e), Some(s)) => format!("{s} ({e})"),
                    (Some(e), None) => e.to_string(),
                    (None, Some(s)) => s.clone(),
                    (None, None) => "?".into(),
                };
                let _ = writeln!(out, "  {what}: {}", f.reason.replace('\n', "\n      "));
            }
        }
        out
    }
}

fn verdict_text(t: &TargetOutcome) -> String {
    match (t.status, t.observed) {
        (TargetStatus::Met | TargetStatus::Missed, Some(x)) => {
            let what = match &t.anchor {
                Some(a) => format!("{}x vs {a}", fmt_ratio(x)),
                None => fmt_ratio(x),
            };
            format!("{} ({what}; {})", t.verdict(), t.requirement)
        }
        _ => format!(
            "{}{}",
            t.verdict(),
            t.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    }
}

fn fmt_ratio(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

/// A value with its unit, scaled for reading (`12.3 µs`, `1.50 M ops/s`, `1,234 instructions`).
pub fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "ns" => {
            let (v, u) = if value.abs() < 1e3 {
                (value, "ns")
            } else if value.abs() < 1e6 {
                (value / 1e3, "µs")
            } else if value.abs() < 1e9 {
                (value / 1e6, "ms")
            } else {
                (value / 1e9, "s")
            };
            format!("{v:.2} {u}")
        }
        "instructions" | "cycles" | "count" if value.fract() == 0.0 && value.abs() < 1e18 => {
            format!("{} {unit}", group_thousands(value as i64))
        }
        "ops/s" => {
            let (v, p) = si_prefix(value);
            let gap = if p.is_empty() { "" } else { " " };
            format!("{v:.2} {p}{gap}ops/s")
        }
        // Exact below a kilobyte; above, the three significant figures a reader compares.
        "bytes" if value.abs() >= 1e3 => {
            let (v, p) = si_prefix(value);
            format!("{v:.2} {p}B")
        }
        "bytes/s" => {
            let (v, p) = si_prefix(value);
            format!("{v:.2} {p}B/s")
        }
        "ratio" => format!("{value:.4}"),
        "" => format!("{value}"),
        other if value.fract() == 0.0 => format!("{value} {other}"),
        other => format!("{value:.3} {other}"),
    }
}

/// `value` scaled to the largest SI prefix (k, M, G) that keeps it at or above 1.
fn si_prefix(value: f64) -> (f64, &'static str) {
    if value.abs() >= 1e9 {
        (value / 1e9, "G")
    } else if value.abs() >= 1e6 {
        (value / 1e6, "M")
    } else if value.abs() >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn render_rows(out: &mut String, header: &[&str; 6], body: &[[String; 6]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            if i + 1 < cells.len() {
                s.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(out, header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in body {
        line(out, &row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{RunnerFacts, RunnerInfo};
    use crate::schema::{Direction, Measurement};

    fn run() -> Run {
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
        for (subject, v) in [("perflab", 50.0), ("opool", 100.0), ("vec", 25.0)] {
            r.results.push(Measurement {
                scenario: "memory/pool_cycle/kib1".into(),
                subject: subject.into(),
                metric: "wall_time".into(),
                unit: "ns".into(),
                direction: Direction::Lower,
                value: v,
                lower: None,
                upper: None,
                samples: vec![v],
            });
        }
        r
    }

    #[test]
    fn ratios_to_anchors() {
        let report = PerformanceReport::new(&run(), vec![]).unwrap();
        let perflab = &report.rows[0];
        assert_eq!(perflab.ratios.len(), 2);
        assert_eq!(perflab.ratios[0].ratio, 0.5);
        assert_eq!(perflab.ratios[1].ratio, 2.0);
        let opool = &report.rows[1];
        assert_eq!(
            opool.ratios,
            vec![AnchorRatio {
                anchor: "opool".into(),
                ratio: 0.5
            }]
        );
        let table = report.render_table();
        assert!(table.contains("0.500x vs opool, 2.000x vs vec"), "{table}");
        assert!(table.contains("perflab 2.000x"), "{table}");
        assert!(table.contains("50.00 ns"), "{table}");
    }

    #[test]
    fn non_finite_values_are_refused() {
        let mut r = run();
        r.results[1].value = f64::NAN;
        assert!(matches!(
            PerformanceReport::new(&r, vec![]),
            Err(ReportError::NonFinite { .. })
        ));
    }

    #[test]
    fn formats_values() {
        assert_eq!(format_value(1234.0, "ns"), "1.23 µs");
        assert_eq!(format_value(2.5e9, "ns"), "2.50 s");
        assert_eq!(
            format_value(1234567.0, "instructions"),
            "1,234,567 instructions"
        );
        assert_eq!(format_value(1.5e6, "ops/s"), "1.50 M ops/s");
        assert_eq!(format_value(0.93, "ratio"), "0.9300");
        assert_eq!(format_value(3.0, "frobs"), "3 frobs");
        assert_eq!(format_value(12.0, "ops/s"), "12.00 ops/s");
        assert_eq!(format_value(2.2032e9, "bytes/s"), "2.20 GB/s");
        assert_eq!(format_value(2_725_182.5, "bytes"), "2.73 MB");
        assert_eq!(format_value(512.0, "bytes"), "512 bytes");
        assert_eq!(format_value(1.43269, "GFLOP/s"), "1.433 GFLOP/s");
    }
}
