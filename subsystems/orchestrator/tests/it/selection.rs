//! Selection by quality, predicted deadline and cost; latency tracking; P2C and least-loaded balancing.

use std::sync::Arc;
use std::time::Duration;

use rust_ai_ide_orchestrator::{
    AIModel, LoadBalancingError, ModelExecutionContext, OrchestrationError, OrchestratorConfig,
    ScriptedModel, ScriptedModelConfig, SelectionError, TaskType,
};
use tokio::time::Instant;

use crate::fixture::{ctx, orchestrator, scripted, task};

#[tokio::test(start_paused = true)]
async fn cheapest_model_that_meets_the_quality() {
    let small = scripted("small", 0.6, 1.0, 5);
    let medium = scripted("medium", 0.85, 2.0, 10);
    let large = scripted("large", 0.95, 5.0, 20);
    let o = orchestrator(OrchestratorConfig::default(), &[&large, &small, &medium]);
    let pick = |q| {
        let o = &o;
        async move { o.select_model(&ctx(q)).await.map(|m| m.name().to_owned()) }
    };
    assert_eq!(pick(0.0).await, Ok("small".to_owned()));
    assert_eq!(pick(0.8).await, Ok("medium".to_owned()));
    assert_eq!(pick(0.9).await, Ok("large".to_owned()));
    assert_eq!(
        pick(0.99).await,
        Err(SelectionError::QualityUnattainable {
            task_type: TaskType::Completion,
            required: 0.99,
            best: 0.95,
        })
    );
    let review = ModelExecutionContext::new(TaskType::Review, 1);
    assert_eq!(
        o.select_model(&review).await.map(|m| m.name().to_owned()),
        Err(SelectionError::NoCapableModel(TaskType::Review))
    );
    let r = o.execute_task(task(7), ctx(0.8)).await.expect("answered");
    assert_eq!((r.task_id, r.model.as_str(), r.attempts), (7, "medium", 1));
    assert_eq!(r.output.values, vec![2.0]);
    assert_eq!((r.quality, r.cost), (0.85, 2.0));
    assert_eq!(r.latency, Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn tracked_latency_decides_who_meets_the_deadline() {
    let medium = scripted("medium", 0.85, 2.0, 50);
    let large = scripted("large", 0.95, 5.0, 10);
    let o = orchestrator(OrchestratorConfig::default(), &[&medium, &large]);
    assert_eq!(o.predicted_latency("medium", 1), None);
    // Before any sample, a model is assumed to make any deadline: the cheap one is tried.
    let tight = ctx(0.8).with_timeout(Duration::from_millis(30));
    assert_eq!(
        o.select_model(&tight).await.expect("model").name(),
        "medium"
    );
    // Learn both latencies.
    o.execute_task(task(1), ctx(0.8))
        .await
        .expect("medium answers");
    o.execute_task(task(2), ctx(0.9))
        .await
        .expect("large answers");
    assert_eq!(
        o.predicted_latency("medium", 1),
        Some(Duration::from_millis(50))
    );
    assert_eq!(
        o.predicted_latency("large", 1),
        Some(Duration::from_millis(10))
    );
    // 50 ms predicted does not fit in 30: the dearer, faster model takes the task.
    let tight = ctx(0.8).with_timeout(Duration::from_millis(30));
    let r = o.execute_task(task(3), tight).await.expect("large answers");
    assert_eq!(r.model, "large");
    // With time to spare the cheap model is back.
    let loose = ctx(0.8).with_timeout(Duration::from_millis(100));
    assert_eq!(
        o.select_model(&loose).await.expect("model").name(),
        "medium"
    );
    // Nobody fits 5 ms: the fastest gets its chance, misses, and the miss is counted.
    let hopeless = ctx(0.8).with_timeout(Duration::from_millis(5));
    let t0 = Instant::now();
    let err = o
        .execute_task(task(4), hopeless)
        .await
        .expect_err("too tight");
    assert_eq!(
        err,
        OrchestrationError::DeadlineExceeded {
            attempts: 1,
            model: Some("large".to_owned()),
        }
    );
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(5),
        "abandoned at the deadline"
    );
    let past = ctx(0.8).with_deadline(Instant::now());
    assert!(matches!(
        o.execute_task(task(5), past).await,
        Err(OrchestrationError::DeadlineExceeded {
            attempts: 0,
            model: None
        })
    ));
    let s = o.performance_stats();
    assert_eq!(
        (s.tasks, s.succeeded, s.failed, s.deadline_misses),
        (5, 3, 2, 2)
    );
    assert_eq!(s.model("large").expect("large").deadline_misses, 1);
    assert_eq!(s.model("medium").expect("medium").deadline_misses, 0);
}

#[tokio::test(start_paused = true)]
async fn latency_is_tracked_per_input_size() {
    let mut cfg = ScriptedModelConfig::new(
        "m",
        &[TaskType::Completion],
        0.9,
        1.0,
        Duration::from_millis(2),
    );
    cfg.latency_per_unit = Duration::from_millis(1);
    let m = Arc::new(ScriptedModel::new(cfg));
    let o = orchestrator(OrchestratorConfig::default(), &[&m]);
    for (id, size) in [(1, 4usize), (2, 64)] {
        let c = ModelExecutionContext::new(TaskType::Completion, size);
        o.execute_task(rust_ai_ide_orchestrator::Task::new(id, vec![0.5; size]), c)
            .await
            .expect("answers");
    }
    assert_eq!(o.predicted_latency("m", 4), Some(Duration::from_millis(6)));
    assert_eq!(
        o.predicted_latency("m", 64),
        Some(Duration::from_millis(66))
    );
    // Size 16 has no sample: borrowed from the nearest class (4..=7), scaled by 4.
    assert_eq!(
        o.predicted_latency("m", 16),
        Some(Duration::from_millis(24))
    );
}

#[tokio::test(start_paused = true)]
async fn congestion_spills_over_to_the_next_model() {
    let mut cfg = ScriptedModelConfig::new(
        "cheap",
        &[TaskType::Completion],
        0.85,
        1.0,
        Duration::from_millis(10),
    );
    cfg.capacity = 2;
    let cheap = Arc::new(ScriptedModel::new(cfg));
    let dear = scripted("dear", 0.9, 3.0, 15);
    let o = Arc::new(orchestrator(
        OrchestratorConfig::default(),
        &[&cheap, &dear],
    ));
    // Warm the latency model of both.
    o.execute_task(task(0), ctx(0.8)).await.expect("cheap");
    o.execute_task(task(0), ctx(0.88)).await.expect("dear");
    // 40 tasks in waves of 8 with a 40 ms deadline: two slots of 10 ms each cannot take
    // them all, queueing shows up in the cheap model's latency and the rest spills over.
    let mut results = Vec::new();
    for wave in 0..5u64 {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let o = Arc::clone(&o);
                tokio::spawn(async move {
                    let c = ctx(0.8).with_timeout(Duration::from_millis(40));
                    o.execute_task(task(wave * 8 + i), c).await
                })
            })
            .collect();
        for h in handles {
            results.push(h.await.expect("task"));
        }
    }
    let s = o.performance_stats();
    let served = |name: &str| results.iter().flatten().filter(|r| r.model == name).count();
    assert!(served("cheap") >= 10, "cheap served {}", served("cheap"));
    assert!(served("dear") >= 10, "dear served {}", served("dear"));
    assert!(
        results.iter().filter(|r| r.is_ok()).count() >= 36,
        "most tasks meet the deadline: {s:?}"
    );
    let cheap_stats = s.model("cheap").expect("cheap");
    assert!(
        cheap_stats.latency_p99 > Duration::from_millis(10),
        "{cheap_stats:?}"
    );
    assert_eq!(s.model_calls(), s.tasks, "nothing failed, nothing retried");
}

