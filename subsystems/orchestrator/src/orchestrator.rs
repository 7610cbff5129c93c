//! The `ModelOrchestrator`: picks the cheapest model that meets a task's quality and is
//! predicted to meet its deadline, balances equivalent models, fails over within a retry
//! budget and keeps per-model stats.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::balancer::LoadBalancer;
use crate::context::{ModelExecutionContext, QualityRequirements};
use crate::error::{
    ConfigError, FailoverError, LoadBalancingError, ModelError, OrchestrationError, SelectionError,
};
use crate::failover::{Admission, BreakerPolicy, CircuitState, FailoverManager, RetryBudget};
use crate::model::{AIModel, Task, TaskOutput};
use crate::stats::{ModelStats, PerformanceStats};
use crate::tracker::{LatencyModel, PerformanceTracker, Sample};

/// Tuning of an orchestrator. The defaults suit models that answer in milliseconds to
/// seconds; see the README for what each knob trades.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrchestratorConfig {
    /// Model calls per task at most, the first included.
    pub max_attempts: u32,
    /// Retry tokens each task deposits: retries stay below this share of tasks (plus the
    /// time-based allowance), however many calls fail.
    pub retry_ratio: f64,
    /// Retry tokens added per second, so a quiet orchestrator can still retry.
    pub min_retries_per_sec: f64,
    /// Most tokens the retry bucket holds.
    pub max_retry_tokens: f64,
    /// Outcomes per model the circuit breaker remembers (at most 64).
    pub failure_window: u32,
    /// Fewest outcomes in the window before the failure ratio may open a circuit.
    pub min_calls: u32,
    /// Failure ratio in the window that opens a circuit.
    pub failure_ratio: f64,
    /// Consecutive failures that open a circuit.
    pub consecutive_failures: u32,
    /// How long an opened circuit keeps a model out before a probe; doubled after each
    /// failed probe up to `max_cool_down`.
    pub cool_down: Duration,
    /// Longest cool-down.
    pub max_cool_down: Duration,
    /// EWMA weight of a new latency sample.
    pub latency_alpha: f64,
    /// Standard deviations above the mean latency that a prediction adds.
    pub latency_z: f64,
    /// Time constant with which an idle model's latency estimate relaxes to its floor.
    pub latency_decay: Duration,
    /// Seed of the P2C draws.
    pub seed: u64,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_ratio: 0.2,
            min_retries_per_sec: 10.0,
            max_retry_tokens: 100.0,
            failure_window: 20,
            min_calls: 10,
            failure_ratio: 0.5,
            consecutive_failures: 5,
            cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(30),
            latency_alpha: 0.2,
            latency_z: 2.0,
            latency_decay: Duration::from_secs(1),
            seed: 0x6f72_6368,
        }
    }
}

/// The answer to a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// The task's id.
    pub task_id: u64,
    /// The model that answered.
    pub model: String,
    /// Its answer.
    pub output: TaskOutput,
    /// The answering model's quality score.
    pub quality: f64,
    /// The summed cost of every call made for the task.
    pub cost: f64,
    /// From the call to `execute_task` to the answer, retries included.
    pub latency: Duration,
    /// Model calls made (1 without failover).
    pub attempts: u32,
}

/// Routes tasks to models: quality first, then the predicted deadline, then cost; balances
/// equally cheap models with P2C; fails over within a token-bucket retry budget; takes
/// failing models out of rotation with a cool-down circuit breaker.
#[derive(Debug)]
pub struct ModelOrchestrator {
    models: Vec<Arc<dyn AIModel>>,
    by_name: HashMap<String, usize>,
    performance_tracker: PerformanceTracker,
    load_balancer: LoadBalancer,
    failover_manager: FailoverManager,
    config: OrchestratorConfig,
    totals: Totals,
}

#[derive(Debug, Default)]
struct Totals {
    tasks: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    deadline_misses: AtomicU64,
    retries: AtomicU64,
    retries_denied: AtomicU64,
}

