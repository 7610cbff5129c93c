//! A log-linear latency histogram: 16 linear sub-buckets per power of two, so a quantile is
//! off by at most 1/32 of its value, in fixed memory.

use std::time::Duration;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values below `SUB` get one bucket each; every octave above gets `SUB`.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of nanosecond values in log-linear buckets.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl LatencyHistogram {
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
    }

    /// The nearest-rank `q` quantile (midpoint of its bucket); zero when empty.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bucket_bounds(i);
                return Duration::from_nanos(lo + (hi - lo) / 2);
            }
        }
        Duration::from_nanos(u64::MAX)
    }
}

/// The bucket of `v`: `v` itself below `SUB`, else the octave and the top `SUB_BITS` bits
/// below the leading one.
fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let sub = ((v >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    (exp - SUB_BITS + 1) as usize * SUB + sub
}

/// The inclusive value range of bucket `i`.
fn bucket_bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64);
    }
    let exp = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = (i % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    let lo = (1u64 << exp) + sub * width;
    (lo, lo + (width - 1))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn quantiles_of_a_uniform_sample() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_nanos() as f64;
        let p99 = h.quantile(0.99).as_nanos() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() <= 1.0 / 32.0, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() <= 1.0 / 32.0, "{p99}");
    }

    proptest! {
        #[test]
        fn every_value_lands_in_a_bucket_that_contains_it(v in any::<u64>()) {
            let i = bucket_of(v);
            prop_assert!(i < BUCKETS);
            let (lo, hi) = bucket_bounds(i);
            prop_assert!(lo <= v && v <= hi, "{v} not in [{lo}, {hi}]");
            // The midpoint is within 1/32 of any value in the bucket.
            let mid = lo + (hi - lo) / 2;
            prop_assert!((mid as f64 - v as f64).abs() <= v as f64 / 32.0 + 0.5);
        }
    }
}
