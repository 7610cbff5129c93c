//! `orchestrator/deadline_mix/*` load scenarios: deadline-bound tasks over four simulated
//! models of different quality, latency, capacity and failure rate, the preferred one down
//! for the middle 30% of the tasks; the orchestrator against round-robin and the preferred
//! model alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rust_ai_ide_orchestrator::{
    AIModel, ModelExecutionContext, ModelOrchestrator, OrchestratorConfig, ScriptedModel,
    ScriptedModelConfig, Task, TaskType,
};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::stats::LatencySummary;
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

/// Runtime worker threads.
const THREADS: usize = 2;
/// Deadline of every task, from its submission.
const DEADLINE: Duration = Duration::from_millis(25);
/// Quality every task needs: the preferred model and the two dearer ones qualify.
const MIN_QUALITY: f64 = 0.8;
/// Inputs are 1..=MAX_INPUT values (the models' work units).
const MAX_INPUT: usize = 4;
/// The preferred model (cheapest that qualifies) is down for tasks in this share of the run.
const OUTAGE: (f64, f64) = (0.3, 0.6);
const PREFERRED: usize = 1;

/// `(name, quality, cost, base ms, ms per unit, capacity, failure rate)` of the four models.
const MODELS: [(&str, f64, f64, f64, f64, usize, f64); 4] = [
    ("fast", 0.70, 1.0, 1.0, 0.25, 16, 0.02),
    ("medium", 0.85, 2.0, 2.0, 0.5, 8, 0.01),
    ("flaky", 0.88, 3.0, 2.0, 0.5, 8, 0.20),
    ("large", 0.95, 6.0, 6.0, 1.0, 16, 0.005),
];
/// Sigma of the log-normal service-time jitter of every model.
const JITTER: f64 = 0.3;

/// Runs the selected `orchestrator/*` load scenarios.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let tasks = if opts.quick { 2_000 } else { 20_000 };
    let rt = super::tokio_runtime(THREADS)?;
    for &id in ids {
        let concurrency = match id {
            "orchestrator/deadline_mix/c8" => 8,
            "orchestrator/deadline_mix/c64" => 64,
            _ => continue,
        };
        for subject in [
            Subject::Perflab,
            Subject::RoundRobin,
            Subject::StaticPreferred,
        ] {
            let res = rt.block_on(deadline_mix(subject, concurrency, tasks));
            outcome.record(id, subject.name(), res);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// `ModelOrchestrator::execute_task`.
    Perflab,
    /// Models in turn, whatever their quality or latency; a failed call is retried once on
    /// the next model while the deadline allows.
    RoundRobin,
    /// Always the preferred model; a failed call is retried on it, up to three calls.
    StaticPreferred,
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Self::Perflab => "perflab",
            Self::RoundRobin => "round_robin",
            Self::StaticPreferred => "static_preferred",
        }
    }
}

/// How one task ended.
struct Outcome {
    /// Quality of the model that answered in time, if one did.
    answered: Option<f64>,
    /// Whether the answer came from the preferred model.
    by_preferred: bool,
}

/// What a run shares between its workers.
struct Run {
    subject: Subject,
    models: Vec<Arc<ScriptedModel>>,
    orchestrator: ModelOrchestrator,
    next: AtomicUsize,
    round_robin: AtomicUsize,
    tasks: usize,
    start: Instant,
    /// When the preferred model came back, once it has.
    back_at: OnceCell<Instant>,
    /// Nanoseconds from `back_at` to the first answer of the preferred model to a task
    /// submitted after it came back.
    recovery_ns: AtomicU64,
}

async fn deadline_mix(
    subject: Subject,
    concurrency: usize,
    tasks: usize,
) -> Result<BTreeMap<String, Measure>, String> {
    let models: Vec<Arc<ScriptedModel>> = MODELS
        .iter()
        .enumerate()
        .map(
            |(i, &(name, quality, cost, base, per_unit, capacity, failure_rate))| {
                let mut c = ScriptedModelConfig::new(
                    name,
                    &[TaskType::Completion],
                    quality,
                    cost,
                    Duration::from_secs_f64(base / 1e3),
                );
                c.latency_per_unit = Duration::from_secs_f64(per_unit / 1e3);
                c.jitter = JITTER;
                c.capacity = capacity;
                c.failure_rate = failure_rate;
                c.seed = 100 + i as u64;
                Arc::new(ScriptedModel::new(c))
            },
        )
        .collect();
    // Time constants sized to millisecond models: a cool-down of a few dozen service
    // times, latency estimates that forget congestion within a fifth of a second.
    let config = OrchestratorConfig {
        cool_down: Duration::from_millis(50),
        max_cool_down: Duration::from_millis(400),
        latency_decay: Duration::from_millis(200),
        ..OrchestratorConfig::default()
    };
    let orchestrator = ModelOrchestrator::with_models(
        config,
        models.iter().map(|m| Arc::clone(m) as Arc<dyn AIModel>),
    )
    .map_err(|e| e.to_string())?;
    let run = Arc::new(Run {
        subject,
        models,
        orchestrator,
        next: AtomicUsize::new(0),
        round_robin: AtomicUsize::new(0),
        tasks,
        start: Instant::now(),
        back_at: OnceCell::new(),
        recovery_ns: AtomicU64::new(u64::MAX),
    });
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let run = Arc::clone(&run);
            tokio::spawn(async move { run.worker(w as u64).await })
        })
        .collect();
    let mut latencies = Vec::with_capacity(tasks);
    let mut answered = 0u64;
    let mut quality_sum = 0.0;
    for w in workers {
        let (lat, n, q) = w.await.map_err(|e| e.to_string())?;
        latencies.extend(lat);
        answered += n;
        quality_sum += q;
    }
    let elapsed = run.start.elapsed();
    let calls: u64 = run.models.iter().map(|m| m.calls()).sum();
    let n = tasks as f64;
    let recovery = match (run.back_at.get(), run.recovery_ns.load(Ordering::Relaxed)) {
        (_, ns) if ns != u64::MAX => ns as f64,
        // Never served again: the whole time since it came back is the lower bound.
        (Some(back), _) => back.elapsed().as_nanos() as f64,
        (None, _) => return Err("the outage never ended".to_owned()),
    };
    let summary = LatencySummary::from_samples(&mut latencies).ok_or("no tasks ran")?;
    let mut m = BTreeMap::new();
    m.insert(
        "deadline_met_ratio".to_owned(),
        Measure::point(answered as f64 / n),
    );
    m.insert(
        "quality_weighted_success".to_owned(),
        Measure::point(quality_sum / n),
    );
    m.insert(
        "retry_amplification".to_owned(),
        Measure::point(calls as f64 / n),
    );
    m.insert("recovery_time".to_owned(), Measure::point(recovery));
    m.insert("latency_p50".to_owned(), Measure::bounded(summary.p50));
    m.insert("latency_p99".to_owned(), Measure::bounded(summary.p99));
    m.insert("errors".to_owned(), Measure::point(n - answered as f64));
    m.insert(
        "throughput".to_owned(),
        Measure::point(n / elapsed.as_secs_f64()),
    );
    Ok(m)
}