impl ModelOrchestrator {
    /// An orchestrator without models.
    pub fn new(config: OrchestratorConfig) -> Self {
        let policy = BreakerPolicy {
            window: config.failure_window,
            min_calls: config.min_calls,
            failure_ratio: config.failure_ratio,
            consecutive_failures: config.consecutive_failures.max(1),
            cool_down: config.cool_down,
            max_cool_down: config.max_cool_down.max(config.cool_down),
        };
        let budget = RetryBudget::new(
            config.retry_ratio,
            config.min_retries_per_sec,
            config.max_retry_tokens,
            Instant::now(),
        );
        Self {
            models: Vec::new(),
            by_name: HashMap::new(),
            performance_tracker: PerformanceTracker::new(LatencyModel {
                alpha: config.latency_alpha,
                z: config.latency_z,
                decay: config.latency_decay,
            }),
            load_balancer: LoadBalancer::new(config.seed),
            failover_manager: FailoverManager::new(policy, budget),
            config,
            totals: Totals::default(),
        }
    }

    /// An orchestrator over `models`.
    pub fn with_models(
        config: OrchestratorConfig,
        models: impl IntoIterator<Item = Arc<dyn AIModel>>,
    ) -> Result<Self, ConfigError> {
        let mut o = Self::new(config);
        for m in models {
            o.register(m)?;
        }
        Ok(o)
    }

    /// Adds a model; names must be unique, quality in `[0, 1]`, cost finite and not negative.
    pub fn register(&mut self, model: Arc<dyn AIModel>) -> Result<(), ConfigError> {
        let name = model.name().to_owned();
        if self.by_name.contains_key(&name) {
            return Err(ConfigError::DuplicateModel(name));
        }
        let quality = model.quality_score();
        if !(0.0..=1.0).contains(&quality) {
            return Err(ConfigError::InvalidModel {
                model: name,
                field: "quality_score",
                value: quality,
            });
        }
        let cost = model.cost();
        if !cost.is_finite() || cost < 0.0 {
            return Err(ConfigError::InvalidModel {
                model: name,
                field: "cost",
                value: cost,
            });
        }
        self.by_name.insert(name, self.models.len());
        self.models.push(model);
        self.performance_tracker.add_model();
        self.load_balancer.add_model();
        self.failover_manager.add_model();
        Ok(())
    }

    /// The registered models, in registration order.
    pub fn models(&self) -> &[Arc<dyn AIModel>] {
        &self.models
    }

    /// The configuration.
    pub fn config(&self) -> &OrchestratorConfig {
        &self.config
    }

