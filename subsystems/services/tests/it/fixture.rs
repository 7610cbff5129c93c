//! Test services that record when they are built and shut down, with scripted misbehaviour.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rust_ai_ide_services::{
    BoxError, BoxFuture, LazyServiceManager, ResourceLimiter, Service, ServiceDescriptor, ServiceId,
};

/// What happened, in order.
#[derive(Debug, Default)]
pub struct Log {
    /// Ids of services whose factory succeeded, in completion order.
    pub built: Mutex<Vec<String>>,
    /// Ids of services whose shutdown hook ran, in order.
    pub shut: Mutex<Vec<String>>,
    /// Factories running right now, and the most ever at once.
    pub running: AtomicUsize,
    pub peak_running: AtomicUsize,
}

impl Log {
    pub fn built(&self) -> Vec<String> {
        self.built.lock().clone()
    }

    pub fn shut(&self) -> Vec<String> {
        self.shut.lock().clone()
    }

    /// How many times each id was built.
    pub fn build_counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for id in self.built.lock().iter() {
            *m.entry(id.clone()).or_default() += 1;
        }
        m
    }
}

/// A service built by [`register`]: its id and the ids of the dependencies it received.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub deps: Vec<String>,
    log: Arc<Log>,
}

impl Service for Node {
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.log.shut.lock().push(self.id.clone());
        })
    }
}

/// How a test service behaves, attempt by attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Script {
    /// Time the factory takes.
    pub delay: Duration,
    /// The first `fail` attempts return an error.
    pub fail: u32,
    /// The next `hang` attempts sleep for a minute (past any test timeout).
    pub hang: u32,
    /// The next `panic` attempts panic.
    pub panic: u32,
}

/// Registers a [`Node`] service that follows `script`.
pub fn register(
    m: &mut LazyServiceManager,
    descriptor: ServiceDescriptor,
    log: &Arc<Log>,
    script: Script,
) -> Result<(), rust_ai_ide_services::RegistrationError> {
    let log = Arc::clone(log);
    let attempts = Arc::new(AtomicU32::new(0));
    m.register(descriptor, move |deps| {
        let log = Arc::clone(&log);
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        async move {
            let id = deps.service().to_string();
            let dep_ids: Vec<String> = deps.ids().map(ServiceId::to_string).collect();
            // Every dependency is a built Node, reachable by its declared id.
            for d in &dep_ids {
                let node = deps.get::<Node>(d)?;
                assert_eq!(&node.id, d);
            }
            let now = log.running.fetch_add(1, Ordering::SeqCst) + 1;
            log.peak_running.fetch_max(now, Ordering::SeqCst);
            let _running = Running(Arc::clone(&log));
            if !script.delay.is_zero() {
                tokio::time::sleep(script.delay).await;
            }
            if attempt < script.fail {
                return Err(BoxError::from(format!("{id}: scripted failure {attempt}")));
            }
            if attempt < script.fail + script.hang {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            if attempt < script.fail + script.hang + script.panic {
                panic!("{id}: scripted panic");
            }
            log.built.lock().push(id.clone());
            Ok(Node {
                id,
                deps: dep_ids,
                log,
            })
        }
    })
}

/// Decrements the running count when a factory ends, however it ends.
struct Running(Arc<Log>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A manager with `graph` (`(id, deps)`, registered in this order), every service scripted by
/// `script`.
pub fn manager(
    graph: &[(&str, &[&str])],
    limiter: ResourceLimiter,
    script: impl Fn(&str) -> Script,
) -> (LazyServiceManager, Arc<Log>) {
    let log = Arc::new(Log::default());
    let mut m = LazyServiceManager::with_resource_limiter(limiter);
    for (id, deps) in graph {
        register(
            &mut m,
            ServiceDescriptor::new(*id).depends_on(deps.iter().copied()),
            &log,
            script(id),
        )
        .expect("acyclic");
    }
    (m, log)
}

/// The IDE-like graph most tests use: app -> {lsp, index}; lsp -> config;
/// index -> {config, fs}; fs -> config.
pub const IDE: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("fs", &["config"]),
    ("lsp", &["config"]),
    ("index", &["config", "fs"]),
    ("app", &["lsp", "index"]),
];

/// A multi-threaded runtime with two workers (the tests' "two threads").
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Asserts that every built service came after all of its dependencies.
pub fn assert_dependencies_first(m: &LazyServiceManager, built: &[String]) {
    let pos: HashMap<&str, usize> = built
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    for (i, id) in built.iter().enumerate() {
        for d in m.dependency_graph().dependencies(id).expect("registered") {
            let p = pos.get(d.as_str()).copied();
            assert!(
                p.is_some_and(|p| p < i),
                "{id} built before its dependency {d}"
            );
        }
    }
}
