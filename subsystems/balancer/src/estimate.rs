//! Per-instance estimators: the peak-EWMA latency and the Holt forecast of load.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Peak-EWMA latency estimate (Finagle's, as tower's `PeakEwma`): a slower response than
/// the estimate replaces it at once; a faster one moves it by `1 - exp(-elapsed / decay)`;
/// with no response the estimate decays towards zero, so an instance that was slow once is
/// tried again after a while. Unlike tower's, the first response replaces the initial
/// guess outright: the guess is a prior, not a measurement, and averaging a 1 ms instance
/// with a 30 ms guess at a 10 s decay would hide it for seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    rtt_ns: f64,
    updated_at: Instant,
    sampled: bool,
}

impl PeakEwma {
    pub(crate) fn new(initial: Duration, now: Instant) -> Self {
        Self {
            rtt_ns: initial.as_nanos() as f64,
            updated_at: now,
            sampled: false,
        }
    }

    /// Records a response that took `rtt`.
    pub(crate) fn observe(&mut self, rtt: Duration, now: Instant, decay: Duration) {
        let rtt = rtt.as_nanos() as f64;
        if !self.sampled || rtt > self.rtt_ns {
            self.sampled = true;
            self.rtt_ns = rtt;
        } else {
            let w = self.weight(now, decay);
            self.rtt_ns = self.rtt_ns * w + rtt * (1.0 - w);
        }
        self.updated_at = self.updated_at.max(now);
    }

    /// Whether a response has been observed yet.
    pub(crate) fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// The estimate at `now`, decayed for the time since the last update.
    pub(crate) fn estimate_ns(&mut self, now: Instant, decay: Duration) -> f64 {
        self.rtt_ns *= self.weight(now, decay);
        self.updated_at = self.updated_at.max(now);
        self.rtt_ns
    }

    fn weight(&self, now: Instant, decay: Duration) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated_at).as_nanos() as f64;
        (-elapsed / decay.as_nanos().max(1) as f64).exp()
    }
}

/// Holt's linear (double exponential) smoothing of one instance's load: a level and a
/// trend, updated on every observation of its in-flight count, so a load that is rising
/// is forecast above its current value and an instance that is heating up looks busier
/// than the raw count says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadPredictor {
    alpha: f64,
    beta: f64,
    level: f64,
    trend: f64,
    observations: u64,
}

impl LoadPredictor {
    /// A predictor with level smoothing `alpha` and trend smoothing `beta` (both in (0, 1]).
    pub fn new(alpha: f64, beta: f64) -> Self {
        Self {
            alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0),
            beta: beta.clamp(f64::MIN_POSITIVE, 1.0),
            level: 0.0,
            trend: 0.0,
            observations: 0,
        }
    }

    /// Adds one observation of the load.
    pub fn observe(&mut self, load: f64) {
        match self.observations {
            0 => self.level = load,
            1 => {
                self.trend = load - self.level;
                self.level = load;
            }
            _ => {
                let prev = self.level;
                self.level = self.alpha * load + (1.0 - self.alpha) * (prev + self.trend);
                self.trend = self.beta * (self.level - prev) + (1.0 - self.beta) * self.trend;
            }
        }
        self.observations += 1;
    }

    /// The load forecast `steps` observations ahead (never negative).
    pub fn forecast(&self, steps: f64) -> f64 {
        (self.level + steps * self.trend).max(0.0)
    }

    /// Observations so far.
    pub fn observations(&self) -> u64 {
        self.observations
    }
}

/// A fast per-thread random number generator (splitmix64); routing needs cheap, not
/// cryptographic, randomness.
pub(crate) fn random_u64() -> u64 {
    static SEEDS: AtomicU64 = AtomicU64::new(0x853c_49e6_748f_ea9b);
    thread_local! {
        static STATE: Cell<u64> = Cell::new(SEEDS.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed));
    }
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        mix64(next)
    })
}

/// A uniform index below `n` (`n > 0`).
pub(crate) fn random_below(n: usize) -> usize {
    ((u128::from(random_u64()) * n as u128) >> 64) as usize
}

/// splitmix64's finalizer: a bijective mix of all 64 bits.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let t0 = Instant::now();
        let decay = Duration::from_secs(1);
        let mut e = PeakEwma::new(Duration::from_millis(10), t0);
        assert!(!e.is_sampled());
        e.observe(Duration::from_millis(1), t0, decay);
        assert_eq!(
            e.estimate_ns(t0, decay),
            1e6,
            "the first sample replaces the guess"
        );
        e.observe(Duration::from_millis(100), t0, decay);
        assert_eq!(e.estimate_ns(t0, decay), 100e6);
        let later = t0 + Duration::from_millis(500);
        e.observe(Duration::from_millis(10), later, decay);
        let w = (-0.5f64).exp();
        let want = 100e6 * w + 10e6 * (1.0 - w);
        assert!((e.estimate_ns(later, decay) - want).abs() < 1.0);
        let idle = e.estimate_ns(later + Duration::from_secs(5), decay);
        assert!(idle < want * 0.01, "{idle}");
    }

    #[test]
    fn holt_follows_a_ramp() {
        let mut p = LoadPredictor::new(0.5, 0.3);
        for i in 0..50 {
            p.observe(f64::from(i) * 2.0);
        }
        let f = p.forecast(1.0);
        assert!((f - 100.0).abs() < 1.0, "{f}");
        let mut flat = LoadPredictor::new(0.5, 0.3);
        for _ in 0..50 {
            flat.observe(7.0);
        }
        assert!((flat.forecast(3.0) - 7.0).abs() < 1e-9);
        assert_eq!(flat.observations(), 50);
    }

    #[test]
    fn random_below_stays_in_range_and_covers_it() {
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[random_below(7)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
