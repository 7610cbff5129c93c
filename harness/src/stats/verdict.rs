//! A/B verdicts for a family of scenario-metrics: Mann-Whitney U, Benjamini-Hochberg, thresholds.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    MIN_HISTORY_DELTAS, MetricKind, NoiseThreshold, TestMethod, ThresholdSource,
    benjamini_hochberg, check_finite, hodges_lehmann, mann_whitney_u, median, robust_sigma,
};
use crate::schema::Direction;

/// What happened to one scenario-metric between base and head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Significantly worse, by more than the noise threshold.
    Regression,
    /// Significantly better, by more than the noise threshold.
    Improvement,
    /// No change beyond noise (or a significant one smaller than the threshold).
    Unchanged,
    /// Cannot decide: too few samples, non-finite samples, or too much spread.
    Noisy,
    /// Nothing to compare: a side has no samples, or the base is zero.
    Skipped,
}

/// One scenario-metric to judge: raw samples of base and head from the same runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbSamples {
    /// What is compared, e.g. `memory/pool_cycle/kib16 perflab wall_time`.
    pub name: String,
    /// Whether lower or higher values are better.
    pub direction: Direction,
    /// Samples of the base run.
    pub base: Vec<f64>,
    /// Samples of the head run.
    pub head: Vec<f64>,
    /// The noise threshold of this scenario-metric (see [`super::noise_threshold`]).
    pub threshold: NoiseThreshold,
}

/// Settings of [`ab_verdicts`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerdictConfig {
    /// False discovery rate across the family (Benjamini-Hochberg level): 0.05.
    pub fdr: f64,
    /// Fewest samples per side for the two-sample test: 5.
    pub min_samples: usize,
    /// Largest robust relative spread (1.4826·MAD / |median|) of either side for which "no
    /// significant change" still means [`Verdict::Unchanged`]; above it, [`Verdict::Noisy`]: 0.10.
    pub max_spread: f64,
}

/// The evidence behind a verdict. Relative values are fractions of the base (0.1 = +10%).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Samples on the base side.
    pub base_n: usize,
    /// Samples on the head side.
    pub head_n: usize,
    /// Median of the base samples (finite samples only).
    pub base_median: Option<f64>,
    /// Median of the head samples (finite samples only).
    pub head_median: Option<f64>,
    /// Effect size: Hodges-Lehmann shift / |base median|, or for single samples
    /// `(head − base) / |base|`.
    pub relative_change: Option<f64>,
    /// Lower end of the 95% interval of `relative_change` (two-sample test only).
    pub ci_low: Option<f64>,
    /// Upper end of the 95% interval of `relative_change`.
    pub ci_high: Option<f64>,
    /// Two-sided Mann-Whitney p-value.
    pub p_value: Option<f64>,
    /// `p_value` after Benjamini-Hochberg across the family.
    pub p_adjusted: Option<f64>,
    /// How `p_value` was computed.
    pub test: Option<TestMethod>,
    /// Robust relative spread of the base samples.
    pub base_spread: Option<f64>,
    /// Robust relative spread of the head samples.
    pub head_spread: Option<f64>,
    /// The noise threshold applied, and where it came from.
    pub threshold: NoiseThreshold,
    /// The decision in words.
    pub reason: String,
}

/// The verdict of one scenario-metric with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbVerdict {
    /// [`AbSamples::name`].
    pub name: String,
    /// The decision.
    pub verdict: Verdict,
    /// Why.
    pub evidence: Evidence,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self {
            fdr: 0.05,
            min_samples: 5,
            max_spread: 0.10,
        }
    }
}

