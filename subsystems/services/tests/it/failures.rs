//! Failed, timed-out, panicking and cancelled initialisations leave services retryable.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rust_ai_ide_services::{
    InitializationError, LazyServiceManager, ResourceLimiter, ServiceDescriptor, ServiceError,
    ServiceInitializationContext, ServiceState,
};

use crate::fixture::{IDE, Log, Node, Script, manager, register};

fn init_error(e: ServiceError) -> InitializationError {
    match e {
        ServiceError::Initialization(e) => e,
        other => panic!("not an initialisation error: {other}"),
    }
}

#[tokio::test]
async fn a_failed_service_and_its_dependents_retry() {
    let (m, log) = manager(IDE, ResourceLimiter::default(), |id| Script {
        fail: u32::from(id == "fs"),
        ..Script::default()
    });
    let e = init_error(
        m.get_service::<Node>("app")
            .await
            .expect_err("fs fails once"),
    );
    assert!(
        matches!(&e, InitializationError::DependencyFailed { service, dependency, .. }
            if service == "app" && dependency == "index"),
        "{e}"
    );
    assert!(
        matches!(e.root_cause(), InitializationError::Failed { service, .. } if service == "fs")
    );
    assert!(!m.is_initialized("app") && !m.is_initialized("fs"));
    let stats = m.initialization_stats();
    let fs = stats.service("fs").expect("fs");
    assert_eq!(
        (fs.state, fs.attempts, fs.failures),
        (ServiceState::Failed, 1, 1)
    );
    assert!(
        fs.errors[0].contains("scripted failure 0"),
        "{:?}",
        fs.errors
    );
    assert_eq!(
        stats.service("app").expect("app").state,
        ServiceState::Failed
    );
    assert!(
        stats.service("app").expect("app").errors[0].contains("dependency `index` failed"),
        "{:?}",
        stats.service("app").expect("app").errors
    );

    m.get_service::<Node>("app").await.expect("second attempt");
    let stats = m.initialization_stats();
    let fs = stats.service("fs").expect("fs");
    assert_eq!(
        (fs.state, fs.attempts, fs.failures),
        (ServiceState::Ready, 2, 1)
    );
    assert_eq!(
        log.build_counts().get("config"),
        Some(&1),
        "config was kept"
    );
}

#[tokio::test]
async fn a_timed_out_factory_is_cancelled_and_retryable() {
    let log = std::sync::Arc::new(Log::default());
    let mut m = LazyServiceManager::new();
    register(
        &mut m,
        ServiceDescriptor::new("slow").timeout(Duration::from_millis(50)),
        &log,
        Script {
            hang: 1,
            ..Script::default()
        },
    )
    .expect("registered");
    let e = init_error(m.get_service::<Node>("slow").await.expect_err("hangs"));
    assert!(
        matches!(e, InitializationError::Timeout { timeout, .. } if timeout == Duration::from_millis(50))
    );
    // The factory task was aborted, not left running.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(log.running.load(Ordering::SeqCst), 0);
    let stats = m.initialization_stats();
    let slow = stats.service("slow").expect("slow");
    assert_eq!(slow.state, ServiceState::Failed);
    assert!(slow.total_init_time >= Duration::from_millis(50));
    assert!(slow.init_time.is_none());

    m.get_service::<Node>("slow").await.expect("second attempt");
    assert_eq!(log.built(), ["slow"]);
}

#[tokio::test]
async fn a_panicking_factory_is_reported_and_retryable() {
    let log = std::sync::Arc::new(Log::default());
    let mut m = LazyServiceManager::new();
    register(
        &mut m,
        ServiceDescriptor::new("flaky"),
        &log,
        Script {
            panic: 1,
            ..Script::default()
        },
    )
    .expect("registered");
    let e = init_error(m.get_service::<Node>("flaky").await.expect_err("panics"));
    assert!(matches!(e, InitializationError::Panicked { .. }), "{e}");
    m.get_service::<Node>("flaky")
        .await
        .expect("second attempt");
}

