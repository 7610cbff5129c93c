//! Load balancing over equivalent models: in-flight counts and power-of-two-choices.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// In-flight calls per model (by index) and the generator of the P2C draws.
#[derive(Debug)]
pub(crate) struct LoadBalancer {
    in_flight: Vec<AtomicUsize>,
    rng: Mutex<Xoshiro256PlusPlus>,
}

impl LoadBalancer {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            in_flight: Vec::new(),
            rng: Mutex::new(Xoshiro256PlusPlus::seed_from_u64(seed)),
        }
    }

    pub(crate) fn add_model(&mut self) {
        self.in_flight.push(AtomicUsize::new(0));
    }

    pub(crate) fn in_flight(&self, model: usize) -> usize {
        self.in_flight[model].load(Ordering::Relaxed)
    }

    pub(crate) fn begin(&self, model: usize) {
        self.in_flight[model].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end(&self, model: usize) {
        self.in_flight[model].fetch_sub(1, Ordering::Relaxed);
    }

    /// Power of two choices: two distinct candidates at random, the one with the lower
    /// `load` wins (the first drawn on a tie). With one or two candidates that is exactly
    /// least-loaded. P2C rather than a scan for the least loaded: many concurrent callers
    /// reading the same counters would all pick the same least-loaded model, while two
    /// random choices spread them and still keep the maximum load within
    /// `O(log log n)` of the mean (Mitzenmacher).
    pub(crate) fn pick(&self, candidates: &[usize], load: impl Fn(usize) -> f64) -> Option<usize> {
        match *candidates {
            [] => None,
            [only] => Some(only),
            _ => {
                let (a, b) = {
                    let mut rng = self.rng.lock();
                    let a = rng.random_range(0..candidates.len());
                    let b = rng.random_range(0..candidates.len() - 1);
                    (a, if b >= a { b + 1 } else { b })
                };
                let (a, b) = (candidates[a], candidates[b]);
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2c_never_picks_the_most_loaded_of_many() {
        let mut lb = LoadBalancer::new(7);
        for _ in 0..5 {
            lb.add_model();
        }
        let load = |m: usize| m as f64;
        let candidates = [0, 1, 2, 3, 4];
        let mut picks = [0u32; 5];
        for _ in 0..10_000 {
            picks[lb.pick(&candidates, load).expect("non-empty")] += 1;
        }
        assert_eq!(
            picks[4], 0,
            "the most loaded only wins a draw against itself"
        );
        // Model m wins when it is drawn and the other is more loaded: (4 - m) of the 20
        // ordered pairs for each side, i.e. (4 - m) / 10 of the draws.
        for (m, &n) in picks.iter().enumerate() {
            let expected = 10_000.0 * (4 - m) as f64 / 10.0;
            assert!(
                (f64::from(n) - expected).abs() < 300.0,
                "{m}: {n} vs {expected}"
            );
        }
    }

    #[test]
    fn two_candidates_is_least_loaded() {
        let mut lb = LoadBalancer::new(1);
        lb.add_model();
        lb.add_model();
        lb.begin(0);
        lb.begin(0);
        lb.begin(1);
        let load = |m: usize| lb.in_flight(m) as f64;
        for _ in 0..100 {
            assert_eq!(lb.pick(&[0, 1], load), Some(1));
        }
        lb.end(0);
        lb.end(0);
        assert_eq!(lb.pick(&[0, 1], load), Some(0));
        assert_eq!(lb.pick(&[], load), None);
    }
}
