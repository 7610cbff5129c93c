//! Failover with injected failures: bounded retries within the budget, circuits that open,
//! probe and close, non-retryable errors, deadline misses and the public `handle_failover`.

use std::sync::Arc;
use std::time::Duration;

use rust_ai_ide_orchestrator::{
    AIModel, CircuitState, FailoverError, InferFuture, ModelError, OrchestrationError,
    OrchestratorConfig, ScriptedModel, ScriptedModelConfig, Task, TaskOutput, TaskType,
};

use crate::fixture::{ctx, orchestrator, scripted, task};

fn failing(name: &str, quality: f64, cost: f64) -> Arc<ScriptedModel> {
    let mut cfg = ScriptedModelConfig::new(
        name,
        &[TaskType::Completion],
        quality,
        cost,
        Duration::from_millis(5),
    );
    cfg.failure_rate = 1.0;
    Arc::new(ScriptedModel::new(cfg))
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_is_retried_on_another_model() {
    let medium = scripted("medium", 0.85, 2.0, 10);
    let large = scripted("large", 0.95, 5.0, 20);
    let o = orchestrator(OrchestratorConfig::default(), &[&medium, &large]);
    medium.fail_next(1);
    let r = o
        .execute_task(task(1), ctx(0.8))
        .await
        .expect("large answers");
    assert_eq!((r.model.as_str(), r.attempts, r.cost), ("large", 2, 7.0));
    assert_eq!(r.latency, Duration::from_millis(30), "both service times");
    let s = o.performance_stats();
    assert_eq!((s.retries, s.retries_denied), (1, 0));
    let (m, l) = (s.model("medium").expect("m"), s.model("large").expect("l"));
    assert_eq!((m.calls, m.errors, m.fallbacks), (1, 1, 0));
    assert_eq!((l.calls, l.errors, l.fallbacks), (1, 0, 1));
    assert_eq!(s.retry_amplification(), 2.0);
}

#[tokio::test(start_paused = true)]
async fn retries_stay_within_the_budget() {
    // Circuits never open here, so every task tries the failing cheap model first.
    let config = OrchestratorConfig {
        retry_ratio: 0.1,
        min_retries_per_sec: 0.0,
        consecutive_failures: u32::MAX,
        failure_ratio: 2.0,
        ..OrchestratorConfig::default()
    };
    let cheap = failing("cheap", 0.9, 1.0);
    let backup = failing("backup", 0.9, 2.0);
    let o = orchestrator(config, &[&cheap, &backup]);
    let mut denied = 0;
    for i in 0..200 {
        match o.execute_task(task(i), ctx(0.5)).await {
            Err(OrchestrationError::Failover {
                reason: FailoverError::RetryBudgetExhausted,
                attempts: 1,
                ..
            }) => denied += 1,
            Err(OrchestrationError::Failover {
                reason: FailoverError::NoAlternative(_),
                attempts: 2,
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let s = o.performance_stats();
    // 200 tasks x 0.1 tokens: at most 20 retries, whatever fails.
    assert!(s.retries <= 20 && s.retries >= 19, "{s:?}");
    assert_eq!(s.retries_denied, denied);
    assert_eq!(s.retries + s.retries_denied, 200);
    assert!(
        s.retry_amplification() <= 1.1,
        "{}",
        s.retry_amplification()
    );
    assert_eq!((s.failed, s.succeeded), (200, 0));
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded() {
    let config = OrchestratorConfig {
        max_attempts: 3,
        ..OrchestratorConfig::default()
    };
    let models: Vec<_> = (0..5)
        .map(|i| failing(&format!("m{i}"), 0.9, f64::from(i)))
        .collect();
    let refs: Vec<_> = models.iter().collect();
    let o = orchestrator(config, &refs);
    let err = o
        .execute_task(task(1), ctx(0.5))
        .await
        .expect_err("all fail");
    assert!(
        matches!(&err, OrchestrationError::RetriesExhausted { attempts: 3, model, .. } if model == "m2"),
        "{err:?}"
    );
    assert_eq!(o.performance_stats().model_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn circuit_opens_probes_and_closes_after_the_cool_down() {
    let config = OrchestratorConfig {
        consecutive_failures: 3,
        cool_down: Duration::from_millis(500),
        max_cool_down: Duration::from_secs(4),
        min_retries_per_sec: 100.0,
        ..OrchestratorConfig::default()
    };
    let preferred = scripted("preferred", 0.85, 1.0, 10);
    let backup = scripted("backup", 0.9, 3.0, 10);
    let o = orchestrator(config, &[&preferred, &backup]);
    preferred.set_down(true);
    for i in 0..10 {
        let r = o
            .execute_task(task(i), ctx(0.8))
            .await
            .expect("backup answers");
        assert_eq!(r.model, "backup");
    }
    // Three failures opened the circuit; the other tasks went straight to the backup.
    assert_eq!(preferred.calls(), 3);
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::Open));
    let after_cool_down = Duration::from_millis(500);
    tokio::time::advance(after_cool_down).await;
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::HalfOpen));
    // A failed probe: the task still succeeds on the backup, the circuit re-opens for
    // twice as long.
    let r = o
        .execute_task(task(20), ctx(0.8))
        .await
        .expect("backup answers");
    assert_eq!((r.model.as_str(), r.attempts), ("backup", 2));
    assert_eq!(preferred.calls(), 4);
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::Open));
    tokio::time::advance(after_cool_down).await;
    assert_eq!(
        o.circuit_state("preferred"),
        Some(CircuitState::Open),
        "cool-down doubled"
    );
    tokio::time::advance(after_cool_down).await;
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::HalfOpen));
    // The model is back: the probe succeeds, the circuit closes, it serves again.
    preferred.set_down(false);
    let r = o
        .execute_task(task(21), ctx(0.8))
        .await
        .expect("preferred answers");
    assert_eq!((r.model.as_str(), r.attempts), ("preferred", 1));
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::Closed));
    let r = o
        .execute_task(task(22), ctx(0.8))
        .await
        .expect("preferred answers");
    assert_eq!(r.model, "preferred");
    let s = o.performance_stats();
    assert_eq!(s.model("preferred").expect("p").circuit_opens, 2);
    assert_eq!(s.model("backup").expect("b").fallbacks, 4);
}

