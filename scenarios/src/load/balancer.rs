//! `balancer/*` load scenarios: tower's balance workload (10 simulated endpoints of very
//! different latencies) over the intelligent balancer, tower's P2C balancers and
//! round-robin, steady, with two endpoints killed mid-run and across two zones; and 500
//! concurrent HTTP users through the reverse proxy to 4 loopback backends.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rust_ai_ide_balancer::{
    BalancerConfig, BalancerProxy, GeoLocation, InstanceInfo, IntelligentLoadBalancer, ProxyConfig,
    Request, ResourceCapacity, RoutingPolicy,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::Service;
use tower::ServiceExt;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover, PendingRequestsDiscover};

use super::stats::LatencySummary;
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

/// Maximum latency of each endpoint, as in tower's `examples/tower-balance.rs`; each call
/// sleeps a uniform draw below it.
const ENDPOINT_MAX_MS: [u64; 10] = [1, 5, 10, 10, 10, 100, 100, 100, 500, 1000];
/// Requests in flight at once (tower's example: 500).
const CONCURRENCY: usize = 500;
/// Requests each endpoint serves in parallel: tower's example wraps each in a
/// `ConcurrencyLimit` of 500, and the balancer is told so (`ResourceCapacity`).
const ENDPOINT_CAPACITY: u32 = 500;
/// Latency tower's peak-EWMA starts from, and its decay period (tower's example).
const DEFAULT_RTT: Duration = Duration::from_millis(30);
const DECAY: Duration = Duration::from_secs(10);
/// Extra latency of a call that crosses zones in the `zones` scenario.
const CROSS_ZONE: Duration = Duration::from_millis(20);
/// Endpoints killed halfway through the `kill2` scenario: the two fastest.
const KILLED: [usize; 2] = [0, 1];
/// Runtime worker threads.
const THREADS: usize = 2;
/// Backend service times of `proxy/users500`: uniform below these maxima, one per backend.
const BACKEND_MAX_MS: [u64; 4] = [10, 20, 30, 40];
/// Think time of a `users500` user between requests: uniform below this.
const THINK_MAX_MS: u64 = 100;
const USERS: usize = 500;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Steady,
    Kill2,
    Zones,
}

/// How much work a run does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    requests: usize,
    time_limit: Duration,
    users_for: Duration,
}

impl Plan {
    fn new(opts: LoadOptions) -> Self {
        // Quick mode keeps tower's latencies (scaling them below tokio's 1 ms timer would
        // erase the difference between the fast endpoints) and sends a tenth of the requests.
        if opts.quick {
            Self {
                requests: 10_000,
                time_limit: Duration::from_secs(15),
                users_for: Duration::from_secs(3),
            }
        } else {
            Self {
                requests: 100_000,
                time_limit: Duration::from_secs(90),
                users_for: Duration::from_secs(10),
            }
        }
    }
}

/// Runs the selected `balancer/*` scenarios.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let plan = Plan::new(opts);
    let rt = super::tokio_runtime(THREADS)?;
    for &id in ids {
        let variant = match id {
            "balancer/tower_workload/steady" => Variant::Steady,
            "balancer/tower_workload/kill2" => Variant::Kill2,
            "balancer/tower_workload/zones" => Variant::Zones,
            "balancer/proxy/users500" => {
                let res = rt.block_on(users500(plan));
                outcome.record(id, "perflab", res);
                continue;
            }
            _ => continue,
        };
        for subject in [
            "perflab",
            "tower_p2c_peak_ewma",
            "p2c_least_loaded",
            "round_robin",
            "perflab_default_capacity",
        ] {
            let res = rt.block_on(tower_workload(subject, variant, plan));
            outcome.record(id, subject, res);
        }
    }
    Ok(())
}

/// The simulated endpoints and what they saw.
struct Endpoints {
    max: Vec<Duration>,
    killed: Vec<AtomicBool>,
    calls: Vec<AtomicU64>,
    variant: Variant,
}

impl Endpoints {
    fn new(variant: Variant) -> Self {
        Self {
            max: ENDPOINT_MAX_MS
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            killed: ENDPOINT_MAX_MS
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            calls: ENDPOINT_MAX_MS.iter().map(|_| AtomicU64::new(0)).collect(),
            variant,
        }
    }

    /// Endpoint `i`'s zone in the `zones` scenario: alternating, so each zone has a mix.
    fn zone(i: usize) -> usize {
        i % 2
    }

