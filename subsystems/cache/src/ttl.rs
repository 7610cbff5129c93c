//! `MLTtlPredictor`: per-key models of access intervals that turn into idle TTLs.
//!
//! Each key hashes to one slot of a fixed table. A slot remembers the key's tag, the time
//! of its last read and an exponentially weighted mean and variance of the logarithm of
//! the intervals between its reads (inter-access times are heavy-tailed, roughly
//! log-normal, so the log scale makes the mean robust to one long pause). The predicted
//! TTL is an *idle* time:
//!
//! ```text
//! ttl = clamp(slack * exp(mean + z_q * sqrt(var)), min_ttl, max_ttl)
//! ```
//!
//! where `z_q` is the standard normal quantile of `quantile` (0.9 by default): the entry
//! is dropped once it has been idle longer than the q-quantile of its own gaps. A key
//! read only once so far (a one-hit wonder) gets `cold_ttl`, short; a hot key's gaps are
//! short but every read pushes its deadline back, so it lives as long as it stays hot; a
//! key read every few minutes keeps its entry across those gaps where a short fixed TTL
//! would drop it every time.
//!
//! The table is lock-free: each field is an atomic updated with relaxed loads and stores.
//! Two threads updating one slot at once can lose one observation; for a statistical model
//! that is acceptable and it keeps a cache hit free of locks. Two keys sharing a slot are
//! told apart by a 20-bit tag; the newer key takes the slot over.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::CacheError;

/// Parameters of the TTL model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TtlModelConfig {
    /// Slots of the table (rounded up to a power of two).
    pub slots: usize,
    /// Weight of the newest interval in the moving mean and variance, in (0, 1].
    pub alpha: f64,
    /// Quantile of a key's intervals its entry must survive idle, in (0.5, 1).
    pub quantile: f64,
    /// Multiplier on the quantile, at least 1.
    pub slack: f64,
    /// TTL of a key read at most once so far.
    pub cold_ttl: Duration,
    /// Lower bound of every prediction.
    pub min_ttl: Duration,
    /// Upper bound of every prediction.
    pub max_ttl: Duration,
    /// The L2 and L3 TTL is the prediction times this (lower tiers are cheaper per byte).
    pub lower_tier_factor: f64,
}

impl Default for TtlModelConfig {
    fn default() -> Self {
        Self {
            slots: 1 << 16,
            alpha: 0.25,
            quantile: 0.9,
            slack: 2.0,
            cold_ttl: Duration::from_secs(5),
            min_ttl: Duration::from_millis(50),
            max_ttl: Duration::from_secs(24 * 3600),
            lower_tier_factor: 4.0,
        }
    }
}

impl TtlModelConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |m: &str| Err(CacheError::InvalidConfig(format!("ttl_model: {m}")));
        if self.slots == 0 || self.slots > 1 << 26 {
            return bad("slots must be in 1..=2^26");
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return bad("alpha must be in (0, 1]");
        }
        if !(self.quantile > 0.5 && self.quantile < 1.0) {
            return bad("quantile must be in (0.5, 1)");
        }
        if !(self.slack >= 1.0 && self.lower_tier_factor >= 1.0) {
            return bad("slack and lower_tier_factor must be at least 1");
        }
        if self.min_ttl.is_zero() || self.min_ttl > self.max_ttl {
            return bad("need 0 < min_ttl <= max_ttl");
        }
        if self.cold_ttl < self.min_ttl || self.cold_ttl > self.max_ttl {
            return bad("cold_ttl must lie in [min_ttl, max_ttl]");
        }
        Ok(())
    }
}

/// The model of a key's reads, as the predictor sees it now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyModel {
    /// Reads observed (saturating).
    pub reads: u32,
    /// Moving mean of `ln(1 + interval_ms)`.
    pub log_mean: f64,
    /// Moving variance of `ln(1 + interval_ms)`.
    pub log_var: f64,
}

/// Predicts per-key idle TTLs from observed access intervals (see the module docs).
#[derive(Debug)]
pub struct MLTtlPredictor {
    config: TtlModelConfig,
    z: f64,
    mask: usize,
    epoch: Instant,
    slots: Box<[Slot]>,
    observations: AtomicU64,
}

#[derive(Debug, Default)]
struct Slot {
    /// `tag << 44 | last_read_ms`.
    tag_last: AtomicU64,
    /// `f32 mean bits << 32 | f32 variance bits`.
    moments: AtomicU64,
    reads: AtomicU32,
}