impl Verdict {
    /// `regression`, `improvement`, `unchanged`, `noisy` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::Improvement => "improvement",
            Self::Unchanged => "unchanged",
            Self::Noisy => "noisy",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Verdicts for a family of scenario-metrics (one run against its base), in input order.
///
/// - A side without samples, or a base median (or single base value) of 0: [`Verdict::Skipped`].
/// - A NaN or infinite sample, an invalid threshold, fewer than `min_samples` on a side
///   (unless both sides hold exactly one sample): [`Verdict::Noisy`].
/// - One sample on each side (instruction counts): the relative change against the threshold
///   alone; no p-value, since a deterministic count has no sampling distribution.
/// - Otherwise Mann-Whitney U gives a p-value, Benjamini-Hochberg adjusts the p-values of the
///   whole family, and the Hodges-Lehmann shift relative to the base median is the effect.
///   A change counts only when the adjusted p is below `fdr` and the effect exceeds the
///   threshold; its sign and the direction decide regression or improvement. No counted
///   change and a spread above `max_spread` on either side: [`Verdict::Noisy`]; else
///   [`Verdict::Unchanged`].
pub fn ab_verdicts(inputs: &[AbSamples], config: &VerdictConfig) -> Vec<AbVerdict> {
    let assessed: Vec<Assessment> = inputs.iter().map(|i| assess(i, config)).collect();
    let family: Vec<f64> = assessed
        .iter()
        .filter_map(|a| match a {
            Assessment::Tested(t) => Some(t.p_value),
            Assessment::Decided(..) => None,
        })
        .collect();
    let mut adjusted = benjamini_hochberg(&family).into_iter();
    inputs
        .iter()
        .zip(assessed)
        .map(|(input, a)| {
            let (verdict, evidence) = match a {
                Assessment::Decided(v, e) => (v, e),
                Assessment::Tested(t) => {
                    let q = adjusted.next().unwrap_or(1.0);
                    decide(input, t, q, config)
                }
            };
            AbVerdict {
                name: input.name.clone(),
                verdict,
                evidence,
            }
        })
        .collect()
}

/// The first pass over one input: decided without a test, or tested and waiting for the
/// family's adjustment.
enum Assessment {
    Decided(Verdict, Evidence),
    Tested(Tested),
}

struct Tested {
    evidence: Evidence,
    p_value: f64,
    relative: f64,
    spread: f64,
}

impl Evidence {
    /// Evidence that holds only the sample counts, the threshold and the reason: what is
    /// known of a key decided before any statistic is computed.
    pub fn counts_only(
        base_n: usize,
        head_n: usize,
        threshold: NoiseThreshold,
        reason: String,
    ) -> Self {
        Self {
            base_n,
            head_n,
            base_median: None,
            head_median: None,
            relative_change: None,
            ci_low: None,
            ci_high: None,
            p_value: None,
            p_adjusted: None,
            test: None,
            base_spread: None,
            head_spread: None,
            threshold,
            reason,
        }
    }
}

fn assess(input: &AbSamples, config: &VerdictConfig) -> Assessment {
    let finite_median = |xs: &[f64]| {
        let f: Vec<f64> = xs.iter().copied().filter(|v| v.is_finite()).collect();
        (!f.is_empty()).then(|| median(&f))
    };
    let mut ev = Evidence {
        base_median: finite_median(&input.base),
        head_median: finite_median(&input.head),
        ..Evidence::counts_only(
            input.base.len(),
            input.head.len(),
            input.threshold,
            String::new(),
        )
    };
    let mut decided = |verdict, reason: String| {
        ev.reason = reason;
        Assessment::Decided(verdict, ev.clone())
    };
    if input.base.is_empty() || input.head.is_empty() {
        let side = if input.base.is_empty() {
            "base"
        } else {
            "head"
        };
        return decided(Verdict::Skipped, format!("no {side} samples"));
    }
    for (side, xs) in [("base", &input.base), ("head", &input.head)] {
        if let Err(e) = check_finite(side, xs) {
            return decided(Verdict::Noisy, e.to_string());
        }
    }
    let t = input.threshold.relative;
    if !(t.is_finite() && t >= 0.0) {
        return decided(Verdict::Noisy, format!("invalid noise threshold {t}"));
    }
    if input.base.len() == 1 && input.head.len() == 1 {
        return single_sample(input, ev);
    }
    let min = config.min_samples.max(2);
    if input.base.len() < min || input.head.len() < min {
        return decided(
            Verdict::Noisy,
            format!(
                "too few samples: base {}, head {} (need {min} each)",
                input.base.len(),
                input.head.len()
            ),
        );
    }
    let base_median = median(&input.base);
    if base_median == 0.0 {
        return decided(
            Verdict::Skipped,
            "base median is 0: relative change undefined".into(),
        );
    }
    // Both calls only fail on empty or non-finite input, excluded above.
    let (Ok(mw), Ok(hl)) = (
        mann_whitney_u(&input.head, &input.base),
        hodges_lehmann(&input.base, &input.head),
    ) else {
        return decided(Verdict::Noisy, "samples cannot be tested".into());
    };
    let scale = base_median.abs();
    let base_spread = robust_sigma(&input.base) / scale;
    let head_median = median(&input.head);
    let head_spread = if head_median == 0.0 {
        f64::INFINITY
    } else {
        robust_sigma(&input.head) / head_median.abs()
    };
    let relative = hl.shift / scale;
    ev.relative_change = Some(relative);
    ev.ci_low = Some(hl.ci_low / scale);
    ev.ci_high = Some(hl.ci_high / scale);
    ev.p_value = Some(mw.p_value);
    ev.test = Some(mw.method);
    ev.base_spread = Some(base_spread);
    ev.head_spread = Some(head_spread);
    Assessment::Tested(Tested {
        evidence: ev,
        p_value: mw.p_value,
        relative,
        spread: base_spread.max(head_spread),
    })
}

/// One value per side: judged by its relative change alone, which is sound for a nearly
/// deterministic count, or for any metric whose run-to-run noise the history has shown.
/// A single value of a noisy metric with no such history says nothing: noisy.
fn single_sample(input: &AbSamples, mut ev: Evidence) -> Assessment {
    let (b, h) = (input.base[0], input.head[0]);
    if b == 0.0 {
        ev.reason = "base value is 0: relative change undefined".into();
        return Assessment::Decided(Verdict::Skipped, ev);
    }
    if input.threshold.kind != MetricKind::Instructions
        && matches!(input.threshold.source, ThresholdSource::Fallback { .. })
    {
        ev.reason = format!(
            "one value per side and too little history to learn this metric's run-to-run noise (need {MIN_HISTORY_DELTAS} deltas between earlier runs)"
        );
        return Assessment::Decided(Verdict::Noisy, ev);
    }
    let relative = (h - b) / b.abs();
    ev.relative_change = Some(relative);
    let t = input.threshold.relative;
    let verdict = if relative.abs() > t {
        worse_or_better(input.direction, relative)
    } else {
        Verdict::Unchanged
    };
    ev.reason = format!(
        "single sample per side: change {} {} threshold {}",
        pct(relative),
        if verdict == Verdict::Unchanged {
            "within"
        } else {
            "beyond"
        },
        pct(t)
    );
    Assessment::Decided(verdict, ev)
}

fn decide(input: &AbSamples, t: Tested, q: f64, config: &VerdictConfig) -> (Verdict, Evidence) {
    let Tested {
        mut evidence,
        p_value: _,
        relative,
        spread,
    } = t;
    evidence.p_adjusted = Some(q);
    let threshold = input.threshold.relative;
    let significant = q < config.fdr;
    let large = relative.abs() > threshold;
    let verdict = if significant && large {
        worse_or_better(input.direction, relative)
    } else if !significant && spread > config.max_spread {
        Verdict::Noisy
    } else {
        Verdict::Unchanged
    };
    evidence.reason = match verdict {
        Verdict::Noisy => format!(
            "no significant change (adjusted p {q:.3}) and spread {} above {}",
            pct(spread),
            pct(config.max_spread)
        ),
        _ => format!(
            "change {} ({}), adjusted p {q:.2e} {} {}, threshold {}",
            pct(relative),
            if large { "beyond" } else { "within" },
            if significant { "<" } else { ">=" },
            config.fdr,
            pct(threshold),
        ),
    };
    (verdict, evidence)
}

fn worse_or_better(direction: Direction, relative: f64) -> Verdict {
    let worse = match direction {
        Direction::Lower => relative > 0.0,
        Direction::Higher => relative < 0.0,
    };
    if worse {
        Verdict::Regression
    } else {
        Verdict::Improvement
    }
}

fn pct(v: f64) -> String {
    format!("{:+.2}%", v * 100.0)
}

#[cfg(test)]
mod tests {
    use super::super::noise_threshold;
    use super::*;