    /// Kills the `KILLED` endpoints when ticket `t` is the halfway one of `n`.
    fn maybe_kill(&self, t: usize, n: usize) {
        if self.variant == Variant::Kill2 && t == n / 2 {
            for &k in &KILLED {
                self.killed[k].store(true, Ordering::Relaxed);
            }
        }
    }

    /// One call to endpoint `i` from a client in zone `origin`: a killed endpoint fails
    /// at once, a live one answers after its latency (plus the cross-zone cost).
    async fn call(&self, i: usize, origin: usize) -> Result<(), &'static str> {
        self.calls[i].fetch_add(1, Ordering::Relaxed);
        if self.killed[i].load(Ordering::Relaxed) {
            return Err("endpoint killed");
        }
        let max_us = self.max[i].as_micros() as u64;
        let mut latency = Duration::from_micros(rand::random_range(0..max_us));
        if self.variant == Variant::Zones && Self::zone(i) != origin {
            latency += CROSS_ZONE;
        }
        tokio::time::sleep(latency).await;
        Ok(())
    }
}

/// What one subject's run produced.
#[derive(Default)]
struct Collected {
    latencies: Vec<u64>,
    errors: u64,
}

impl Collected {
    fn merge(&mut self, other: Collected) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
    }
}

fn measures(
    mut c: Collected,
    wall: Duration,
    eps: &Endpoints,
) -> Result<BTreeMap<String, Measure>, String> {
    let done = c.latencies.len();
    let summary = LatencySummary::from_samples(&mut c.latencies)
        .ok_or_else(|| "no request completed".to_owned())?;
    let mut m = BTreeMap::new();
    m.insert("latency_p50".to_owned(), Measure::bounded(summary.p50));
    m.insert("latency_p99".to_owned(), Measure::bounded(summary.p99));
    m.insert("latency_p999".to_owned(), Measure::bounded(summary.p999));
    m.insert(
        "wall_time".to_owned(),
        Measure::point(wall.as_nanos() as f64),
    );
    m.insert("errors".to_owned(), Measure::point(c.errors as f64));
    m.insert(
        "throughput".to_owned(),
        Measure::point(done as f64 / wall.as_secs_f64()),
    );
    let calls: Vec<u64> = eps
        .calls
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let total = calls.iter().sum::<u64>().max(1) as f64;
    for (i, n) in calls.iter().enumerate() {
        m.insert(format!("share_ep{i}"), Measure::point(*n as f64 / total));
    }
    Ok(m)
}

async fn tower_workload(
    subject: &str,
    variant: Variant,
    plan: Plan,
) -> Result<BTreeMap<String, Measure>, String> {
    let eps = Arc::new(Endpoints::new(variant));
    let started = Instant::now();
    let collected = match subject {
        "perflab" => {
            drive_balancer(RoutingPolicy::Intelligent, ENDPOINT_CAPACITY, &eps, plan).await?
        }
        "perflab_default_capacity" => {
            let parallel = ResourceCapacity::default().max_concurrent;
            drive_balancer(RoutingPolicy::Intelligent, parallel, &eps, plan).await?
        }
        "round_robin" => {
            drive_balancer(RoutingPolicy::RoundRobin, ENDPOINT_CAPACITY, &eps, plan).await?
        }
        "tower_p2c_peak_ewma" => {
            let d = PeakEwmaDiscover::new(
                ServiceList::new::<SimReq>(sim_services(&eps)),
                DEFAULT_RTT,
                DECAY,
                CompleteOnResponse::default(),
            );
            drive_tower(Balance::new(d), &eps, plan).await
        }
        "p2c_least_loaded" => {
            let d = PendingRequestsDiscover::new(
                ServiceList::new::<SimReq>(sim_services(&eps)),
                CompleteOnResponse::default(),
            );
            drive_tower(Balance::new(d), &eps, plan).await
        }
        other => return Err(format!("unknown subject {other}")),
    };
    let wall = started.elapsed();
    measures(collected, wall, &eps)
}