#[tokio::test(start_paused = true)]
async fn equally_cheap_models_share_the_load() {
    let replicas: Vec<_> = (0..4)
        .map(|i| scripted(&format!("r{i}"), 0.9, 1.0, 10))
        .collect();
    let refs: Vec<&Arc<ScriptedModel>> = replicas.iter().collect();
    let o = Arc::new(orchestrator(OrchestratorConfig::default(), &refs));
    let handles: Vec<_> = (0..400)
        .map(|i| {
            let o = Arc::clone(&o);
            tokio::spawn(async move { o.execute_task(task(i), ctx(0.5)).await })
        })
        .collect();
    for h in handles {
        h.await.expect("task").expect("answered");
    }
    // P2C over in-flight counts: every replica gets a fair share of the 400.
    for r in &replicas {
        let calls = r.calls();
        assert!((70..=130).contains(&calls), "{}: {calls}", r.name());
    }
}

#[tokio::test(start_paused = true)]
async fn load_balance_prefers_the_least_loaded() {
    let a = scripted("a", 0.9, 1.0, 100);
    let b = scripted("b", 0.9, 1.0, 100);
    let stranger = scripted("stranger", 0.9, 1.0, 100);
    let o = Arc::new(orchestrator(OrchestratorConfig::default(), &[&a, &b]));
    let both: Vec<Arc<dyn AIModel>> = vec![a.clone(), b.clone()];
    // Two calls in flight on `a` (the first choice of both, equally loaded at first).
    let busy: Vec<_> = (0..3)
        .map(|i| {
            let o = Arc::clone(&o);
            tokio::spawn(async move { o.execute_task(task(i), ctx(0.5)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    let s = o.performance_stats();
    let (in_a, in_b) = (
        s.model("a").expect("a").in_flight,
        s.model("b").expect("b").in_flight,
    );
    assert_eq!(in_a + in_b, 3);
    let expected = if in_a < in_b { "a" } else { "b" };
    for _ in 0..20 {
        let m = o.load_balance(&both, 1.0).await.expect("a model");
        assert_eq!(m.name(), expected);
    }
    for h in busy {
        h.await.expect("task").expect("answered");
    }
    assert_eq!(
        o.load_balance(&[], 1.0).await.err(),
        Some(LoadBalancingError::NoModels)
    );
    let with_stranger: Vec<Arc<dyn AIModel>> = vec![a.clone(), stranger];
    assert_eq!(
        o.load_balance(&with_stranger, 1.0).await.err(),
        Some(LoadBalancingError::UnknownModel("stranger".to_owned()))
    );
}