    fn threshold(relative: f64) -> NoiseThreshold {
        NoiseThreshold {
            relative,
            kind: MetricKind::Time,
            source: ThresholdSource::History { deltas: 10 },
        }
    }

    fn input(base: Vec<f64>, head: Vec<f64>, direction: Direction) -> AbSamples {
        AbSamples {
            name: "s".into(),
            direction,
            base,
            head,
            threshold: threshold(0.02),
        }
    }

    /// Deterministic jitter of ±1% around `center`.
    fn samples(center: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| center * (1.0 + 0.01 * ((i * 7 % n) as f64 / n as f64 - 0.5)))
            .collect()
    }

    fn one(i: AbSamples) -> AbVerdict {
        ab_verdicts(&[i], &VerdictConfig::default()).remove(0)
    }

    #[test]
    fn direction_decides_regression_or_improvement() {
        let slower = one(input(
            samples(100.0, 20),
            samples(110.0, 20),
            Direction::Lower,
        ));
        assert_eq!(slower.verdict, Verdict::Regression, "{slower:?}");
        let e = &slower.evidence;
        assert!((e.relative_change.unwrap() - 0.10).abs() < 0.005, "{e:?}");
        assert!(
            e.ci_low.unwrap() < 0.10 && e.ci_high.unwrap() > 0.095,
            "{e:?}"
        );
        assert!(e.p_adjusted.unwrap() < 1e-6);
        assert_eq!(e.test, Some(TestMethod::Exact));
        let faster_throughput = one(input(
            samples(100.0, 20),
            samples(110.0, 20),
            Direction::Higher,
        ));
        assert_eq!(faster_throughput.verdict, Verdict::Improvement);
        let lower_throughput = one(input(
            samples(100.0, 20),
            samples(90.0, 20),
            Direction::Higher,
        ));
        assert_eq!(lower_throughput.verdict, Verdict::Regression);
    }