/// `CONCURRENCY` workers, each taking the next request number and routing it through an
/// `IntelligentLoadBalancer` (the intelligent or the round-robin policy) that believes each
/// endpoint serves `max_concurrent` requests in parallel.
async fn drive_balancer(
    policy: RoutingPolicy,
    max_concurrent: u32,
    eps: &Arc<Endpoints>,
    plan: Plan,
) -> Result<Collected, String> {
    let lb = IntelligentLoadBalancer::new(BalancerConfig {
        policy,
        default_rtt: DEFAULT_RTT,
        decay: DECAY,
        cross_zone_penalty: CROSS_ZONE,
        ..BalancerConfig::default()
    });
    for i in 0..ENDPOINT_MAX_MS.len() {
        let info = InstanceInfo::new(
            format!("{i}"),
            GeoLocation::new(0.0, 0.0, format!("z{}", Endpoints::zone(i))),
        )
        .with_capacity(ResourceCapacity {
            max_concurrent,
            weight: 1.0,
        });
        lb.add_instance(info).await.map_err(|e| e.to_string())?;
    }
    let origins = [
        GeoLocation::new(0.0, 0.0, "z0"),
        GeoLocation::new(0.0, 0.0, "z1"),
    ];
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + plan.time_limit;
    let mut workers = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (lb, eps, next, origins) = (
            lb.clone(),
            Arc::clone(eps),
            Arc::clone(&next),
            origins.clone(),
        );
        workers.spawn(async move {
            let mut c = Collected::default();
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= plan.requests || Instant::now() > deadline {
                    return c;
                }
                eps.maybe_kill(t, plan.requests);
                // Random, not `t % 2`: round-robin's turn would line up with an alternating origin.
                let origin = rand::random_range(0..2usize);
                let req = if eps.variant == Variant::Zones {
                    Request::new().with_origin(origins[origin].clone())
                } else {
                    Request::new()
                };
                let start = Instant::now();
                let Ok(guard) = lb.start_request(&req) else {
                    c.errors += 1;
                    continue;
                };
                let i: usize = guard.id().as_str().parse().unwrap_or(0);
                let ok = eps.call(i, origin).await.is_ok();
                guard.complete(ok);
                if ok {
                    c.latencies.push(start.elapsed().as_nanos() as u64);
                } else {
                    c.errors += 1;
                }
            }
        });
    }
    let mut all = Collected::default();
    while let Some(w) = workers.join_next().await {
        all.merge(w.map_err(|e| format!("worker failed: {e}"))?);
    }
    Ok(all)
}

/// The request of the tower subjects: the client's zone.
struct SimReq {
    origin: usize,
}

/// One simulated endpoint as a tower service; a killed endpoint also fails `poll_ready`,
/// so tower's balancer can evict it.
struct SimService {
    eps: Arc<Endpoints>,
    index: usize,
}

fn sim_services(eps: &Arc<Endpoints>) -> Vec<SimService> {
    (0..ENDPOINT_MAX_MS.len())
        .map(|index| SimService {
            eps: Arc::clone(eps),
            index,
        })
        .collect()
}

impl Service<SimReq> for SimService {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.eps.killed[self.index].load(Ordering::Relaxed) {
            Poll::Ready(Err("endpoint killed".into()))
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: SimReq) -> Self::Future {
        let (eps, i) = (Arc::clone(&self.eps), self.index);
        Box::pin(async move { eps.call(i, req.origin).await.map_err(Into::into) })
    }
}

/// One dispatcher owning tower's balancer (it is not `Clone`), at most `CONCURRENCY`
/// responses outstanding, as tower's example drives it.
async fn drive_tower<S>(mut svc: S, eps: &Arc<Endpoints>, plan: Plan) -> Collected
where
    S: Service<SimReq, Response = (), Error = BoxError>,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let deadline = Instant::now() + plan.time_limit;
    let mut inflight = JoinSet::new();
    let mut all = Collected::default();
    let absorb = |all: &mut Collected, r: Result<(bool, u64), tokio::task::JoinError>| match r {
        Ok((true, ns)) => all.latencies.push(ns),
        _ => all.errors += 1,
    };
    for t in 0..plan.requests {
        if Instant::now() > deadline {
            break;
        }
        eps.maybe_kill(t, plan.requests);
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let start = Instant::now();
        let fut = match svc.ready().await {
            Ok(s) => s.call(SimReq {
                origin: rand::random_range(0..2usize),
            }),
            Err(_) => {
                all.errors += 1;
                continue;
            }
        };
        inflight.spawn(async move {
            let ok = fut.await.is_ok();
            drop(permit);
            (ok, start.elapsed().as_nanos() as u64)
        });
        while let Some(r) = inflight.try_join_next() {
            absorb(&mut all, r);
        }
    }
    while let Some(r) = inflight.join_next().await {
        absorb(&mut all, r);
    }
    all
}