/// The variance a key's log-interval starts from: that of memoryless (exponential) gaps,
/// `pi^2 / 6`. One interval says nothing about spread; starting at zero would set the
/// first TTLs at twice one observed gap, and a key with random gaps would miss its next
/// read about half the time until the moving variance caught up. Each later interval
/// replaces a share `alpha` of the prior with evidence.
const PRIOR_LOG_VAR: f64 = std::f64::consts::PI * std::f64::consts::PI / 6.0;

const MS_BITS: u32 = 44;
const MS_MASK: u64 = (1 << MS_BITS) - 1;

impl MLTtlPredictor {
    /// A predictor with an empty table.
    pub fn new(config: TtlModelConfig) -> Result<Self, CacheError> {
        config.validate()?;
        let n = config.slots.next_power_of_two();
        Ok(Self {
            z: normal_quantile(config.quantile),
            mask: n - 1,
            epoch: Instant::now(),
            slots: (0..n).map(|_| Slot::default()).collect(),
            observations: AtomicU64::new(0),
            config,
        })
    }

    /// The model's parameters.
    pub fn config(&self) -> &TtlModelConfig {
        &self.config
    }

    /// Records a read of the key with hash `key_hash` at `at`.
    pub fn observe(&self, key_hash: u64, at: Instant) {
        self.observe_at_ms(key_hash, self.ms_since_epoch(at));
    }

    /// Records a read at `now_ms` milliseconds on the predictor's clock.
    pub fn observe_at_ms(&self, key_hash: u64, now_ms: u64) {
        self.observations.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(key_hash as usize) & self.mask];
        let tag = key_hash >> MS_BITS;
        let now_ms = now_ms & MS_MASK;
        let prev = slot
            .tag_last
            .swap(tag << MS_BITS | now_ms, Ordering::Relaxed);
        if prev >> MS_BITS != tag || slot.reads.load(Ordering::Relaxed) == 0 {
            // A new key for this slot: its first read.
            slot.reads.store(1, Ordering::Relaxed);
            slot.moments.store(0, Ordering::Relaxed);
            return;
        }
        let interval = now_ms.saturating_sub(prev & MS_MASK);
        let x = (1.0 + interval as f64).ln();
        let reads = slot.reads.load(Ordering::Relaxed);
        let (mean, var) = unpack(slot.moments.load(Ordering::Relaxed));
        let (mean, var) = if reads < 2 {
            (x, PRIOR_LOG_VAR)
        } else {
            let a = self.config.alpha;
            let d = x - mean;
            (mean + a * d, (1.0 - a) * (var + a * d * d))
        };
        slot.moments.store(pack(mean, var), Ordering::Relaxed);
        slot.reads.store(reads.saturating_add(1), Ordering::Relaxed);
    }

    /// The model of the key with hash `key_hash`, if its slot holds it.
    pub fn model(&self, key_hash: u64) -> Option<KeyModel> {
        let slot = &self.slots[(key_hash as usize) & self.mask];
        let tag = key_hash >> MS_BITS;
        let reads = slot.reads.load(Ordering::Relaxed);
        if slot.tag_last.load(Ordering::Relaxed) >> MS_BITS != tag || reads == 0 {
            return None;
        }
        let (log_mean, log_var) = unpack(slot.moments.load(Ordering::Relaxed));
        Some(KeyModel {
            reads,
            log_mean,
            log_var,
        })
    }

    /// The idle TTL predicted for the key with hash `key_hash`.
    pub fn predict(&self, key_hash: u64) -> Duration {
        match self.model(key_hash) {
            Some(m) if m.reads >= 2 => {
                let q_ms = (m.log_mean + self.z * m.log_var.max(0.0).sqrt()).exp() - 1.0;
                let ms = (q_ms.max(0.0) * self.config.slack).min(1e12);
                Duration::from_micros((ms * 1000.0) as u64)
                    .clamp(self.config.min_ttl, self.config.max_ttl)
            }
            _ => self.config.cold_ttl,
        }
    }

    /// The TTL for the lower tiers: the prediction times `lower_tier_factor`.
    pub fn predict_lower_tier(&self, key_hash: u64) -> Duration {
        self.predict(key_hash)
            .mul_f64(self.config.lower_tier_factor)
            .min(self.config.max_ttl)
    }

    /// Reads observed since the predictor was created.
    pub fn observations(&self) -> u64 {
        self.observations.load(Ordering::Relaxed)
    }

    fn ms_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

fn pack(mean: f64, var: f64) -> u64 {
    u64::from((mean as f32).to_bits()) << 32 | u64::from((var as f32).to_bits())
}