    #[test]
    fn significant_but_small_changes_are_unchanged() {
        // +1% is significant with this little jitter but below the 2% threshold.
        let v = one(input(
            samples(100.0, 30),
            samples(101.0, 30),
            Direction::Lower,
        ));
        assert_eq!(v.verdict, Verdict::Unchanged, "{v:?}");
        assert!(v.evidence.p_adjusted.unwrap() < 0.05);
        assert!(
            v.evidence.reason.contains("within"),
            "{}",
            v.evidence.reason
        );
    }

    #[test]
    fn spread_without_significance_is_noisy() {
        let wide =
            |c: f64| -> Vec<f64> { (0..10).map(|i| c * (0.6 + 0.08 * f64::from(i))).collect() };
        let v = one(input(wide(100.0), wide(103.0), Direction::Lower));
        assert_eq!(v.verdict, Verdict::Noisy, "{v:?}");
        assert!(v.evidence.reason.contains("spread"));
        // The same spread with a huge change is still a regression.
        let v = one(input(wide(100.0), wide(300.0), Direction::Lower));
        assert_eq!(v.verdict, Verdict::Regression, "{v:?}");
    }

    #[test]
    fn single_samples_use_the_threshold_alone() {
        let mut i = input(vec![1_000_000.0], vec![1_010_000.0], Direction::Lower);
        i.threshold = noise_threshold(&[], MetricKind::Instructions);
        let v = one(i.clone());
        assert_eq!(v.verdict, Verdict::Regression);
        assert_eq!(v.evidence.p_value, None);
        assert!((v.evidence.relative_change.unwrap() - 0.01).abs() < 1e-12);
        i.head = vec![1_004_000.0];
        assert_eq!(one(i.clone()).verdict, Verdict::Unchanged);
        i.head = vec![990_000.0];
        assert_eq!(one(i).verdict, Verdict::Improvement);
    }

