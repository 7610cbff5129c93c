//! `CacheStats`: per-tier counters (striped across threads) and log-linear latency histograms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thread_local::ThreadLocal;

/// A snapshot of one tier's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TierStats {
    /// Lookups this tier answered.
    pub hits: u64,
    /// Lookups this tier could not answer (asked only after the tiers above missed).
    pub misses: u64,
    /// Entries copied into this tier from a lower one on a hit there.
    pub promotions: u64,
    /// Entries this tier dropped for capacity or expiry (`None` where the tier cannot
    /// tell: Redis evicts and expires on its own).
    pub evictions: Option<u64>,
    /// Failed operations (timeouts, connection errors, I/O errors, corrupt entries).
    pub errors: u64,
    /// Bytes held now (`None` where the tier cannot tell: Redis is shared).
    pub bytes_stored: Option<u64>,
    /// Entries held now (`None` for Redis).
    pub entries: Option<u64>,
    /// Encoded bytes written to this tier.
    pub bytes_written: u64,
    /// Encoded bytes read from this tier.
    pub bytes_read: u64,
    /// Median latency of this tier's lookups (`None` before the first timed lookup).
    pub latency_p50: Option<Duration>,
    /// 99th percentile latency of this tier's lookups.
    pub latency_p99: Option<Duration>,
    /// Lookups timed for the percentiles.
    pub latency_samples: u64,
}

impl TierStats {
    /// `hits / (hits + misses)`, 0 when the tier was never asked.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// The state of the Redis tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2State {
    /// No Redis configured.
    Disabled,
    /// The last Redis command succeeded (or none failed yet).
    Up,
    /// Redis failed `l2_failure_threshold` times in a row; it is skipped until the retry
    /// interval passes, then one call tries it again.
    Down,
}

/// Counters and latencies of a [`crate::MultiLevelCache`].
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStats {
    /// The in-memory tier (moka).
    pub l1: TierStats,
    /// The Redis tier.
    pub l2: TierStats,
    /// The disk tier.
    pub l3: TierStats,
    /// Fetches from the lower tiers after an L1 miss (one per coalesced group of misses).
    pub lower_tier_fetches: u64,
    /// L1 misses that waited for another caller's fetch of the same key instead of
    /// fetching themselves.
    pub coalesced_misses: u64,
    /// Disk entries dropped because their checksum, header or length was wrong.
    pub l3_corrupt_entries: u64,
    /// State of the Redis tier now.
    pub l2_state: L2State,
    /// Times Redis came back after being marked down.
    pub l2_recoveries: u64,
    /// Invalidations received from other caches through Redis pub/sub.
    pub remote_invalidations: u64,
    /// Times the pub/sub subscription was re-established after a loss (each one flushes L1,
    /// since invalidations published meanwhile were missed).
    pub subscription_gaps: u64,
}

impl CacheStats {
    /// Hits of any tier over lookups (`l1.hits + l1.misses`).
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.l1.hits + self.l1.misses;
        if lookups == 0 {
            0.0
        } else {
            (self.l1.hits + self.l2.hits + self.l3.hits) as f64 / lookups as f64
        }
    }
}

/// Counter slots of one tier.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Hits = 0,
    Misses,
    Promotions,
    Evictions,
    Errors,
    BytesWritten,
    BytesRead,
}
const COUNTERS: usize = 7;

/// Global counters (not per tier).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Global {
    LowerFetches = 0,
    Coalesced,
    Corrupt,
    Recoveries,
    RemoteInvalidations,
    Gaps,
}
const GLOBALS: usize = 6;

/// The three tiers, as counter rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tier {
    L1 = 0,
    L2,
    L3,
}

/// One thread's counters: every counter of every tier.
#[derive(Debug, Default)]
struct Stripe {
    tiers: [[AtomicU64; COUNTERS]; 3],
    globals: [AtomicU64; GLOBALS],
}

/// Adds `n` to a counter only its own thread writes: a plain load and store, no locked
/// read-modify-write (readers on other threads see some recent value, never a torn one).
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// The live counters and histograms behind [`CacheStats`]. Each thread counts into its own
/// [`Stripe`] (so a cache hit touches no shared cache line); a snapshot sums the stripes.
#[derive(Debug, Default)]
pub(crate) struct StatsCore {
    stripes: ThreadLocal<Stripe>,
    latency: [Histogram; 3],
}

