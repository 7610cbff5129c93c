//! `services/*` load scenarios: the first request for a leaf of a seeded random graph of 200
//! services, lazily against an eager start of everything; and two threads hammering
//! `get_service` on initialised services against hand-rolled registries.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_services::{
    BoxError, LazyServiceManager, ResourceBudget, ResourceCapacity, ResourceLimiter, Service,
    ServiceDescriptor, ServiceState,
};

use super::stats::{LatencySummary, percentile_bounds};
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

const SEED: u64 = 0x7365_7276_6963_6573;
/// Services in the graph.
const SERVICES: usize = 200;
/// Levels of the graph (its depth).
const LEVELS: usize = 10;
/// Most dependencies of one service.
const MAX_DEPS: usize = 4;
/// Longest simulated initialisation.
const MAX_INIT: Duration = Duration::from_millis(5);
/// Share of services whose first attempt fails.
const FAILING: f64 = 0.05;
/// Share of services whose first attempt outlasts their timeout.
const OVER_TIMEOUT: f64 = 0.02;
/// Every service's timeout.
const TIMEOUT: Duration = Duration::from_millis(20);
/// Initialisation slots of the limiter (factories running at once).
const INIT_SLOTS: u32 = 8;
/// Memory each service reserves (the limiter's capacity holds them all).
const SERVICE_BYTES: u64 = 1 << 20;
/// Runtime threads and hammering tasks.
const THREADS: usize = 2;
/// One hammer get in this many is timed on its own.
const SAMPLE_EVERY: usize = 16;
/// Retries before a first request counts as failed.
const MAX_TRIES: usize = 64;

/// How much work a run does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Fresh graphs measured by `first_request`.
    repetitions: usize,
    /// Gets per hammering task.
    gets_per_thread: usize,
}

impl Plan {
    fn new(opts: LoadOptions) -> Self {
        if opts.quick {
            Self {
                repetitions: 10,
                gets_per_thread: 200_000,
            }
        } else {
            Self {
                repetitions: 40,
                gets_per_thread: 2_000_000,
            }
        }
    }
}

/// Runs the selected `services/*` scenarios.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let plan = Plan::new(opts);
    let rt = super::tokio_runtime(THREADS)?;
    for &id in ids {
        let results: Vec<SubjectResult> = match id {
            "services/first_request/leaf200" => rt.block_on(first_request(plan)),
            "services/get_hammer/threads2" => rt.block_on(get_hammer(plan)),
            other => vec![("perflab", Err(format!("unknown scenario {other}")))],
        };
        for (subject, res) in results {
            outcome.record(id, subject, res);
        }
    }
    Ok(())
}

