//! Noise thresholds per scenario and metric, learned from the history of point values.

use serde::{Deserialize, Serialize};

use super::{quantile_sorted, sorted};

/// Fewer relative deltas than this (that is, fewer than 6 usable runs of history) and the
/// threshold is the kind's plain fallback.
pub const MIN_HISTORY_DELTAS: usize = 5;

/// What a metric measures, as far as its noise is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Instruction or cycle counts from callgrind: nearly deterministic.
    Instructions,
    /// Wall time or latency: noisy on shared machines.
    Time,
    /// Anything else (throughput, ratios, counts).
    Other,
}

/// Where a [`NoiseThreshold`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ThresholdSource {
    /// Q3 + 3 × IQR of the relative deltas between adjacent runs.
    History {
        /// How many deltas it was learned from.
        deltas: usize,
    },
    /// The learned value was below the kind's floor, so the floor is used.
    Floor {
        /// How many deltas the (smaller) learned value came from.
        deltas: usize,
        /// The learned value.
        learned: f64,
    },
    /// Too little history (fewer than [`MIN_HISTORY_DELTAS`] deltas): the kind's fallback.
    Fallback {
        /// How many deltas there were.
        deltas: usize,
    },
}

/// The smallest relative change of a scenario-metric that is more than noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseThreshold {
    /// As a fraction of the base value (0.02 = 2%).
    pub relative: f64,
    /// The kind of metric it is for.
    pub kind: MetricKind,
    /// How it was chosen.
    #[serde(flatten)]
    pub source: ThresholdSource,
}

impl MetricKind {
    /// The kind of a metric by its unit (`instructions`, `cycles`; `ns`, `us`, `µs`, `ms`, `s`)
    /// or name (`wall_time`, `latency*`).
    pub fn of(metric: &str, unit: &str) -> Self {
        match unit {
            "instructions" | "cycles" => Self::Instructions,
            "ns" | "us" | "µs" | "ms" | "s" => Self::Time,
            _ if metric == "wall_time" || metric.starts_with("latency") => Self::Time,
            _ => Self::Other,
        }
    }

    /// The lowest threshold ever used: 0.1% for instruction counts (callgrind repeats to a few
    /// parts per million; 0.1% is still far above that and below any change worth a look), 2%
    /// for times (frequency scaling, cache and scheduler effects between two runs of the same
    /// code on a shared machine reach 1-2%), 1% for everything else.
    pub fn floor(self) -> f64 {
        match self {
            Self::Instructions => 0.001,
            Self::Time => 0.02,
            Self::Other => 0.01,
        }
    }

    /// The threshold without enough history: 0.5% for instruction counts, 5% for times and
    /// everything else.
    pub fn fallback(self) -> f64 {
        match self {
            Self::Instructions => 0.005,
            Self::Time | Self::Other => 0.05,
        }
    }
}

/// The noise threshold of one scenario-metric from its history of point values (oldest
/// first), as rustc-perf does: the absolute relative deltas `|vᵢ₊₁ − vᵢ| / |vᵢ|` between
/// adjacent runs, then `Q3 + 3 × IQR` of those deltas, raised to the kind's floor. Non-finite
/// values and deltas from a zero value are left out; with fewer than [`MIN_HISTORY_DELTAS`]
/// deltas the kind's fallback is used.
pub fn noise_threshold(history: &[f64], kind: MetricKind) -> NoiseThreshold {
    let values: Vec<f64> = history.iter().copied().filter(|v| v.is_finite()).collect();
    let deltas: Vec<f64> = values
        .windows(2)
        .filter(|w| w[0] != 0.0)
        .map(|w| ((w[1] - w[0]) / w[0]).abs())
        .collect();
    if deltas.len() < MIN_HISTORY_DELTAS {
        return NoiseThreshold {
            relative: kind.fallback(),
            kind,
            source: ThresholdSource::Fallback {
                deltas: deltas.len(),
            },
        };
    }
    let s = sorted(&deltas);
    let (q1, q3) = (quantile_sorted(&s, 0.25), quantile_sorted(&s, 0.75));
    let learned = q3 + 3.0 * (q3 - q1);
    if learned < kind.floor() {
        NoiseThreshold {
            relative: kind.floor(),
            kind,
            source: ThresholdSource::Floor {
                deltas: s.len(),
                learned,
            },
        }
    } else {
        NoiseThreshold {
            relative: learned,
            kind,
            source: ThresholdSource::History { deltas: s.len() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_unit_and_name() {
        assert_eq!(
            MetricKind::of("instructions", "instructions"),
            MetricKind::Instructions
        );
        assert_eq!(
            MetricKind::of("estimated_cycles", "cycles"),
            MetricKind::Instructions
        );
        assert_eq!(MetricKind::of("wall_time", "ns"), MetricKind::Time);
        assert_eq!(MetricKind::of("latency_p99", ""), MetricKind::Time);
        assert_eq!(MetricKind::of("throughput", "ops/s"), MetricKind::Other);
    }

    #[test]
    fn learned_from_history() {
        // Relative deltas 0.02, 0.04, 0.01, 0.03, 0.05, 0.02 (alternating around 100).
        let h = [100.0, 102.0, 97.92, 98.9, 95.93, 100.73, 98.72];
        let t = noise_threshold(&h, MetricKind::Time);
        let ThresholdSource::History { deltas } = t.source else {
            panic!("{t:?}")
        };
        assert_eq!(deltas, 6);
        // Sorted deltas ~ .01 .02 .02 .03 .04 .05: Q1 = .02, Q3 = .0375 -> .0375 + 3 * .0175
        assert!((t.relative - 0.09).abs() < 1e-3, "{t:?}");
    }

    #[test]
    fn floor_and_fallback() {
        let flat = [1e6, 1e6 + 1.0, 1e6, 1e6 + 2.0, 1e6, 1e6 + 1.0, 1e6];
        let t = noise_threshold(&flat, MetricKind::Instructions);
        assert_eq!(t.relative, 0.001);
        assert!(
            matches!(t.source, ThresholdSource::Floor { deltas: 6, learned } if learned < 1e-5)
        );
        let short = noise_threshold(&[1.0, 2.0, f64::NAN, 3.0], MetricKind::Time);
        assert_eq!(short.relative, 0.05);
        assert_eq!(short.source, ThresholdSource::Fallback { deltas: 2 });
        assert_eq!(
            noise_threshold(&[], MetricKind::Other).source,
            ThresholdSource::Fallback { deltas: 0 }
        );
        // Zero values give no delta.
        let zeros = noise_threshold(&[0.0; 10], MetricKind::Other);
        assert_eq!(zeros.source, ThresholdSource::Fallback { deltas: 0 });
    }

    #[test]
    fn serializes_flat() {
        let t = noise_threshold(&[], MetricKind::Time);
        let v = serde_json::to_value(t).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"relative": 0.05, "kind": "time", "source": "fallback", "deltas": 0})
        );
    }
}