#[tokio::test(start_paused = true)]
async fn only_one_probe_at_a_time_and_a_dropped_probe_reopens() {
    let config = OrchestratorConfig {
        consecutive_failures: 1,
        cool_down: Duration::from_millis(100),
        ..OrchestratorConfig::default()
    };
    let preferred = scripted("preferred", 0.85, 1.0, 50);
    let backup = scripted("backup", 0.9, 3.0, 10);
    let o = Arc::new(orchestrator(config, &[&preferred, &backup]));
    preferred.fail_next(1);
    o.execute_task(task(1), ctx(0.8))
        .await
        .expect("backup answers");
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::Open));
    tokio::time::advance(Duration::from_millis(100)).await;
    // The probe runs for 50 ms; meanwhile other tasks go to the backup.
    let probe = {
        let o = Arc::clone(&o);
        tokio::spawn(async move { o.execute_task(task(2), ctx(0.8)).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(preferred.calls(), 2, "the probe is running");
    let r = o
        .execute_task(task(3), ctx(0.8))
        .await
        .expect("backup answers");
    assert_eq!(r.model, "backup");
    // The caller gives up on the probe: the circuit must not stay half-open forever.
    probe.abort();
    assert!(probe.await.expect_err("aborted").is_cancelled());
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::Open));
    tokio::time::advance(Duration::from_millis(100)).await;
    let r = o
        .execute_task(task(4), ctx(0.8))
        .await
        .expect("preferred answers");
    assert_eq!(r.model, "preferred");
    assert_eq!(o.circuit_state("preferred"), Some(CircuitState::Closed));
}

/// A model that rejects empty inputs: its errors are the caller's, not worth a retry.
#[derive(Debug)]
struct Strict;

impl AIModel for Strict {
    fn name(&self) -> &str {
        "strict"
    }

    fn capabilities(&self) -> &[TaskType] {
        &[TaskType::Completion]
    }

    fn quality_score(&self) -> f64 {
        0.9
    }

    fn cost(&self) -> f64 {
        1.0
    }

    fn infer<'a>(&'a self, task: &'a Task) -> InferFuture<'a> {
        Box::pin(async move {
            if task.input.is_empty() {
                return Err(ModelError::InvalidInput {
                    model: "strict".to_owned(),
                    reason: "empty input".to_owned(),
                });
            }
            Ok(TaskOutput {
                values: task.input.clone(),
            })
        })
    }
}