#[tokio::test]
async fn a_cancelled_request_leaves_the_service_retryable() {
    let log = std::sync::Arc::new(Log::default());
    let mut m = LazyServiceManager::new();
    register(
        &mut m,
        ServiceDescriptor::new("slow"),
        &log,
        Script {
            hang: 1,
            ..Script::default()
        },
    )
    .expect("registered");
    let gave_up =
        tokio::time::timeout(Duration::from_millis(30), m.get_service::<Node>("slow")).await;
    assert!(gave_up.is_err(), "still hanging when the caller gave up");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(log.running.load(Ordering::SeqCst), 0, "factory aborted");
    let stats = m.initialization_stats();
    let slow = stats.service("slow").expect("slow");
    assert_eq!((slow.state, slow.failures), (ServiceState::Failed, 1));
    assert!(slow.errors[0].contains("cancelled"), "{:?}", slow.errors);
    m.get_service::<Node>("slow").await.expect("second attempt");
}

#[tokio::test]
async fn missing_dependencies_and_unknown_ids_are_errors() {
    let (m, _log) = manager(&[("a", &["ghost"])], ResourceLimiter::default(), |_| {
        Script::default()
    });
    let e = init_error(m.get_service::<Node>("a").await.expect_err("ghost"));
    assert_eq!(
        e.to_string(),
        "service `a` depends on `ghost`, which is not registered"
    );
    assert_eq!(
        m.dependency_graph().missing_dependencies(),
        [("a".into(), "ghost".into())]
    );
    assert!(matches!(
        m.initialize_service("zzz", ServiceInitializationContext::default())
            .await,
        Err(InitializationError::UnknownService(id)) if id == "zzz"
    ));
}

#[tokio::test]
async fn initialize_service_uses_the_given_context() {
    let log = std::sync::Arc::new(Log::default());
    let mut m = LazyServiceManager::new();
    register(
        &mut m,
        ServiceDescriptor::new("db").timeout(Duration::from_millis(5)),
        &log,
        Script {
            delay: Duration::from_millis(60),
            ..Script::default()
        },
    )
    .expect("registered");
    // The registered 5 ms is too short for a 60 ms factory; the explicit context is not.
    let ctx = ServiceInitializationContext::default().with_timeout(Duration::from_secs(20));
    m.initialize_service("db", ctx).await.expect("long enough");
    assert!(m.is_initialized("db"));
    // Already initialised: nothing runs again, whatever the context.
    m.initialize_service("db", ctx.with_timeout(Duration::ZERO))
        .await
        .expect("no-op");
    assert_eq!(log.built(), ["db"]);
}

#[tokio::test]
async fn preload_reports_failures_and_keeps_the_rest() {
    let (m, _log) = manager(IDE, ResourceLimiter::default(), |id| Script {
        fail: u32::from(id == "lsp"),
        ..Script::default()
    });
    let e = m
        .preload_services(&["app", "index", "fs", "lsp", "unknown"])
        .await
        .expect_err("lsp fails");
    let mut failed: Vec<String> = e
        .failures
        .iter()
        .filter_map(|f| f.service().map(ToString::to_string))
        .collect();
    failed.sort();
    assert_eq!(failed, ["app", "lsp", "unknown"]);
    assert_eq!(e.requested, 5);
    assert!(m.is_initialized("index") && m.is_initialized("fs"));
    m.preload_services(&["app"]).await.expect("lsp recovers");
    assert_eq!(
        m.initialization_stats().count(ServiceState::Ready),
        IDE.len()
    );
}

#[test]
fn requests_waiting_on_a_failing_attempt_share_its_error() {
    let rt = crate::fixture::runtime();
    let (m, log) = manager(&[("db", &[])], ResourceLimiter::default(), |_| Script {
        delay: Duration::from_millis(30),
        fail: 1,
        ..Script::default()
    });
    let m = std::sync::Arc::new(m);
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let m = std::sync::Arc::clone(&m);
                tokio::spawn(async move { m.get_service::<Node>("db").await.is_ok() })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    // One attempt ran and failed; whoever waited on it got its error instead of a retry.
    // A request that came after it (a task spawned late) may have run the second attempt.
    let attempts = m.initialization_stats().service("db").map(|s| s.attempts);
    let ok = results.iter().filter(|r| **r).count();
    assert!(matches!(attempts, Some(1 | 2)), "{attempts:?}");
    assert_eq!(ok > 0, attempts == Some(2));
    rt.block_on(m.get_service::<Node>("db"))
        .expect("a later request retries");
    assert_eq!(log.built(), ["db"]);
}
