//! `LazyServiceManager`: registration, exactly-once lazy initialisation in dependency order,
//! preloading, statistics and ordered shutdown.

use std::any::type_name;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use parking_lot::Mutex;
use tokio::sync::{OnceCell, RwLock};
use tokio::task::JoinHandle;

use crate::context::{ServiceDescriptor, ServiceInitializationContext};
use crate::error::{BoxError, InitializationError, PreloadError, RegistrationError, ServiceError};
use crate::graph::DependencyGraph;
use crate::id::{IdMap, ServiceId};
use crate::limiter::{MemoryReservation, ResourceLimiter};
use crate::service::{BoxFuture, Factory, Resolved, Service, ServiceDeps, downcast, erase};
use crate::stats::{InitializationStats, ServiceState, ServiceStats};

/// Holds services by id and initialises each one on first request, after its dependencies,
/// exactly once however many tasks ask at the same time.
///
/// Register with `&mut self`, then share the manager (usually in an `Arc`) and request
/// services with `&self`. A failed, timed-out or cancelled initialisation leaves the service
/// uninitialised: the next request tries again. Must be used inside a tokio runtime (factories
/// run as tasks, timeouts use tokio's timer).
pub struct LazyServiceManager {
    services: IdMap<Slot>,
    dependency_graph: DependencyGraph,
    resource_limiter: ResourceLimiter,
    /// Initialisation attempts hold it shared; `shutdown` takes it exclusively, so it waits
    /// for attempts in flight and no attempt starts after it.
    lifecycle: RwLock<()>,
    shut_down: AtomicBool,
    ready_seq: AtomicU64,
}

impl LazyServiceManager {
    /// An empty manager with the default [`ResourceLimiter`].
    pub fn new() -> Self {
        Self::with_resource_limiter(ResourceLimiter::default())
    }

    /// An empty manager whose initialisations are admitted by `limiter`.
    pub fn with_resource_limiter(limiter: ResourceLimiter) -> Self {
        Self {
            services: IdMap::default(),
            dependency_graph: DependencyGraph::new(),
            resource_limiter: limiter,
            lifecycle: RwLock::new(()),
            shut_down: AtomicBool::new(false),
            ready_seq: AtomicU64::new(0),
        }
    }

    /// Registers a service: its descriptor (id, dependencies, on-demand context) and the async
    /// factory that builds it from its initialised dependencies. Dependencies may be registered
    /// later; a registration that would close a dependency cycle is refused, naming the cycle.
    pub fn register<T, F, Fut>(
        &mut self,
        descriptor: ServiceDescriptor,
        factory: F,
    ) -> Result<(), RegistrationError>
    where
        T: Service,
        F: Fn(ServiceDeps) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
    {
        let (id, dependencies, context) = descriptor.into_parts();
        self.dependency_graph.add(id.clone(), dependencies)?;
        self.services.insert(
            id.clone(),
            Slot {
                id,
                type_name: type_name::<T>(),
                context,
                factory: erase(factory),
                cell: OnceCell::new(),
                failures: AtomicU64::new(0),
                last_failure: Mutex::new(None),
                reservation: Mutex::new(None),
                stats: Mutex::new(ServiceStats::default()),
            },
        );
        Ok(())
    }

    /// The service `id` as its concrete type, initialising it (and its dependencies) first if
    /// needed, with its registered context.
    pub async fn get_service<T: Service>(&self, id: &str) -> Result<Arc<T>, ServiceError> {
        let slot = self.slot(id)?;
        let instance = match slot.cell.get() {
            Some(s) if !self.shut_down.load(Ordering::Acquire) => s,
            _ => self.initialize(slot, None).await?,
        };
        downcast(&slot.id, instance, slot.type_name)
    }

