//! `ScriptedModel`: a simulated model with seeded latency, queueing, failures and outages,
//! for failover tests and load scenarios where real inference would hide the policy.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tokio::sync::Semaphore;

use crate::error::ModelError;
use crate::model::{AIModel, InferFuture, Task, TaskOutput, TaskType};

/// How a [`ScriptedModel`] behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedModelConfig {
    /// Unique name.
    pub name: String,
    /// Task types served.
    pub capabilities: Vec<TaskType>,
    /// Reported quality score.
    pub quality: f64,
    /// Reported cost per call.
    pub cost: f64,
    /// Service time of an empty input.
    pub base_latency: Duration,
    /// Added service time per input value.
    pub latency_per_unit: Duration,
    /// Sigma of the log-normal factor on the service time (0: exact); the median factor is 1.
    pub jitter: f64,
    /// Calls served at once; more wait in FIFO order (0: unlimited).
    pub capacity: usize,
    /// Probability that a call fails (after its service time, as a server error would).
    pub failure_rate: f64,
    /// Seed of the latency and failure draws.
    pub seed: u64,
}

impl ScriptedModelConfig {
    /// A model named `name` serving `capabilities` with quality `quality` and cost `cost`
    /// that answers after `base_latency`, never fails and serves any number of calls at once.
    pub fn new(
        name: &str,
        capabilities: &[TaskType],
        quality: f64,
        cost: f64,
        base_latency: Duration,
    ) -> Self {
        Self {
            name: name.to_owned(),
            capabilities: capabilities.to_vec(),
            quality,
            cost,
            base_latency,
            latency_per_unit: Duration::ZERO,
            jitter: 0.0,
            capacity: 0,
            failure_rate: 0.0,
            seed: 0,
        }
    }
}

/// A simulated model: sleeps (tokio time, so paused-time tests run instantly) for a seeded
/// service time behind a FIFO of `capacity` slots, fails at a seeded rate, and can be taken
/// down or told to fail its next calls. Its answer is its input, doubled.
#[derive(Debug)]
pub struct ScriptedModel {
    config: ScriptedModelConfig,
    rng: Mutex<Xoshiro256PlusPlus>,
    slots: Option<Semaphore>,
    down: AtomicBool,
    fail_next: AtomicU32,
    calls: AtomicU64,
}

impl ScriptedModel {
    /// A model behaving as `config` says.
    pub fn new(config: ScriptedModelConfig) -> Self {
        Self {
            rng: Mutex::new(Xoshiro256PlusPlus::seed_from_u64(config.seed)),
            slots: (config.capacity > 0).then(|| Semaphore::new(config.capacity)),
            down: AtomicBool::new(false),
            fail_next: AtomicU32::new(0),
            calls: AtomicU64::new(0),
            config,
        }
    }

    /// Takes the model down (every call fails at once with `Unavailable`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Whether the model is down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Makes the next `n` calls fail with `Internal` after their service time.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Calls received, failed ones included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The configuration.
    pub fn config(&self) -> &ScriptedModelConfig {
        &self.config
    }

    /// Draws one call's service time and whether it fails.
    fn draw(&self, units: usize) -> (Duration, bool) {
        let c = &self.config;
        let nominal =
            c.base_latency + c.latency_per_unit * u32::try_from(units).unwrap_or(u32::MAX);
        let mut rng = self.rng.lock();
        let factor = if c.jitter > 0.0 {
            // Box-Muller: one standard normal from two uniforms.
            let u1: f64 = rng.random_range(f64::EPSILON..1.0);
            let u2: f64 = rng.random_range(0.0..1.0);
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (c.jitter * z).exp()
        } else {
            1.0
        };
        let fails = rng.random_range(0.0..1.0) < c.failure_rate;
        (nominal.mul_f64(factor), fails)
    }
}

impl AIModel for ScriptedModel {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> &[TaskType] {
        &self.config.capabilities
    }

    fn quality_score(&self) -> f64 {
        self.config.quality
    }

    fn cost(&self) -> f64 {
        self.config.cost
    }

    fn infer<'a>(&'a self, task: &'a Task) -> InferFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let name = || self.config.name.clone();
            if self.is_down() {
                return Err(ModelError::Unavailable { model: name() });
            }
            let (service, random_failure) = self.draw(task.input.len());
            let _slot = match &self.slots {
                Some(s) => Some(
                    s.acquire()
                        .await
                        .map_err(|_| ModelError::Unavailable { model: name() })?,
                ),
                None => None,
            };
            tokio::time::sleep(service).await;
            let scripted_failure = self
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if scripted_failure || random_failure {
                return Err(ModelError::Internal {
                    model: name(),
                    reason: "injected failure".to_owned(),
                });
            }
            Ok(TaskOutput {
                values: task.input.iter().map(|x| x * 2.0).collect(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn latency_capacity_and_injected_failures() {
        let mut cfg = ScriptedModelConfig::new(
            "m",
            &[TaskType::Completion],
            0.9,
            1.0,
            Duration::from_millis(10),
        );
        cfg.latency_per_unit = Duration::from_millis(5);
        cfg.capacity = 1;
        let m = std::sync::Arc::new(ScriptedModel::new(cfg));
        let task = Task::new(1, vec![1.0, 2.0]);
        let t0 = Instant::now();
        let out = m.infer(&task).await.expect("answers");
        assert_eq!(out.values, vec![2.0, 4.0]);
        assert_eq!(t0.elapsed(), Duration::from_millis(20));
        // Two calls through one slot queue: the second ends after both service times.
        let t0 = Instant::now();
        let (a, b) = tokio::join!(m.infer(&task), m.infer(&task));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(t0.elapsed(), Duration::from_millis(40));
        m.fail_next(1);
        assert!(matches!(
            m.infer(&task).await,
            Err(ModelError::Internal { .. })
        ));
        assert!(m.infer(&task).await.is_ok());
        m.set_down(true);
        let t0 = Instant::now();
        assert!(matches!(
            m.infer(&task).await,
            Err(ModelError::Unavailable { .. })
        ));
        assert_eq!(t0.elapsed(), Duration::ZERO, "a down model fails at once");
        assert_eq!(m.calls(), 6);
    }

    #[test]
    fn failure_rate_and_jitter_are_seeded() {
        let mut cfg =
            ScriptedModelConfig::new("m", &[TaskType::Chat], 0.5, 1.0, Duration::from_millis(10));
        cfg.failure_rate = 0.25;
        cfg.jitter = 0.3;
        cfg.seed = 42;
        let draws = |cfg: &ScriptedModelConfig| {
            let m = ScriptedModel::new(cfg.clone());
            (0..4000).map(|_| m.draw(0)).collect::<Vec<_>>()
        };
        let a = draws(&cfg);
        assert_eq!(a, draws(&cfg), "same seed, same draws");
        let failures = a.iter().filter(|(_, f)| *f).count();
        assert!((900..1100).contains(&failures), "{failures}");
        let mut ms: Vec<f64> = a.iter().map(|(d, _)| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let median = ms[ms.len() / 2];
        assert!((median - 10.0).abs() < 0.5, "median {median}");
        assert!(ms[0] < 7.0 && ms[ms.len() - 1] > 14.0, "log-normal spread");
    }
}