#[tokio::test(start_paused = true)]
async fn rejected_inputs_are_not_retried() {
    let backup = scripted("backup", 0.9, 3.0, 10);
    let mut o = orchestrator(OrchestratorConfig::default(), &[&backup]);
    o.register(Arc::new(Strict)).expect("registered");
    let err = o
        .execute_task(Task::new(1, Vec::new()), ctx(0.5))
        .await
        .expect_err("rejected");
    assert!(
        matches!(
            &err,
            OrchestrationError::Failover {
                attempts: 1,
                reason: FailoverError::NotRetryable(ModelError::InvalidInput { .. }),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(backup.calls(), 0);
    assert_eq!(o.circuit_state("strict"), Some(CircuitState::Closed));
    assert!(o.register(Arc::new(Strict)).is_err(), "duplicate name");
}

#[tokio::test(start_paused = true)]
async fn handle_failover_offers_a_replacement_within_the_budget() {
    let config = OrchestratorConfig {
        min_retries_per_sec: 2.0,
        retry_ratio: 0.0,
        consecutive_failures: 100,
        ..OrchestratorConfig::default()
    };
    let small = scripted("small", 0.6, 1.0, 5);
    let medium = scripted("medium", 0.85, 2.0, 10);
    let large = scripted("large", 0.95, 5.0, 20);
    let huge = scripted("huge", 0.99, 9.0, 40);
    let o = orchestrator(config, &[&small, &medium, &large, &huge]);
    let medium_dyn: Arc<dyn AIModel> = medium.clone();
    let huge_dyn: Arc<dyn AIModel> = huge.clone();
    let down = ModelError::Unavailable {
        model: "medium".to_owned(),
    };
    // At least the failed model's quality, cheapest first.
    let r = o
        .handle_failover(&medium_dyn, &down)
        .await
        .expect("replacement");
    assert_eq!(r.name(), "large");
    // Nothing matches the best model's quality: the best that is left.
    let r = o
        .handle_failover(&huge_dyn, &down)
        .await
        .expect("replacement");
    assert_eq!(r.name(), "large");
    // Two tokens per second: the third retry in the same instant is refused.
    assert_eq!(
        o.handle_failover(&medium_dyn, &down).await.err(),
        Some(FailoverError::RetryBudgetExhausted)
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(o.handle_failover(&medium_dyn, &down).await.is_ok());
    let bad_input = ModelError::InvalidInput {
        model: "medium".to_owned(),
        reason: "too long".to_owned(),
    };
    assert!(matches!(
        o.handle_failover(&medium_dyn, &bad_input).await,
        Err(FailoverError::NotRetryable(_))
    ));
    let stranger: Arc<dyn AIModel> = scripted("stranger", 0.9, 1.0, 1);
    assert_eq!(
        o.handle_failover(&stranger, &down).await.err(),
        Some(FailoverError::UnknownModel("stranger".to_owned()))
    );
    let s = o.performance_stats();
    assert_eq!(s.model("medium").expect("m").errors, 4);
    assert_eq!((s.retries, s.retries_denied), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn stats_report_latency_quantiles() {
    let mut cfg = ScriptedModelConfig::new(
        "m",
        &[TaskType::Completion],
        0.9,
        1.0,
        Duration::from_millis(10),
    );
    cfg.jitter = 0.5;
    cfg.seed = 3;
    let m = Arc::new(ScriptedModel::new(cfg));
    let o = orchestrator(OrchestratorConfig::default(), &[&m]);
    let mut seen = Vec::new();
    for i in 0..500 {
        seen.push(
            o.execute_task(task(i), ctx(0.5))
                .await
                .expect("answers")
                .latency,
        );
    }
    seen.sort();
    let s = o.performance_stats();
    let st = s.model("m").expect("m");
    assert_eq!((st.calls, st.successes, st.errors), (500, 500, 0));
    let close =
        |a: Duration, b: Duration| (a.as_secs_f64() / b.as_secs_f64() - 1.0).abs() <= 1.0 / 32.0;
    assert!(
        close(st.latency_p50, seen[249]),
        "{:?} vs {:?}",
        st.latency_p50,
        seen[249]
    );
    assert!(
        close(st.latency_p99, seen[494]),
        "{:?} vs {:?}",
        st.latency_p99,
        seen[494]
    );
    assert!(st.latency_p99 > st.latency_p50);
    assert_eq!(st.circuit, CircuitState::Closed);
    assert!(st.predicted_latency.is_some());
}
