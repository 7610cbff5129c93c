//! Shutdown: reverse dependency order, waits for initialisations in flight, refuses requests.

use std::sync::Arc;
use std::time::Duration;

use rust_ai_ide_services::{InitializationError, ResourceLimiter, ServiceError, ServiceState};

use crate::fixture::{IDE, Node, Script, manager};

#[tokio::test]
async fn services_shut_down_after_their_dependents() {
    let (m, log) = manager(IDE, ResourceLimiter::default(), |_| Script::default());
    m.get_service::<Node>("app").await.expect("app");
    let order = m.shutdown().await;
    assert_eq!(order, ["app", "index", "lsp", "fs", "config"]);
    assert_eq!(log.shut(), ["app", "index", "lsp", "fs", "config"]);
    assert!(m.is_shut_down() && !m.is_initialized("app"));
    assert!(matches!(
        m.get_service::<Node>("config").await,
        Err(ServiceError::Initialization(InitializationError::ShutDown))
    ));
    assert!(m.preload_services(&["fs"]).await.is_err());
    assert!(m.shutdown().await.is_empty(), "only once");
    assert_eq!(
        m.initialization_stats().count(ServiceState::ShutDown),
        IDE.len()
    );
}

#[tokio::test]
async fn only_initialised_services_are_shut_down() {
    let (m, log) = manager(IDE, ResourceLimiter::default(), |_| Script::default());
    m.get_service::<Node>("lsp").await.expect("lsp");
    assert_eq!(m.shutdown().await, ["lsp", "config"]);
    assert_eq!(log.shut(), ["lsp", "config"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_an_initialisation_in_flight() {
    let (m, log) = manager(IDE, ResourceLimiter::default(), |id| Script {
        delay: if id == "index" {
            Duration::from_millis(80)
        } else {
            Duration::ZERO
        },
        ..Script::default()
    });
    let m = Arc::new(m);
    let request = {
        let m = Arc::clone(&m);
        tokio::spawn(async move { m.get_service::<Node>("index").await.map(|_| ()) })
    };
    while m.initialization_stats().service("index").map(|s| s.state)
        != Some(ServiceState::Initializing)
    {
        tokio::task::yield_now().await;
    }
    let order = m.shutdown().await;
    // The request that was already running finished, and what it built was shut down.
    request.await.expect("task").expect("index");
    assert_eq!(order, ["index", "fs", "config"]);
    assert_eq!(log.shut(), ["index", "fs", "config"]);
}
