//! Lazy initialisation: only what a request needs, dependencies first, exactly once.

use std::sync::Arc;
use std::time::Duration;

use rust_ai_ide_services::{
    InitializationError, LazyServiceManager, RegistrationError, ResourceLimiter, Service,
    ServiceDescriptor, ServiceError, ServiceState,
};

use crate::fixture::{IDE, Node, Script, assert_dependencies_first, manager, runtime};

#[tokio::test]
async fn a_request_builds_its_closure_and_nothing_else() {
    let (m, log) = manager(IDE, ResourceLimiter::default(), |_| Script::default());
    assert!(log.built().is_empty(), "registration builds nothing");
    let index = m.get_service::<Node>("index").await.expect("index");
    assert_eq!(index.deps, ["config", "fs"]);
    assert_eq!(log.built(), ["config", "fs", "index"]);
    assert!(!m.is_initialized("app") && !m.is_initialized("lsp"));
    assert!(m.is_initialized("fs"));

    let again = m.get_service::<Node>("index").await.expect("index");
    assert!(Arc::ptr_eq(&index, &again), "the same instance");
    m.get_service::<Node>("app").await.expect("app");
    assert_eq!(log.built(), ["config", "fs", "index", "lsp", "app"]);
    assert_dependencies_first(&m, &log.built());

    let stats = m.initialization_stats();
    assert_eq!(stats.count(ServiceState::Ready), 5);
    assert_eq!(stats.total_attempts(), 5);
    let app = stats.service("app").expect("app");
    assert!(app.init_time.is_some());
    assert_eq!(app.ready_seq, Some(4));
    assert_eq!(stats.resources.init_slots_in_use, 0);
}

#[test]
fn concurrent_first_requests_share_one_initialisation() {
    let rt = runtime();
    let (m, log) = manager(IDE, ResourceLimiter::default(), |_| Script {
        delay: Duration::from_millis(20),
        ..Script::default()
    });
    let m = Arc::new(m);
    let built = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..32 {
            let m = Arc::clone(&m);
            let id = ["app", "index", "lsp", "fs"][i % 4];
            tasks.push(tokio::spawn(async move {
                m.get_service::<Node>(id).await.map(|n| n.id.clone())
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.expect("task").expect("service"));
        }
        ids
    });
    assert_eq!(built.len(), 32);
    let counts = log.build_counts();
    assert_eq!(counts.len(), 5);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_dependencies_first(&m, &log.built());
    // lsp and index (and their own siblings) ran side by side.
    assert!(log.peak_running.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn services_are_typed() {
    #[derive(Debug)]
    struct Config {
        port: u16,
    }
    impl Service for Config {}
    #[derive(Debug)]
    struct Server {
        port: u16,
    }
    impl Service for Server {}

    let mut m = LazyServiceManager::new();
    m.register(ServiceDescriptor::new("config"), |_| async {
        Ok(Config { port: 8080 })
    })
    .expect("registered");
    m.register(
        ServiceDescriptor::new("server").depends_on(["config"]),
        |deps| async move {
            let config = deps.get::<Config>("config")?;
            Ok(Server { port: config.port })
        },
    )
    .expect("registered");
    assert_eq!(
        m.get_service::<Server>("server")
            .await
            .expect("server")
            .port,
        8080
    );
    let e = m
        .get_service::<Server>("config")
        .await
        .expect_err("a Config");
    assert!(matches!(e, ServiceError::TypeMismatch { .. }), "{e}");
    let dynamic = m.get_service_dyn("config").await.expect("config");
    dynamic.shutdown().await;
    assert!(matches!(
        m.get_service::<Config>("nope").await,
        Err(ServiceError::Initialization(
            InitializationError::UnknownService(_)
        ))
    ));
}

#[tokio::test]
async fn a_factory_sees_only_declared_dependencies() {
    let mut m = LazyServiceManager::new();
    m.register(ServiceDescriptor::new("a"), |_| async { Ok(Marker) })
        .expect("registered");
    m.register(ServiceDescriptor::new("b"), |deps| async move {
        deps.get::<Marker>("a")?;
        Ok(Marker)
    })
    .expect("registered");
    m.get_service::<Marker>("a").await.expect("a");
    let e = m.get_service::<Marker>("b").await.expect_err("undeclared");
    let chain = std::error::Error::source(&e).map(ToString::to_string);
    assert_eq!(
        chain.as_deref(),
        Some("`a` is not a declared dependency of `b`")
    );
}

#[derive(Debug)]
struct Marker;
impl Service for Marker {}

#[test]
fn registration_refuses_cycles_and_names_them() {
    let (mut m, log) = manager(IDE, ResourceLimiter::default(), |_| Script::default());
    let e = crate::fixture::register(
        &mut m,
        ServiceDescriptor::new("plugins").depends_on(["app", "plugins_host"]),
        &log,
        Script::default(),
    );
    assert!(e.is_ok(), "a forward reference is fine");
    let e = crate::fixture::register(
        &mut m,
        ServiceDescriptor::new("plugins_host").depends_on(["config", "plugins"]),
        &log,
        Script::default(),
    )
    .expect_err("cycle");
    assert_eq!(
        e.to_string(),
        "registering `plugins_host` would create the dependency cycle \
         `plugins_host` -> `plugins` -> `plugins_host`"
    );
    assert!(matches!(e, RegistrationError::Cycle { .. }));
    assert!(!m.dependency_graph().contains("plugins_host"));
    assert!(matches!(
        crate::fixture::register(
            &mut m,
            ServiceDescriptor::new("fs"),
            &log,
            Script::default()
        ),
        Err(RegistrationError::Duplicate(_))
    ));
}
