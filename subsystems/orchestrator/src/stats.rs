//! The orchestrator's performance report: totals and per-model counters, latency and circuit state.

use std::time::Duration;

use crate::failover::CircuitState;

/// Counters of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStats {
    /// The model's name.
    pub name: String,
    /// Calls made (successes, errors and deadline misses).
    pub calls: u64,
    /// Calls that returned an answer.
    pub successes: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Calls cut off by their task's deadline.
    pub deadline_misses: u64,
    /// Calls made to this model as a replacement for a failed one.
    pub fallbacks: u64,
    /// Median latency of answered calls and deadline misses (±1/32).
    pub latency_p50: Duration,
    /// 99th percentile of the same.
    pub latency_p99: Duration,
    /// The latency model's current prediction for a one-unit input; `None` before any sample.
    pub predicted_latency: Option<Duration>,
    /// Calls running now.
    pub in_flight: usize,
    /// Whether the model is in rotation.
    pub circuit: CircuitState,
    /// How many times its circuit opened.
    pub circuit_opens: u64,
}

/// Totals over every task, and every model's [`ModelStats`] in registration order.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceStats {
    /// Tasks submitted to `execute_task`.
    pub tasks: u64,
    /// Tasks answered.
    pub succeeded: u64,
    /// Tasks that ended in an error (deadline misses included).
    pub failed: u64,
    /// Tasks that ended because their deadline passed.
    pub deadline_misses: u64,
    /// Retries granted by failover.
    pub retries: u64,
    /// Retries refused because the retry budget was empty.
    pub retries_denied: u64,
    /// Per model.
    pub models: Vec<ModelStats>,
}

impl PerformanceStats {
    /// The stats of the model named `name`.
    pub fn model(&self, name: &str) -> Option<&ModelStats> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Model calls over every model.
    pub fn model_calls(&self) -> u64 {
        self.models.iter().map(|m| m.calls).sum()
    }

    /// Model calls per task: 1 when nothing was retried; the load that failures added.
    pub fn retry_amplification(&self) -> f64 {
        if self.tasks == 0 {
            return 0.0;
        }
        self.model_calls() as f64 / self.tasks as f64
    }
}
