//! A log-linear histogram of atomic buckets: 16 linear sub-buckets per power of two.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a bit count: 2^4 = 16, so a bucket spans 1/16 of its
/// octave and its midpoint is within 1/32 (3.125%) of any value in it.
const SUB_BITS: u32 = 4;
const SUBS: usize = 1 << SUB_BITS;
/// Smallest and largest binary exponents with their own buckets; values outside are clamped.
const MIN_EXP: i32 = -32;
const MAX_EXP: i32 = 63;
/// Bucket 0 holds zero, negative and NaN observations.
const BUCKETS: usize = 1 + ((MAX_EXP - MIN_EXP + 1) as usize) * SUBS;

/// Atomic log-linear buckets over positive `f64` values (HdrHistogram's layout, in floating
/// point): the bucket of a value is its binary exponent and the top four mantissa bits.
#[derive(Debug)]
pub(crate) struct LogLinearHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for LogLinearHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LogLinearHistogram {
    /// Adds `n` observations of `value`.
    pub(crate) fn record_n(&self, value: f64, n: u64) {
        self.buckets[bucket_of(value)].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds every count of `other` into this histogram.
    pub(crate) fn merge_from(&self, other: &Self) {
        for (a, b) in self.buckets.iter().zip(other.buckets.iter()) {
            let n = b.load(Ordering::Relaxed);
            if n != 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Observations recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding the
    /// `ceil(q * count)`-th smallest observation; 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return midpoint_of(i);
            }
        }
        midpoint_of(BUCKETS - 1)
    }
}

fn bucket_of(value: f64) -> usize {
    if value.is_nan() || value <= 0.0 {
        return 0;
    }
    let bits = value.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exp < MIN_EXP {
        return 1;
    }
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = ((bits >> (52 - SUB_BITS)) as usize) & (SUBS - 1);
    1 + (exp - MIN_EXP) as usize * SUBS + sub
}

fn midpoint_of(bucket: usize) -> f64 {
    if bucket == 0 {
        return 0.0;
    }
    let i = bucket - 1;
    let exp = (i / SUBS) as i32 + MIN_EXP;
    let sub = (i % SUBS) as f64;
    2f64.powi(exp) * (1.0 + (sub + 0.5) / SUBS as f64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn quantiles_within_the_bucket_error(
            mut values in prop::collection::vec(1e-6f64..1e12, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let h = LogLinearHistogram::default();
            for &v in &values {
                h.record_n(v, 1);
            }
            values.sort_by(f64::total_cmp);
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1];
            let got = h.quantile(q);
            prop_assert!((got - exact).abs() / exact <= 1.0 / 32.0 + 1e-12, "{got} vs {exact}");
            prop_assert_eq!(h.count(), values.len() as u64);
        }
    }

    #[test]
    fn edges_are_clamped() {
        let h = LogLinearHistogram::default();
        h.record_n(0.0, 1);
        h.record_n(-3.0, 1);
        h.record_n(1e300, 1);
        assert_eq!(h.quantile(0.5), 0.0);
        assert!(h.quantile(1.0) > 1e19);
        let m = LogLinearHistogram::default();
        m.merge_from(&h);
        assert_eq!(m.count(), 3);
    }
}
