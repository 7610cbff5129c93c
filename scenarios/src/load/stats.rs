//! Latency percentiles with distribution-free confidence bounds.

/// Percentiles of a latency sample, in nanoseconds, each with a 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Median `(value, lower, upper)`.
    pub p50: (f64, f64, f64),
    /// 99th percentile `(value, lower, upper)`.
    pub p99: (f64, f64, f64),
    /// 99.9th percentile `(value, lower, upper)`.
    pub p999: (f64, f64, f64),
}

impl LatencySummary {
    /// Summarizes `samples` (ns); sorts them in place. `None` for an empty sample.
    pub fn from_samples(samples: &mut [u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let (lo, mid, hi) = percentile_bounds(samples.len(), q);
            (samples[mid] as f64, samples[lo] as f64, samples[hi] as f64)
        };
        Some(Self {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
        })
    }
}

/// Indices into a sorted sample of `n` values: `(lower, point, upper)` for quantile `q`.
///
/// The point is the nearest-rank quantile. The bounds are the order statistics at
/// `n q -/+ 1.96 sqrt(n q (1 - q))`: the rank of the true quantile in a sample is
/// Binomial(n, q), so this is its normal-approximation 95% interval, valid whatever the
/// latency distribution is.
pub fn percentile_bounds(n: usize, q: f64) -> (usize, usize, usize) {
    assert!(n > 0, "percentile of an empty sample");
    let nf = n as f64;
    let last = n - 1;
    let rank = |r: f64| (r.ceil().max(1.0) as usize - 1).min(last);
    let half = 1.96 * (nf * q * (1.0 - q)).sqrt();
    (rank(nf * q - half), rank(nf * q), rank(nf * q + half + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_a_known_sample() {
        let mut s: Vec<u64> = (1..=1000).rev().collect();
        let l = LatencySummary::from_samples(&mut s).expect("non-empty");
        assert_eq!(l.p50.0, 500.0);
        assert_eq!(l.p99.0, 990.0);
        assert_eq!(l.p999.0, 999.0);
        for (v, lo, hi) in [l.p50, l.p99, l.p999] {
            assert!(lo <= v && v <= hi, "{lo} <= {v} <= {hi}");
        }
        // The interval of the median of 1000 values spans about +-31 ranks.
        assert!((465.0..=475.0).contains(&l.p50.1), "{:?}", l.p50);
        assert!((525.0..=535.0).contains(&l.p50.2), "{:?}", l.p50);
    }

    #[test]
    fn bounds_stay_inside_the_sample() {
        for n in [1, 2, 3, 10, 1001] {
            for q in [0.0, 0.5, 0.99, 0.999, 1.0] {
                let (lo, mid, hi) = percentile_bounds(n, q);
                assert!(lo <= mid && mid <= hi && hi < n, "n={n} q={q}");
            }
        }
        let mut one = [7];
        let l = LatencySummary::from_samples(&mut one).expect("non-empty");
        assert_eq!(l.p999, (7.0, 7.0, 7.0));
        assert!(LatencySummary::from_samples(&mut []).is_none());
    }
}