/// The measures of one subject, or why it failed.
type SubjectResult = (&'static str, Result<BTreeMap<String, Measure>, String>);

/// A service of the generated graph.
struct Node;

impl Service for Node {}

/// One generated service.
#[derive(Debug, Clone)]
struct Spec {
    deps: Vec<usize>,
    init: Duration,
    fails_once: bool,
    hangs_once: bool,
}

/// A seeded random graph: `LEVELS` levels of `SERVICES / LEVELS` services; a service above
/// level 0 depends on one service of the level below (so the depth is exactly `LEVELS`) and on
/// up to `MAX_DEPS - 1` more from any lower level.
fn graph(seed: u64) -> (Vec<Spec>, usize) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let per_level = SERVICES / LEVELS;
    let specs: Vec<Spec> = (0..SERVICES)
        .map(|i| {
            let level = i / per_level;
            let mut deps = Vec::new();
            if level > 0 {
                deps.push(rng.random_range((level - 1) * per_level..level * per_level));
                for _ in 1..rng.random_range(1..=MAX_DEPS) {
                    let d = rng.random_range(0..level * per_level);
                    if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
            }
            let roll = rng.random_range(0.0..1.0);
            Spec {
                deps,
                init: Duration::from_micros(rng.random_range(0..=MAX_INIT.as_micros() as u64)),
                fails_once: roll < FAILING,
                hangs_once: (FAILING..FAILING + OVER_TIMEOUT).contains(&roll),
            }
        })
        .collect();
    // The request goes to a leaf (nothing depends on it) of the deepest level.
    let mut depended = [false; SERVICES];
    for s in &specs {
        for &d in &s.deps {
            depended[d] = true;
        }
    }
    let leaves: Vec<usize> = ((LEVELS - 1) * per_level..SERVICES)
        .filter(|&i| !depended[i])
        .collect();
    let leaf = leaves[rng.random_range(0..leaves.len())];
    (specs, leaf)
}

fn name(i: usize) -> String {
    format!("svc{i:03}")
}

/// A manager over `specs`: every factory sleeps its init time (initialisation is I/O: config
/// files, sockets, child processes), fails its first attempt if `fails_once`, outlasts the
/// timeout on its first attempt if `hangs_once`.
fn build_manager(specs: &[Spec]) -> Result<LazyServiceManager, String> {
    let limiter = ResourceLimiter::new(ResourceCapacity::new(
        SERVICE_BYTES * SERVICES as u64,
        INIT_SLOTS,
    ));
    let mut m = LazyServiceManager::with_resource_limiter(limiter);
    for (i, s) in specs.iter().enumerate() {
        let spec = s.clone();
        let attempts = AtomicU32::new(0);
        m.register(
            ServiceDescriptor::new(name(i))
                .depends_on(s.deps.iter().map(|&d| name(d)))
                .timeout(TIMEOUT)
                .resources(ResourceBudget::new(SERVICE_BYTES, 1)),
            move |deps| {
                let first = attempts.fetch_add(1, Ordering::Relaxed) == 0;
                let spec = spec.clone();
                async move {
                    let sleep = if first && spec.hangs_once {
                        TIMEOUT * 2
                    } else {
                        spec.init
                    };
                    if !sleep.is_zero() {
                        tokio::time::sleep(sleep).await;
                    }
                    if first && spec.fails_once {
                        return Err(BoxError::from(format!(
                            "{}: connection refused",
                            deps.service()
                        )));
                    }
                    Ok(Node)
                }
            },
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(m)
}

/// What one first request cost.
struct FirstRequest {
    latency: Duration,
    initialized: usize,
    failed_attempts: u64,
}

/// `perflab`: get the leaf, retrying failures, from a manager where nothing is initialised.
async fn lazy_first(specs: &[Spec], leaf: usize) -> Result<FirstRequest, String> {
    let m = build_manager(specs)?;
    let id = name(leaf);
    let start = Instant::now();
    let mut tries = 0;
    while let Err(e) = m.get_service::<Node>(&id).await {
        tries += 1;
        if tries == MAX_TRIES {
            return Err(format!("{id} still failing after {tries} tries: {e}"));
        }
    }
    let latency = start.elapsed();
    Ok(summarize(&m, latency))
}

/// `eager`: start every service (retrying failures), then get the leaf.
async fn eager_first(specs: &[Spec], leaf: usize) -> Result<FirstRequest, String> {
    let m = build_manager(specs)?;
    let all: Vec<String> = (0..specs.len()).map(name).collect();
    let id = name(leaf);
    let start = Instant::now();
    let mut tries = 0;
    while let Err(e) = m.preload_services(&all).await {
        tries += 1;
        if tries == MAX_TRIES {
            return Err(format!("still failing after {tries} preloads: {e}"));
        }
    }
    m.get_service::<Node>(&id)
        .await
        .map_err(|e| e.to_string())?;
    let latency = start.elapsed();
    Ok(summarize(&m, latency))
}

fn summarize(m: &LazyServiceManager, latency: Duration) -> FirstRequest {
    let stats = m.initialization_stats();
    FirstRequest {
        latency,
        initialized: stats.count(ServiceState::Ready),
        failed_attempts: stats.total_own_failures(),
    }
}

/// `services/first_request/leaf200`: a fresh graph per repetition, both subjects on the same
/// graph, in alternating order.
async fn first_request(plan: Plan) -> Vec<SubjectResult> {
    let mut lazy = Vec::with_capacity(plan.repetitions);
    let mut eager = Vec::with_capacity(plan.repetitions);
    for rep in 0..plan.repetitions {
        let (specs, leaf) = graph(SEED ^ rep as u64);
        let (l, e) = if rep % 2 == 0 {
            let l = lazy_first(&specs, leaf).await;
            (l, eager_first(&specs, leaf).await)
        } else {
            let e = eager_first(&specs, leaf).await;
            (lazy_first(&specs, leaf).await, e)
        };
        lazy.push(l);
        eager.push(e);
    }
    vec![
        ("perflab", first_request_measures(lazy)),
        ("eager", first_request_measures(eager)),
    ]
}

/// Median latency with its 95% interval, p99, mean services initialised and failed attempts.
fn first_request_measures(
    runs: Vec<Result<FirstRequest, String>>,
) -> Result<BTreeMap<String, Measure>, String> {
    let runs: Vec<FirstRequest> = runs.into_iter().collect::<Result<_, _>>()?;
    let n = runs.len() as f64;
    let mut ns: Vec<u64> = runs.iter().map(|r| r.latency.as_nanos() as u64).collect();
    ns.sort_unstable();
    let (lo, mid, hi) = percentile_bounds(ns.len(), 0.5);
    let mut m = BTreeMap::new();
    m.insert(
        "latency".to_owned(),
        Measure {
            value: ns[mid] as f64,
            lower_value: Some(ns[lo] as f64),
            upper_value: Some(ns[hi] as f64),
        },
    );
    let (_, p99, _) = percentile_bounds(ns.len(), 0.99);
    m.insert("latency_p99".to_owned(), Measure::point(ns[p99] as f64));
    m.insert(
        "services_initialized".to_owned(),
        Measure::point(runs.iter().map(|r| r.initialized as f64).sum::<f64>() / n),
    );
    m.insert(
        "errors".to_owned(),
        Measure::point(runs.iter().map(|r| r.failed_attempts as f64).sum::<f64>() / n),
    );
    Ok(m)
}

/// A hand-rolled registry: one `OnceLock` per name in a `HashMap` built up front.
type OnceLockRegistry = HashMap<String, OnceLock<Arc<dyn Any + Send + Sync>>>;
/// A hand-rolled registry: a `HashMap` behind a `RwLock`.
type RwLockRegistry = RwLock<HashMap<String, Arc<dyn Any + Send + Sync>>>;

/// The registries under test, each holding the same 200 initialised services.
enum Registry {
    Perflab(LazyServiceManager),
    OnceLock(OnceLockRegistry),
    RwLock(RwLockRegistry),
}

impl Registry {
    async fn get(&self, id: &str) -> Option<Arc<Node>> {
        match self {
            Self::Perflab(m) => m.get_service::<Node>(id).await.ok(),
            Self::OnceLock(r) => r
                .get(id)
                .and_then(OnceLock::get)
                .and_then(|s| Arc::clone(s).downcast::<Node>().ok()),
            Self::RwLock(r) => r
                .read()
                .ok()
                .and_then(|map| map.get(id).cloned())
                .and_then(|s| s.downcast::<Node>().ok()),
        }
    }
}

/// `services/get_hammer/threads2`: two tasks on two runtime threads, each getting services by
/// name in a seeded random order; one get in `SAMPLE_EVERY` is timed alone.
async fn get_hammer(plan: Plan) -> Vec<SubjectResult> {
    let (specs, _) = graph(SEED);
    let ids: Arc<Vec<String>> = Arc::new((0..SERVICES).map(name).collect());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED.rotate_left(17));
    let orders: Vec<Arc<Vec<u16>>> = (0..THREADS)
        .map(|_| {
            Arc::new(
                (0..plan.gets_per_thread)
                    .map(|_| rng.random_range(0..SERVICES as u16))
                    .collect(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for subject in ["perflab", "oncelock", "rwlock"] {
        let res = match hammer_registry(subject, &specs, &ids).await {
            Ok(registry) => hammer(Arc::new(registry), &ids, &orders).await,
            Err(e) => Err(e),
        };
        out.push((subject, res));
    }
    out
}

async fn hammer_registry(
    subject: &str,
    specs: &[Spec],
    ids: &[String],
) -> Result<Registry, String> {
    let node = || Arc::new(Node) as Arc<dyn Any + Send + Sync>;
    Ok(match subject {
        "perflab" => {
            let m = build_manager(specs)?;
            let mut tries = 0;
            while let Err(e) = m.preload_services(ids).await {
                tries += 1;
                if tries == MAX_TRIES {
                    return Err(e.to_string());
                }
            }
            Registry::Perflab(m)
        }
        "oncelock" => Registry::OnceLock(
            ids.iter()
                .map(|id| (id.clone(), OnceLock::from(node())))
                .collect(),
        ),
        _ => Registry::RwLock(RwLock::new(
            ids.iter().map(|id| (id.clone(), node())).collect(),
        )),
    })
}

async fn hammer(
    registry: Arc<Registry>,
    ids: &Arc<Vec<String>>,
    orders: &[Arc<Vec<u16>>],
) -> Result<BTreeMap<String, Measure>, String> {
    let start = Instant::now();
    let tasks: Vec<_> = orders
        .iter()
        .map(|order| {
            let (registry, ids, order) =
                (Arc::clone(&registry), Arc::clone(ids), Arc::clone(order));
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(order.len() / SAMPLE_EVERY + 1);
                let mut misses = 0u64;
                for (k, &i) in order.iter().enumerate() {
                    let id = ids[usize::from(i)].as_str();
                    let got = if k % SAMPLE_EVERY == 0 {
                        let t = Instant::now();
                        let got = registry.get(id).await;
                        samples.push(t.elapsed().as_nanos() as u64);
                        got
                    } else {
                        registry.get(id).await
                    };
                    misses += u64::from(std::hint::black_box(got).is_none());
                }
                (samples, misses)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut misses = 0;
    for t in tasks {
        let (s, m) = t.await.map_err(|e| e.to_string())?;
        samples.extend(s);
        misses += m;
    }
    let elapsed = start.elapsed();
    let total: usize = orders.iter().map(|o| o.len()).sum();
    let lat = LatencySummary::from_samples(&mut samples).ok_or("no samples")?;
    let mut m = BTreeMap::new();
    m.insert(
        "throughput".to_owned(),
        Measure::point(total as f64 / elapsed.as_secs_f64()),
    );
    for (name, (v, lo, hi)) in [
        ("latency_p50", lat.p50),
        ("latency_p99", lat.p99),
        ("latency_p999", lat.p999),
    ] {
        m.insert(
            name.to_owned(),
            Measure {
                value: v,
                lower_value: Some(lo),
                upper_value: Some(hi),
            },
        );
    }
    m.insert("errors".to_owned(), Measure::point(misses as f64));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_has_the_promised_shape() {
        let (specs, leaf) = graph(SEED);
        assert_eq!(specs.len(), SERVICES);
        assert!(
            specs
                .iter()
                .all(|s| s.deps.len() <= MAX_DEPS && s.init <= MAX_INIT)
        );
        assert!(specs.iter().all(|s| !(s.fails_once && s.hangs_once)));
        let m = build_manager(&specs).expect("acyclic");
        assert_eq!(m.dependency_graph().levels().len(), LEVELS);
        assert!(m.dependency_graph().dependents(&name(leaf)).is_empty());
        let failing = specs.iter().filter(|s| s.fails_once).count();
        assert!((2..=25).contains(&failing), "{failing}");
        // Deterministic per seed.
        assert_eq!(graph(SEED).1, leaf);
    }

    #[test]
    fn quick_mode_measures_both_subjects() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .enable_all()
            .build()
            .expect("runtime");
        let plan = Plan {
            repetitions: 2,
            gets_per_thread: 2_000,
        };
        for (subject, res) in rt.block_on(first_request(plan)) {
            let m = res.unwrap_or_else(|e| panic!("{subject}: {e}"));
            assert!(m["latency"].value > 0.0);
            assert!(m["services_initialized"].value >= 1.0);
        }
        for (subject, res) in rt.block_on(get_hammer(plan)) {
            let m = res.unwrap_or_else(|e| panic!("{subject}: {e}"));
            assert!(m["throughput"].value > 0.0);
            assert_eq!(m["errors"].value, 0.0, "{subject}");
        }
    }
}