    /// The service `id` as a trait object (see [`LazyServiceManager::get_service`]).
    pub async fn get_service_dyn(&self, id: &str) -> Result<Arc<dyn Service>, ServiceError> {
        let slot = self.slot(id)?;
        match slot.cell.get() {
            Some(s) if !self.shut_down.load(Ordering::Acquire) => Ok(Arc::clone(s)),
            _ => Ok(Arc::clone(self.initialize(slot, None).await?)),
        }
    }

    /// Initialises `id` now with `context` instead of its registered one (its dependencies use
    /// theirs). Does nothing if it is already initialised.
    pub async fn initialize_service(
        &self,
        id: &str,
        context: ServiceInitializationContext,
    ) -> Result<(), InitializationError> {
        let slot = self.slot(id)?;
        self.initialize(slot, Some(context)).await.map(|_| ())
    }

    /// Initialises `ids` (and their dependencies) concurrently: services that do not depend on
    /// each other initialise at the same time, a shared dependency once, higher priorities
    /// first when the limiter is contended. A failure does not stop the others; every requested
    /// service that is not ready afterwards is listed in the error.
    pub async fn preload_services<S: AsRef<str>>(&self, ids: &[S]) -> Result<(), PreloadError> {
        let mut failures = Vec::new();
        let mut slots = Vec::with_capacity(ids.len());
        for id in ids {
            match self.slot(id.as_ref()) {
                Ok(slot) => slots.push(slot),
                Err(e) => failures.push(e),
            }
        }
        // Stable: equal priorities keep the caller's order.
        slots.sort_by_key(|s| std::cmp::Reverse(s.context.priority));
        let results = match self.enter().await {
            Ok(_gate) => join_all(slots.iter().map(|slot| self.ensure(slot, None))).await,
            Err(e) => {
                failures.push(e);
                Vec::new()
            }
        };
        failures.extend(results.into_iter().filter_map(Result::err));
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PreloadError {
                requested: ids.len(),
                failures,
            })
        }
    }

    /// The services and their dependencies.
    pub fn dependency_graph(&self) -> &DependencyGraph {
        &self.dependency_graph
    }

    /// The limiter that admits initialisations.
    pub fn resource_limiter(&self) -> &ResourceLimiter {
        &self.resource_limiter
    }

    /// Whether `id` is initialised (and the manager not shut down).
    pub fn is_initialized(&self, id: &str) -> bool {
        !self.shut_down.load(Ordering::Acquire)
            && self.services.get(id).is_some_and(|s| s.cell.initialized())
    }

    /// Per service: state, attempts, failures, times and recent errors; plus the limiter's
    /// usage.
    pub fn initialization_stats(&self) -> InitializationStats {
        InitializationStats {
            services: self
                .services
                .iter()
                .map(|(id, slot)| (id.clone(), slot.stats.lock().clone()))
                .collect(),
            resources: self.resource_limiter.usage(),
        }
    }

    /// Whether `shutdown` has been called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Refuses new requests, waits for initialisations in flight, then shuts the initialised
    /// services down one at a time in reverse dependency order (a service after everything that
    /// depends on it) and gives their memory back to the limiter. Returns the ids in the order
    /// they were shut down; a second call returns nothing.
    pub async fn shutdown(&self) -> Vec<ServiceId> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        let _exclusive = self.lifecycle.write().await;
        let mut order = self.dependency_graph.topological_order();
        order.reverse();
        let mut done = Vec::new();
        for id in order {
            let slot = &self.services[&id];
            if let Some(instance) = slot.cell.get() {
                instance.shutdown().await;
                slot.stats.lock().state = ServiceState::ShutDown;
                drop(slot.reservation.lock().take());
                tracing::debug!(service = %id, "service shut down");
                done.push(id);
            }
        }
        done
    }

    fn slot(&self, id: &str) -> Result<&Slot, InitializationError> {
        self.services
            .get(id)
            .ok_or_else(|| InitializationError::UnknownService(id.into()))
    }

    /// The cold path of a request: enter the lifecycle, then initialise.
    async fn initialize<'a>(
        &'a self,
        slot: &'a Slot,
        context: Option<ServiceInitializationContext>,
    ) -> Result<&'a Arc<dyn Service>, InitializationError> {
        let _gate = self.enter().await?;
        self.ensure(slot, context).await
    }

    /// Shared access to the lifecycle, refused once shutdown has begun. Taken once per
    /// request, never again inside it: tokio's `RwLock` queues readers behind a waiting writer,
    /// so a nested read would deadlock against `shutdown`.
    async fn enter(&self) -> Result<tokio::sync::RwLockReadGuard<'_, ()>, InitializationError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(InitializationError::ShutDown);
        }
        let gate = self.lifecycle.read().await;
        if self.shut_down.load(Ordering::Acquire) {
            return Err(InitializationError::ShutDown);
        }
        Ok(gate)
    }

    /// The initialised service, after one attempt if it is not ready. The `OnceCell` admits one
    /// initialiser at a time; callers that arrive meanwhile wait for its outcome. If it fails,
    /// they all return its error (rather than each running another attempt of a service that
    /// just failed, one timeout after the other); a request that starts after the failure runs
    /// a new attempt.
    fn ensure<'a>(
        &'a self,
        slot: &'a Slot,
        context: Option<ServiceInitializationContext>,
    ) -> BoxFuture<'a, Result<&'a Arc<dyn Service>, InitializationError>> {
        Box::pin(async move {
            if let Some(s) = slot.cell.get() {
                return Ok(s);
            }
            let failures_seen = slot.failures.load(Ordering::Acquire);
            slot.cell
                .get_or_try_init(|| async move {
                    if slot.failures.load(Ordering::Acquire) != failures_seen
                        && let Some(e) = slot.last_failure.lock().clone()
                    {
                        return Err(e);
                    }
                    self.attempt(slot, context).await
                })
                .await
        })
    }

    /// One initialisation attempt of `slot`, recorded in its stats.
    async fn attempt(
        &self,
        slot: &Slot,
        context: Option<ServiceInitializationContext>,
    ) -> Result<Arc<dyn Service>, InitializationError> {
        let mut record = AttemptRecord::start(slot);
        let result = self
            .run_attempt(slot, context.unwrap_or(slot.context), &mut record)
            .await;
        match &result {
            Ok(_) => record.succeeded(self.ready_seq.fetch_add(1, Ordering::Relaxed)),
            Err(e) => {
                record.failed(e);
                *slot.last_failure.lock() = Some(e.clone());
                slot.failures.fetch_add(1, Ordering::Release);
            }
        }
        result
    }

    async fn run_attempt(
        &self,
        slot: &Slot,
        context: ServiceInitializationContext,
        record: &mut AttemptRecord<'_>,
    ) -> Result<Arc<dyn Service>, InitializationError> {
        let service = &slot.id;
        let deps = self.dependency_graph.dependencies(service).unwrap_or(&[]);
        let mut dep_slots = Vec::with_capacity(deps.len());
        for d in deps {
            match self.services.get(d) {
                Some(s) => dep_slots.push(s),
                None => {
                    return Err(InitializationError::MissingDependency {
                        service: service.clone(),
                        dependency: d.clone(),
                    });
                }
            }
        }
        // Independent dependencies initialise concurrently.
        let results = join_all(dep_slots.iter().map(|d| self.ensure(d, None))).await;
        let mut resolved = Vec::with_capacity(deps.len());
        for (d, r) in dep_slots.iter().zip(results) {
            match r {
                Ok(instance) => resolved.push(Resolved {
                    id: d.id.clone(),
                    instance: Arc::clone(instance),
                    type_name: d.type_name,
                }),
                Err(source) => {
                    return Err(InitializationError::DependencyFailed {
                        service: service.clone(),
                        dependency: d.id.clone(),
                        source: Box::new(source),
                    });
                }
            }
        }

        let waited = Instant::now();
        let permit = self
            .resource_limiter
            .acquire(context.available_resources, context.priority)
            .await
            .map_err(|source| InitializationError::Resources {
                service: service.clone(),
                source,
            });
        record.queue_wait = waited.elapsed();
        let permit = permit?;

        // The factory runs as its own task: in parallel with its siblings on a multi-threaded
        // runtime, and a panic stays inside it.
        let started = Instant::now();
        let mut task = AbortOnDrop(tokio::spawn((slot.factory)(ServiceDeps::new(
            service.clone(),
            resolved,
        ))));
        let outcome = tokio::time::timeout(context.timeout, &mut task.0).await;
        record.run_time = Some(started.elapsed());
        match outcome {
            Err(_) => Err(InitializationError::Timeout {
                service: service.clone(),
                timeout: context.timeout,
            }),
            Ok(Err(_join_error)) => Err(InitializationError::Panicked {
                service: service.clone(),
            }),
            Ok(Ok(Err(source))) => Err(InitializationError::Failed {
                service: service.clone(),
                source: Arc::from(source),
            }),
            Ok(Ok(Ok(instance))) => {
                *slot.reservation.lock() = Some(permit.into_memory_reservation());
                Ok(instance)
            }
        }
    }
}