impl StatsCore {
    pub(crate) fn add(&self, tier: Tier, counter: Counter, n: u64) {
        bump(
            &self.stripes.get_or_default().tiers[tier as usize][counter as usize],
            n,
        );
    }

    pub(crate) fn incr(&self, tier: Tier, counter: Counter) {
        self.add(tier, counter, 1);
    }

    pub(crate) fn global(&self, g: Global) {
        bump(&self.stripes.get_or_default().globals[g as usize], 1);
    }

    pub(crate) fn latency(&self, tier: Tier, d: Duration) {
        self.latency[tier as usize].record(d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    fn sum(&self, tier: Tier, counter: Counter) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.tiers[tier as usize][counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn global_sum(&self, g: Global) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.globals[g as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// A snapshot of one tier; `bytes_stored`, `entries` and `evictions` come from the tier.
    pub(crate) fn tier(&self, tier: Tier) -> TierStats {
        let h = &self.latency[tier as usize];
        TierStats {
            hits: self.sum(tier, Counter::Hits),
            misses: self.sum(tier, Counter::Misses),
            promotions: self.sum(tier, Counter::Promotions),
            evictions: Some(self.sum(tier, Counter::Evictions)),
            errors: self.sum(tier, Counter::Errors),
            bytes_stored: None,
            entries: None,
            bytes_written: self.sum(tier, Counter::BytesWritten),
            bytes_read: self.sum(tier, Counter::BytesRead),
            latency_p50: h.quantile(0.5).map(Duration::from_nanos),
            latency_p99: h.quantile(0.99).map(Duration::from_nanos),
            latency_samples: h.count(),
        }
    }
}

/// Sub-buckets per power of two: a bucket is at most 1/8 of its lower bound wide, and the
/// reported midpoint is within 1/16 (6.25%) of every value in it.
const SUB: usize = 8;
const BUCKETS: usize = SUB + (64 - 3) * SUB;

/// A log-linear histogram of nanosecond values with atomic buckets (like HdrHistogram with
/// 3 significant bits).
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The nearest-rank `q` quantile, as the midpoint of its bucket.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bucket_bounds(i);
                return Some(lo + (hi - lo) / 2);
            }
        }
        None
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // >= 3
    let sub = ((v >> (e - 3)) as usize) - SUB;
    SUB + (e - 3) * SUB + sub
}

/// Inclusive `[lo, hi]` of bucket `i`.
fn bucket_bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64);
    }
    let e = (i - SUB) / SUB + 3;
    let sub = ((i - SUB) % SUB) as u64;
    let lo = (SUB as u64 + sub) << (e - 3);
    let width = 1u64 << (e - 3);
    (lo, lo + (width - 1))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_tile_the_range() {
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi), i);
            next = hi.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn quantiles_of_a_known_sample() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5).expect("non-empty") as f64;
        let p99 = h.quantile(0.99).expect("non-empty") as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.07, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.07, "{p99}");
    }

    #[test]
    fn counters_sum_over_stripes_and_threads() {
        let core = StatsCore::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        core.incr(Tier::L2, Counter::Hits);
                    }
                    core.global(Global::Coalesced);
                });
            }
        });
        core.add(Tier::L3, Counter::BytesWritten, 10);
        let l2 = core.tier(Tier::L2);
        assert_eq!(l2.hits, 4000);
        assert_eq!(l2.misses, 0);
        assert_eq!(l2.hit_ratio(), 1.0);
        assert_eq!(core.tier(Tier::L3).bytes_written, 10);
        assert_eq!(core.global_sum(Global::Coalesced), 4);
    }

    proptest! {
        #[test]
        fn midpoint_is_within_a_sixteenth(v in 8u64..u64::MAX / 2) {
            let (lo, hi) = bucket_bounds(bucket_of(v));
            prop_assert!(lo <= v && v <= hi);
            let mid = lo + (hi - lo) / 2;
            prop_assert!((mid as f64 - v as f64).abs() <= v as f64 / 16.0 + 1.0);
        }
    }
}
