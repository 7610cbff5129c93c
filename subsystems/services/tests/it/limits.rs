//! The resource limiter inside the manager: memory held for a service's life, slots bounding
//! concurrent factories, clear errors for budgets that cannot be met.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rust_ai_ide_services::{
    InitializationError, InitializationPriority, LazyServiceManager, ResourceBudget,
    ResourceCapacity, ResourceError, ResourceLimiter, ServiceDescriptor,
    ServiceInitializationContext, ServiceState,
};

use crate::fixture::{Log, Node, Script, manager, register, runtime};

#[tokio::test]
async fn memory_is_held_until_shutdown_and_over_budget_is_refused() {
    let log = Arc::new(Log::default());
    let limiter = ResourceLimiter::new(ResourceCapacity::new(100, 4));
    let mut m = LazyServiceManager::with_resource_limiter(limiter.clone());
    for id in ["index", "embeddings"] {
        register(
            &mut m,
            ServiceDescriptor::new(id).resources(ResourceBudget::new(60, 1)),
            &log,
            Script::default(),
        )
        .expect("registered");
    }
    m.get_service::<Node>("index").await.expect("fits");
    assert_eq!(limiter.usage().memory_reserved, 60);
    let e = m.initialize_service(
        "embeddings",
        ServiceInitializationContext::default().with_resources(ResourceBudget::new(60, 1)),
    );
    match e.await.expect_err("over budget") {
        InitializationError::Resources { service, source } => {
            assert_eq!(service, "embeddings");
            assert_eq!(
                source,
                ResourceError::MemoryExhausted {
                    requested: 60,
                    available: 40,
                    capacity: 100
                }
            );
        }
        other => panic!("unexpected {other}"),
    }
    // A budget larger than the whole capacity can never be met.
    let e = m
        .initialize_service(
            "embeddings",
            ServiceInitializationContext::default().with_resources(ResourceBudget::new(101, 1)),
        )
        .await
        .expect_err("never fits");
    assert!(matches!(
        e,
        InitializationError::Resources {
            source: ResourceError::ExceedsCapacity { .. },
            ..
        }
    ));
    assert_eq!(
        m.initialization_stats()
            .service("embeddings")
            .map(|s| (s.state, s.failures)),
        Some((ServiceState::Failed, 2))
    );
    assert_eq!(m.shutdown().await, ["index"]);
    assert_eq!(limiter.usage().memory_reserved, 0);
    assert_eq!(limiter.usage().rejected, 2);
}

#[test]
fn slots_bound_how_many_factories_run_at_once() {
    let rt = runtime();
    let graph: Vec<(String, Vec<&str>)> = (0..24).map(|i| (format!("s{i}"), Vec::new())).collect();
    let graph: Vec<(&str, &[&str])> = graph
        .iter()
        .map(|(id, d)| (id.as_str(), d.as_slice()))
        .collect();
    let limiter = ResourceLimiter::new(ResourceCapacity::new(u64::MAX, 3));
    let (m, log) = manager(&graph, limiter.clone(), |_| Script {
        delay: Duration::from_millis(5),
        ..Script::default()
    });
    let ids: Vec<&str> = graph.iter().map(|(id, _)| *id).collect();
    rt.block_on(m.preload_services(&ids)).expect("all fit");
    assert_eq!(log.built().len(), 24);
    let peak = log.peak_running.load(Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "peak {peak}");
    let usage = limiter.usage();
    assert!(usage.peak_init_slots <= 3);
    assert!(usage.queued > 0, "{usage:?}");
    assert_eq!((usage.init_slots_in_use, usage.waiting), (0, 0));
    let waited = m
        .initialization_stats()
        .services
        .values()
        .filter(|s| !s.queue_wait.is_zero())
        .count();
    assert!(waited > 0);
}

#[tokio::test]
async fn a_contended_preload_admits_higher_priorities_first() {
    let log = Arc::new(Log::default());
    let limiter = ResourceLimiter::new(ResourceCapacity::new(u64::MAX, 1));
    let mut m = LazyServiceManager::with_resource_limiter(limiter);
    for (id, p) in [
        ("telemetry", InitializationPriority::Background),
        ("index", InitializationPriority::Normal),
        ("editor", InitializationPriority::Critical),
        ("lsp", InitializationPriority::High),
    ] {
        register(
            &mut m,
            ServiceDescriptor::new(id).priority(p),
            &log,
            Script {
                delay: Duration::from_millis(2),
                ..Script::default()
            },
        )
        .expect("registered");
    }
    m.preload_services(&["telemetry", "index", "editor", "lsp"])
        .await
        .expect("all");
    assert_eq!(log.built(), ["editor", "lsp", "index", "telemetry"]);
}