/// A loopback HTTP backend whose service time is uniform below `max`; it records each
/// service time, so the run can compare the proxy's p99 with the backend's own.
async fn start_backend(
    max: Duration,
    samples: Arc<Mutex<Vec<u64>>>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind backend: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("backend address: {e}"))?;
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let samples = Arc::clone(&samples);
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |_req: hyper::Request<Incoming>| {
                    let samples = Arc::clone(&samples);
                    async move {
                        let start = Instant::now();
                        let us = rand::random_range(0..max.as_micros() as u64);
                        tokio::time::sleep(Duration::from_micros(us)).await;
                        if let Ok(mut s) = samples.lock() {
                            s.push(start.elapsed().as_nanos() as u64);
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                // A client closing its connection at the end of the run is expected.
                let _ = conn.await;
            });
        }
    });
    Ok((addr, task))
}

/// 500 users on loopback, each looping think, request, wait, through the proxy to 4
/// backends, for `plan.users_for`.
async fn users500(plan: Plan) -> Result<BTreeMap<String, Measure>, String> {
    let lb = IntelligentLoadBalancer::default();
    let mut backends = Vec::new();
    let mut samples = Vec::new();
    for (i, &ms) in BACKEND_MAX_MS.iter().enumerate() {
        let s = Arc::new(Mutex::new(Vec::new()));
        let (addr, task) = start_backend(Duration::from_millis(ms), Arc::clone(&s)).await?;
        lb.add_instance(
            InstanceInfo::new(format!("b{i}"), GeoLocation::default()).with_address(addr),
        )
        .await
        .map_err(|e| e.to_string())?;
        backends.push(task);
        samples.push(s);
    }
    let proxy = BalancerProxy::start(lb, ProxyConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let uri: hyper::Uri = format!("http://{}/work", proxy.local_addr())
        .parse()
        .map_err(|e| format!("proxy uri: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let started = Instant::now();
    let deadline = started + plan.users_for;
    let mut users = JoinSet::new();
    for _ in 0..USERS {
        let (client, uri) = (client.clone(), uri.clone());
        users.spawn(async move {
            let mut c = Collected::default();
            loop {
                let think = Duration::from_millis(rand::random_range(0..THINK_MAX_MS));
                tokio::time::sleep(think).await;
                if Instant::now() > deadline {
                    return c;
                }
                let start = Instant::now();
                let ok = match client.get(uri.clone()).await {
                    Ok(resp) => {
                        let status = resp.status();
                        resp.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    c.latencies.push(start.elapsed().as_nanos() as u64);
                } else {
                    c.errors += 1;
                }
            }
        });
    }
    let mut all = Collected::default();
    while let Some(u) = users.join_next().await {
        all.merge(u.map_err(|e| format!("user failed: {e}"))?);
    }
    let wall = started.elapsed();
    proxy.shutdown().await;
    for b in &backends {
        b.abort();
    }
    let slowest_p99 = samples
        .iter()
        .filter_map(|s| {
            let mut v = s.lock().ok()?.clone();
            LatencySummary::from_samples(&mut v).map(|l| l.p99.0)
        })
        .fold(0.0, f64::max);
    let done = all.latencies.len();
    let summary = LatencySummary::from_samples(&mut all.latencies)
        .ok_or_else(|| "no request completed".to_owned())?;
    let mut m = BTreeMap::new();
    m.insert("latency_p50".to_owned(), Measure::bounded(summary.p50));
    m.insert("latency_p99".to_owned(), Measure::bounded(summary.p99));
    m.insert("latency_p999".to_owned(), Measure::bounded(summary.p999));
    m.insert("errors".to_owned(), Measure::point(all.errors as f64));
    m.insert(
        "throughput".to_owned(),
        Measure::point(done as f64 / wall.as_secs_f64()),
    );
    m.insert(
        "backend_p99_slowest".to_owned(),
        Measure::point(slowest_p99),
    );
    println!(
        "balancer/proxy/users500: {done} requests, {} errors, p99 {:.1} ms, slowest backend p99 {:.1} ms",
        all.errors,
        summary.p99.0 / 1e6,
        slowest_p99 / 1e6
    );
    Ok(m)
}
