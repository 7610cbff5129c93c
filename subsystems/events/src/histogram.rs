//! A lock-free log-linear latency histogram (8 sub-buckets per power of two, ≤ 6.25% error).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB: usize = 8;
const SUB_BITS: u32 = 3;
/// Enough groups for any `u64` nanosecond count.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of nanosecond values in log-linear buckets. Recording is one relaxed atomic add;
/// a quantile is the midpoint of the bucket it falls in, within 1/16 of the true value.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[index(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// A plain copy of the counts, to merge and query.
    pub(crate) fn snapshot(&self) -> Counts {
        Counts(
            self.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        )
    }
}

/// Bucket counts copied out of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counts(Vec<u64>);

impl Counts {
    pub(crate) fn empty() -> Self {
        Self(vec![0; BUCKETS])
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// The nearest-rank quantile `q` in `[0, 1]`; zero for an empty histogram.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        let total: u64 = self.0.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(midpoint(i));
            }
        }
        Duration::from_nanos(midpoint(BUCKETS - 1))
    }
}

fn index(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros();
    let group = (msb - SUB_BITS + 1) as usize;
    let sub = ((ns >> (msb - SUB_BITS)) & (SUB as u64 - 1)) as usize;
    group * SUB + sub
}

fn midpoint(i: usize) -> u64 {
    let (group, sub) = (i / SUB, (i % SUB) as u64);
    if group == 0 {
        return sub;
    }
    let width = 1u64 << (group - 1);
    let low = (SUB as u64 + sub) << (group - 1);
    low.saturating_add(width / 2)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn quantiles_of_a_uniform_sample() {
        let h = Histogram::new();
        for ns in 1..=10_000u64 {
            h.record(Duration::from_nanos(ns));
        }
        let c = h.snapshot();
        let p50 = c.quantile(0.5).as_nanos() as f64;
        let p99 = c.quantile(0.99).as_nanos() as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.0625, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.0625, "{p99}");
        assert_eq!(Counts::empty().quantile(0.99), Duration::ZERO);
    }

    proptest! {
        /// Every value lands in a bucket whose midpoint is within 1/16 of it.
        #[test]
        fn bucket_midpoint_is_close(ns in 0u64..u64::MAX / 2) {
            let mid = midpoint(index(ns)) as f64;
            let v = ns as f64;
            prop_assert!((mid - v).abs() <= (v / 16.0).max(1.0), "{} -> {}", ns, mid);
        }
    }
}