impl Run {
    /// Takes tasks until none is left; returns the end-to-end latencies (ns, failures
    /// included: the time until the caller learns the outcome), the tasks answered in time
    /// and their summed quality where it met the requirement.
    async fn worker(&self, seed: u64) -> (Vec<u64>, u64, f64) {
        let (mut latencies, mut answered, mut quality) = (Vec::new(), 0, 0.0);
        let mut input_len = seed as usize;
        loop {
            let t = self.next.fetch_add(1, Ordering::Relaxed);
            if t >= self.tasks {
                return (latencies, answered, quality);
            }
            self.outage(t);
            input_len = input_len % MAX_INPUT + 1;
            let submitted = Instant::now();
            let deadline = submitted + DEADLINE;
            let task = Task::new(t as u64, vec![0.5; input_len]);
            let out = match self.subject {
                Subject::Perflab => self.perflab(task, deadline).await,
                Subject::RoundRobin => self.round_robin(&task, deadline).await,
                Subject::StaticPreferred => self.static_preferred(&task, deadline).await,
            };
            latencies.push(submitted.elapsed().as_nanos() as u64);
            if let Some(q) = out.answered {
                answered += 1;
                if q >= MIN_QUALITY {
                    quality += q;
                }
                if out.by_preferred
                    && let Some(&back) = self.back_at.get()
                    && submitted >= back
                {
                    let ns = (Instant::now() - back).as_nanos() as u64;
                    self.recovery_ns.fetch_min(ns, Ordering::Relaxed);
                }
            }
        }
    }

    /// Takes the preferred model down at the first outage task and back at the last.
    fn outage(&self, t: usize) {
        let at = |share: f64| (self.tasks as f64 * share) as usize;
        if t == at(OUTAGE.0) {
            self.models[PREFERRED].set_down(true);
        } else if t == at(OUTAGE.1) {
            self.models[PREFERRED].set_down(false);
            // Set once, by the one worker that drew this ticket.
            let _ = self.back_at.set(Instant::now());
        }
    }

    async fn perflab(&self, task: Task, deadline: Instant) -> Outcome {
        let ctx = ModelExecutionContext::new(TaskType::Completion, task.input.len())
            .with_deadline(deadline)
            .with_min_quality(MIN_QUALITY);
        match self.orchestrator.execute_task(task, ctx).await {
            Ok(r) => Outcome {
                answered: Some(r.quality),
                by_preferred: r.model == MODELS[PREFERRED].0,
            },
            Err(_) => Outcome {
                answered: None,
                by_preferred: false,
            },
        }
    }

    async fn round_robin(&self, task: &Task, deadline: Instant) -> Outcome {
        let first = self.round_robin.fetch_add(1, Ordering::Relaxed);
        self.call_each(task, deadline, (0..2).map(|k| (first + k) % MODELS.len()))
            .await
    }

    async fn static_preferred(&self, task: &Task, deadline: Instant) -> Outcome {
        self.call_each(task, deadline, [PREFERRED; 3].into_iter())
            .await
    }

    /// Calls the models in `order` until one answers, each call cut at the deadline.
    async fn call_each(
        &self,
        task: &Task,
        deadline: Instant,
        order: impl Iterator<Item = usize>,
    ) -> Outcome {
        for m in order {
            if Instant::now() >= deadline {
                break;
            }
            let model = &self.models[m];
            match tokio::time::timeout_at(deadline, model.infer(task)).await {
                Ok(Ok(_)) => {
                    return Outcome {
                        answered: Some(model.quality_score()),
                        by_preferred: m == PREFERRED,
                    };
                }
                Ok(Err(_)) => continue,
                Err(_) => break,
            }
        }
        Outcome {
            answered: None,
            by_preferred: false,
        }
    }
}