    /// Runs `task` on the cheapest model that meets `context`'s quality and is predicted to
    /// answer before its deadline; on a retryable error, fails over to another model while
    /// the retry budget and `max_attempts` allow. A call still running at the deadline is
    /// abandoned, so a returned result always arrived in time.
    pub async fn execute_task(
        &self,
        task: Task,
        context: ModelExecutionContext,
    ) -> Result<TaskResult, OrchestrationError> {
        let start = Instant::now();
        self.totals.tasks.fetch_add(1, Ordering::Relaxed);
        self.failover_manager.deposit();
        let result = self.run(&task, &context, start).await;
        let counter = if result.is_ok() {
            &self.totals.succeeded
        } else {
            &self.totals.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Err(OrchestrationError::DeadlineExceeded { .. }) = result {
            self.totals.deadline_misses.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// The model `execute_task` would call first for `context`, without calling it.
    pub async fn select_model(
        &self,
        context: &ModelExecutionContext,
    ) -> Result<Arc<dyn AIModel>, SelectionError> {
        let i = self.choose(context, &[])?;
        Ok(Arc::clone(&self.models[i]))
    }

    /// Picks one of `models` (registered, in rotation) by power of two choices over
    /// `(in-flight calls + 1) x predicted latency` (least-loaded with two models); `load` is
    /// the request's size in the models' work units, which selects the latency class.
    /// Without a latency sample for every candidate the in-flight counts alone decide.
    pub async fn load_balance(
        &self,
        models: &[Arc<dyn AIModel>],
        load: f64,
    ) -> Result<Arc<dyn AIModel>, LoadBalancingError> {
        if models.is_empty() {
            return Err(LoadBalancingError::NoModels);
        }
        let now = Instant::now();
        let mut open = Vec::with_capacity(models.len());
        for m in models {
            let i = self
                .index_of(m.as_ref())
                .ok_or_else(|| LoadBalancingError::UnknownModel(m.name().to_owned()))?;
            if self.failover_manager.admits(i, now) {
                open.push(i);
            }
        }
        let size = if load.is_finite() && load > 0.0 {
            load.round() as usize
        } else {
            0
        };
        self.balance(&open, size, now)
            .map(|i| Arc::clone(&self.models[i]))
            .ok_or(LoadBalancingError::AllUnavailable)
    }

    /// Records `error` against `failed_model` (its error count and circuit breaker) and
    /// offers a replacement serving its primary (first) task type: the cheapest model in
    /// rotation with at least its quality, or the best quality available when none has.
    /// Takes one token from the retry budget; refuses when the error is not retryable,
    /// the budget is empty or no other model serves the task type.
    pub async fn handle_failover(
        &self,
        failed_model: &Arc<dyn AIModel>,
        error: &ModelError,
    ) -> Result<Arc<dyn AIModel>, FailoverError> {
        let failed = self
            .index_of(failed_model.as_ref())
            .ok_or_else(|| FailoverError::UnknownModel(failed_model.name().to_owned()))?;
        self.performance_tracker.record_error(failed);
        self.record_failure(failed, error, Admission::Normal);
        let Some(&task_type) = failed_model.capabilities().first() else {
            return Err(FailoverError::NoAlternative(SelectionError::AllUnavailable));
        };
        let mut context =
            ModelExecutionContext::new(task_type, 1).with_min_quality(failed_model.quality_score());
        let tried = [failed];
        if let Err(SelectionError::AllUnavailable) = self.choose(&context, &tried) {
            let now = Instant::now();
            let best = (0..self.models.len())
                .filter(|&i| i != failed && self.models[i].supports(task_type))
                .filter(|&i| self.failover_manager.admits(i, now))
                .map(|i| self.models[i].quality_score())
                .fold(0.0, f64::max);
            context.quality_requirements = QualityRequirements::at_least(best);
        }
        self.failover_choice(error, &context, &tried)
            .map(|i| Arc::clone(&self.models[i]))
    }

    /// Totals and per-model counters, latency quantiles and circuit states.
    pub fn performance_stats(&self) -> PerformanceStats {
        let now = Instant::now();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let models = self
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let p = self.performance_tracker.snapshot(i);
                let (circuit, circuit_opens) = self.failover_manager.circuit(i, now);
                ModelStats {
                    name: m.name().to_owned(),
                    calls: p.calls,
                    successes: p.successes,
                    errors: p.errors,
                    deadline_misses: p.deadline_misses,
                    fallbacks: p.fallbacks,
                    latency_p50: p.latency_p50,
                    latency_p99: p.latency_p99,
                    predicted_latency: self.performance_tracker.predict(i, 1, now),
                    in_flight: self.load_balancer.in_flight(i),
                    circuit,
                    circuit_opens,
                }
            })
            .collect();
        PerformanceStats {
            tasks: load(&self.totals.tasks),
            succeeded: load(&self.totals.succeeded),
            failed: load(&self.totals.failed),
            deadline_misses: load(&self.totals.deadline_misses),
            retries: load(&self.totals.retries),
            retries_denied: load(&self.totals.retries_denied),
            models,
        }
    }

    /// The predicted latency of the model named `model` for an input of `input_size`;
    /// `None` for an unknown model or one without a latency sample yet.
    pub fn predicted_latency(&self, model: &str, input_size: usize) -> Option<Duration> {
        let i = *self.by_name.get(model)?;
        self.performance_tracker
            .predict(i, input_size, Instant::now())
    }

    /// The circuit state of the model named `model`.
    pub fn circuit_state(&self, model: &str) -> Option<CircuitState> {
        let i = *self.by_name.get(model)?;
        Some(self.failover_manager.circuit(i, Instant::now()).0)
    }

    async fn run(
        &self,
        task: &Task,
        ctx: &ModelExecutionContext,
        start: Instant,
    ) -> Result<TaskResult, OrchestrationError> {
        if ctx.deadline.is_some_and(|d| d <= start) {
            return Err(OrchestrationError::DeadlineExceeded {
                attempts: 0,
                model: None,
            });
        }
        let mut tried = Vec::new();
        let (mut model, mut admission) = self.reserve(ctx, &tried).map_err(|e| match e {
            SelectionError::DeadlinePassed => OrchestrationError::DeadlineExceeded {
                attempts: 0,
                model: None,
            },
            e => OrchestrationError::Selection(e),
        })?;
        let mut attempts = 0;
        let mut cost = 0.0;
        loop {
            attempts += 1;
            let m = &self.models[model];
            cost += m.cost();
            let in_flight = self.load_balancer.in_flight(model);
            let mut call = Call::begin(self, model, admission);
            let t0 = Instant::now();
            let outcome = match ctx.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, m.infer(task)).await.ok(),
                None => Some(m.infer(task).await),
            };
            let sample = Sample {
                input_size: ctx.input_size,
                latency: t0.elapsed(),
                in_flight,
            };
            let error = match outcome {
                None => {
                    self.performance_tracker.record_deadline_miss(model, sample);
                    return Err(OrchestrationError::DeadlineExceeded {
                        attempts,
                        model: Some(m.name().to_owned()),
                    });
                }
                Some(Ok(output)) => {
                    call.settled = true;
                    self.performance_tracker.record_success(model, sample);
                    self.failover_manager.on_success(model, admission);
                    return Ok(TaskResult {
                        task_id: task.id,
                        model: m.name().to_owned(),
                        output,
                        quality: m.quality_score(),
                        cost,
                        latency: start.elapsed(),
                        attempts,
                    });
                }
                Some(Err(error)) => error,
            };
            call.settled = true;
            drop(call);
            self.performance_tracker.record_error(model);
            self.record_failure(model, &error, admission);
            if attempts >= self.config.max_attempts {
                return Err(OrchestrationError::RetriesExhausted {
                    model: m.name().to_owned(),
                    attempts,
                    source: error,
                });
            }
            tried.push(model);
            let refused = |reason| OrchestrationError::Failover {
                model: m.name().to_owned(),
                attempts,
                error: error.clone(),
                reason,
            };
            let next = self.failover_choice(&error, ctx, &tried).map_err(refused)?;
            (model, admission) = match self.failover_manager.dispatch(next, Instant::now()) {
                // Another task took the probe since `choose` looked: pick again; the
                // retry token is already spent.
                Admission::Rejected => self
                    .reserve(ctx, &tried)
                    .map_err(|e| refused(FailoverError::NoAlternative(e)))?,
                a => (next, a),
            };
        }
    }

    /// The model for `ctx` among those not in `exclude`: the cheapest in rotation that
    /// meets the quality and is predicted to answer in time at its current load (a model
    /// without latency samples is assumed to), P2C among equally cheap ones; when none is
    /// predicted to make it, the one predicted fastest.
    fn choose(
        &self,
        ctx: &ModelExecutionContext,
        exclude: &[usize],
    ) -> Result<usize, SelectionError> {
        let now = Instant::now();
        let remaining = match ctx.deadline {
            Some(d) if d <= now => return Err(SelectionError::DeadlinePassed),
            Some(d) => Some(d - now),
            None => None,
        };
        let capable: Vec<usize> = (0..self.models.len())
            .filter(|&i| self.models[i].supports(ctx.task_type))
            .collect();
        if capable.is_empty() {
            return Err(SelectionError::NoCapableModel(ctx.task_type));
        }
        let required = ctx.quality_requirements.min_quality;
        let good: Vec<usize> = capable
            .iter()
            .copied()
            .filter(|&i| self.models[i].quality_score() >= required)
            .collect();
        if good.is_empty() {
            let best = capable
                .iter()
                .map(|&i| self.models[i].quality_score())
                .fold(0.0, f64::max);
            return Err(SelectionError::QualityUnattainable {
                task_type: ctx.task_type,
                required,
                best,
            });
        }
        let open: Vec<(usize, Option<Duration>)> = good
            .into_iter()
            .filter(|i| !exclude.contains(i) && self.failover_manager.admits(*i, now))
            .map(|i| {
                let load = self.load_balancer.in_flight(i);
                let p = self
                    .performance_tracker
                    .predict_under_load(i, ctx.input_size, now, load);
                (i, p)
            })
            .collect();
        let feasible: Vec<usize> = open
            .iter()
            .filter(|(_, p)| match (remaining, p) {
                (Some(r), Some(p)) => *p <= r,
                _ => true,
            })
            .map(|&(i, _)| i)
            .collect();
        if feasible.is_empty() {
            return open
                .iter()
                .min_by_key(|(_, p)| *p)
                .map(|&(i, _)| i)
                .ok_or(SelectionError::AllUnavailable);
        }
        let cheapest = feasible
            .iter()
            .map(|&i| self.models[i].cost())
            .fold(f64::INFINITY, f64::min);
        let tier: Vec<usize> = feasible
            .into_iter()
            .filter(|&i| self.models[i].cost() <= cheapest)
            .collect();
        self.balance(&tier, ctx.input_size, now)
            .ok_or(SelectionError::AllUnavailable)
    }

    /// `choose`, then a reservation with the model's breaker (a half-open model takes one
    /// probe at a time); a model whose probe was taken meanwhile is skipped.
    fn reserve(
        &self,
        ctx: &ModelExecutionContext,
        exclude: &[usize],
    ) -> Result<(usize, Admission), SelectionError> {
        let mut skip = exclude.to_vec();
        loop {
            let i = self.choose(ctx, &skip)?;
            match self.failover_manager.dispatch(i, Instant::now()) {
                Admission::Rejected => skip.push(i),
                a => return Ok((i, a)),
            }
        }
    }

    /// P2C over `candidates` by `(in-flight + 1) x predicted latency`.
    fn balance(&self, candidates: &[usize], input_size: usize, now: Instant) -> Option<usize> {
        let predicted: Vec<Option<Duration>> = candidates
            .iter()
            .map(|&i| self.performance_tracker.predict(i, input_size, now))
            .collect();
        let known = predicted.iter().all(Option::is_some);
        self.load_balancer.pick(candidates, |m| {
            let pending = (self.load_balancer.in_flight(m) + 1) as f64;
            let at = candidates.iter().position(|&c| c == m);
            match at.and_then(|k| predicted[k]) {
                Some(p) if known => pending * p.as_secs_f64(),
                _ => pending,
            }
        })
    }

    /// A retry for a task whose call failed with `error`: another model (none of `tried`)
    /// and a token from the budget.
    fn failover_choice(
        &self,
        error: &ModelError,
        ctx: &ModelExecutionContext,
        tried: &[usize],
    ) -> Result<usize, FailoverError> {
        if !error.is_retryable() {
            return Err(FailoverError::NotRetryable(error.clone()));
        }
        let next = self
            .choose(ctx, tried)
            .map_err(FailoverError::NoAlternative)?;
        if !self.failover_manager.try_retry(Instant::now()) {
            self.totals.retries_denied.fetch_add(1, Ordering::Relaxed);
            return Err(FailoverError::RetryBudgetExhausted);
        }
        self.totals.retries.fetch_add(1, Ordering::Relaxed);
        self.performance_tracker.record_fallback(next);
        Ok(next)
    }

    /// Feeds a failed call to the model's breaker. A rejected input proves the model
    /// answers, so it counts as a healthy outcome.
    fn record_failure(&self, model: usize, error: &ModelError, admission: Admission) {
        if error.is_retryable() {
            self.failover_manager
                .on_failure(model, admission, Instant::now());
        } else {
            self.failover_manager.on_success(model, admission);
        }
    }

    fn index_of(&self, model: &dyn AIModel) -> Option<usize> {
        self.by_name.get(model.name()).copied()
    }
}

/// One model call in flight: counted by the balancer until dropped. A call dropped before
/// it was settled (deadline, or the caller dropped `execute_task`) gives back a probe.
struct Call<'a> {
    orchestrator: &'a ModelOrchestrator,
    model: usize,
    admission: Admission,
    settled: bool,
}

impl<'a> Call<'a> {
    fn begin(orchestrator: &'a ModelOrchestrator, model: usize, admission: Admission) -> Self {
        orchestrator.load_balancer.begin(model);
        Self {
            orchestrator,
            model,
            admission,
            settled: false,
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let o = self.orchestrator;
        o.load_balancer.end(self.model);
        if !self.settled {
            o.failover_manager
                .on_abandon(self.model, self.admission, Instant::now());
        }
    }
}