    #[test]
    fn malformed_inputs_are_noisy_or_skipped() {
        let cases = [
            (vec![], vec![1.0], Verdict::Skipped, "no base samples"),
            (vec![1.0], vec![], Verdict::Skipped, "no head samples"),
            (
                vec![1.0, f64::NAN],
                vec![1.0, 2.0],
                Verdict::Noisy,
                "base: observation 1 is NaN",
            ),
            (
                vec![1.0; 5],
                vec![f64::INFINITY; 5],
                Verdict::Noisy,
                "head: observation 0 is inf",
            ),
            (
                vec![1.0; 3],
                vec![1.0; 20],
                Verdict::Noisy,
                "too few samples: base 3",
            ),
            (
                vec![1.0],
                vec![1.0; 20],
                Verdict::Noisy,
                "too few samples: base 1",
            ),
            (
                vec![0.0; 5],
                vec![1.0; 5],
                Verdict::Skipped,
                "base median is 0",
            ),
            (vec![0.0], vec![1.0], Verdict::Skipped, "base value is 0"),
        ];
        for (base, head, want, reason) in cases {
            let v = one(input(base.clone(), head.clone(), Direction::Lower));
            assert_eq!(v.verdict, want, "{base:?} {head:?}: {v:?}");
            assert!(v.evidence.reason.contains(reason), "{}", v.evidence.reason);
        }
        let mut bad = input(vec![1.0], vec![2.0], Direction::Lower);
        bad.threshold.relative = f64::NAN;
        assert_eq!(one(bad).verdict, Verdict::Noisy);
        assert!(ab_verdicts(&[], &VerdictConfig::default()).is_empty());
    }

    #[test]
    fn benjamini_hochberg_spans_the_family() {
        // A change with p just under 0.05 alone is significant; among 50 unchanged metrics
        // its adjusted p rises above 0.05.
        let borderline = input(
            vec![10.0, 11.0, 12.0, 13.0, 14.0, 15.0],
            vec![13.5, 14.5, 15.5, 16.5, 17.5, 18.5],
            Direction::Lower,
        );
        let alone = one(borderline.clone());
        assert!(alone.evidence.p_value.unwrap() < 0.05, "{alone:?}");
        assert_eq!(alone.verdict, Verdict::Regression);
        let mut family = vec![borderline];
        family.extend(
            (0..50).map(|_| input(samples(100.0, 10), samples(100.0, 10), Direction::Lower)),
        );
        let all = ab_verdicts(&family, &VerdictConfig::default());
        assert!(all[0].evidence.p_adjusted.unwrap() > 0.05, "{:?}", all[0]);
        assert_eq!(all[0].verdict, Verdict::Noisy, "{:?}", all[0]);
        assert!(all[1..].iter().all(|v| v.verdict == Verdict::Unchanged));
    }

    #[test]
    fn verdicts_serialize_in_lowercase() {
        assert_eq!(serde_json::to_string(&Verdict::Noisy).unwrap(), "\"noisy\"");
        assert_eq!(Verdict::Regression.to_string(), "regression");
    }
}