impl Default for LazyServiceManager {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LazyServiceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyServiceManager")
            .field("services", &self.dependency_graph.len())
            .field("resource_limiter", &self.resource_limiter)
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

/// One registered service.
struct Slot {
    id: ServiceId,
    type_name: &'static str,
    context: ServiceInitializationContext,
    factory: Factory,
    cell: OnceCell<Arc<dyn Service>>,
    /// Attempts that ended in an error (cancelled ones not counted: a cancellation is the
    /// caller's, and the next waiter simply tries).
    failures: AtomicU64,
    /// The error of the latest failed attempt, handed to the requests that waited on it.
    last_failure: Mutex<Option<InitializationError>>,
    /// The memory the initialised service holds until shutdown.
    reservation: Mutex<Option<MemoryReservation>>,
    stats: Mutex<ServiceStats>,
}

/// Aborts the factory task when the attempt ends without it (timeout, cancelled caller).
struct AbortOnDrop(JoinHandle<Result<Arc<dyn Service>, BoxError>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records an attempt in the slot's stats; an attempt dropped before it finished (its caller
/// was cancelled) is recorded as a cancelled failure.
struct AttemptRecord<'a> {
    slot: &'a Slot,
    queue_wait: Duration,
    run_time: Option<Duration>,
    finished: bool,
}

impl<'a> AttemptRecord<'a> {
    fn start(slot: &'a Slot) -> Self {
        let mut st = slot.stats.lock();
        st.attempts += 1;
        st.state = ServiceState::Initializing;
        drop(st);
        Self {
            slot,
            queue_wait: Duration::ZERO,
            run_time: None,
            finished: false,
        }
    }

    fn succeeded(&mut self, seq: u64) {
        let mut st = self.common();
        st.state = ServiceState::Ready;
        st.init_time = self.run_time;
        st.ready_seq = Some(seq);
        tracing::debug!(service = %self.slot.id, time = ?self.run_time, "service initialised");
    }

    fn failed(&mut self, e: &InitializationError) {
        let message = error_chain(e);
        tracing::warn!(service = %self.slot.id, error = %message, "service initialisation failed");
        let mut st = self.common();
        st.record_error(message);
        if matches!(e, InitializationError::DependencyFailed { .. }) {
            st.dependency_failures += 1;
        }
    }

    fn common(&mut self) -> parking_lot::MutexGuard<'a, ServiceStats> {
        self.finished = true;
        let mut st = self.slot.stats.lock();
        st.queue_wait += self.queue_wait;
        st.total_init_time += self.run_time.unwrap_or_default();
        st
    }
}

impl Drop for AttemptRecord<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.common()
                .record_error("initialisation cancelled: the caller stopped waiting".into());
        }
    }
}

/// `e: cause: cause ...`.
fn error_chain(e: &InitializationError) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