fn unpack(bits: u64) -> (f64, f64) {
    (
        f64::from(f32::from_bits((bits >> 32) as u32)),
        f64::from(f32::from_bits(bits as u32)),
    )
}

/// The standard normal quantile (inverse CDF) of `p` in (0, 1), by Acklam's rational
/// approximation (relative error below 1.2e-9).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let p_low = 0.024_25;
    if p < p_low {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictor() -> MLTtlPredictor {
        MLTtlPredictor::new(TtlModelConfig {
            slots: 1024,
            cold_ttl: Duration::from_secs(2),
            ..TtlModelConfig::default()
        })
        .expect("valid")
    }

    #[test]
    fn normal_quantiles_match_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_6),
            (0.99, 2.326_347_9),
            (0.01, -2.326_347_9),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-6, "p={p}");
        }
    }

    #[test]
    fn a_key_read_once_gets_the_cold_ttl() {
        let p = predictor();
        assert_eq!(p.predict(42), Duration::from_secs(2));
        p.observe_at_ms(42, 1000);
        assert_eq!(p.model(42).map(|m| m.reads), Some(1));
        assert_eq!(p.predict(42), Duration::from_secs(2));
    }

    #[test]
    fn a_regular_key_lives_across_its_gaps() {
        let p = predictor();
        // Read every 30 s: a short fixed TTL would drop it between reads.
        for i in 0..20 {
            p.observe_at_ms(7, i * 30_000);
        }
        let ttl = p.predict(7);
        assert!(ttl > Duration::from_secs(30), "{ttl:?}");
        assert!(ttl < Duration::from_secs(120), "{ttl:?}");
        assert_eq!(p.predict_lower_tier(7), ttl.mul_f64(4.0));
    }

    #[test]
    fn a_hot_key_gets_a_short_idle_ttl_and_jitter_widens_it() {
        let p = predictor();
        for i in 0..50 {
            p.observe_at_ms(1, i * 10);
        }
        let steady = p.predict(1);
        assert!(steady < Duration::from_millis(100), "{steady:?}");
        // The same mean gap with spread: the 90% quantile is further out.
        let q = predictor();
        for i in 0..50u64 {
            q.observe_at_ms(1, i * 10 + if i % 2 == 0 { 0 } else { 8 });
        }
        let m = q.model(1).expect("modelled");
        assert!(m.log_var > 0.0, "{m:?}");
    }

    #[test]
    fn random_gaps_rarely_outlive_the_predicted_ttl_from_the_second_read_on() {
        // 500 keys read at exponential gaps (mean 200 ms, a seeded xorshift): from the
        // moment a key has a model, how often is its next gap longer than its idle TTL?
        let p = MLTtlPredictor::new(TtlModelConfig {
            min_ttl: Duration::from_millis(1),
            ..TtlModelConfig::default()
        })
        .expect("valid");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut chances, mut misses) = (0, 0);
        for key in 0..500u64 {
            let mut now = 0.0;
            for read in 0..12 {
                let gap = -200.0 * (1.0 - uniform()).ln();
                if read >= 2 {
                    chances += 1;
                    misses += usize::from(Duration::from_secs_f64(gap / 1e3) > p.predict(key));
                }
                now += gap;
                p.observe_at_ms(key, now as u64);
            }
        }
        let rate = misses as f64 / chances as f64;
        // 2.6% with the variance prior; without it (a zero start) the same trace missed 8.4%.
        assert!(rate < 0.04, "{misses} of {chances} gaps outlived the TTL");
    }

    #[test]
    fn a_colliding_key_takes_the_slot_over() {
        let p = predictor();
        let a = 5u64;
        let b = 5u64 | (1 << 50); // same slot, different tag
        for i in 0..10 {
            p.observe_at_ms(a, i * 100);
        }
        assert!(p.model(a).is_some());
        p.observe_at_ms(b, 5000);
        assert!(p.model(a).is_none());
        assert_eq!(p.model(b).map(|m| m.reads), Some(1));
        assert_eq!(p.predict(a), Duration::from_secs(2));
    }

    #[test]
    fn predictions_stay_in_bounds() {
        let p = predictor();
        for i in 0..5 {
            p.observe_at_ms(9, i); // 1 ms apart
            p.observe_at_ms(10, i * 10_000_000_000); // months apart
        }
        assert_eq!(p.predict(9), p.config().min_ttl);
        assert_eq!(p.predict(10), p.config().max_ttl);
        assert!(p.observations() >= 10);
    }
}
