//! `IntelligentLoadBalancer`: the instance table, the routing policies and the feedback
//! (latency, load, failures) that drives them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::error::{HealthUpdateError, InstanceError, RoutingError};
use crate::estimate::{LoadPredictor, PeakEwma, random_below};
use crate::health::{HealthChecker, PassiveState, ProbeOutcome};
use crate::ring::HashRing;
use crate::types::{
    BalancerConfig, GeoLocation, GeoRoutingStats, HealthStatus, InstanceId, InstanceInfo,
    InstanceLoad, LoadDistributionStats, LoadMetrics, Request, ResourceCapacity, RoutingPolicy,
};

/// One registered instance: its fixed description, lock-free counters and the estimators.
#[derive(Debug)]
struct Slot {
    id: InstanceId,
    location: GeoLocation,
    capacity: ResourceCapacity,
    address: Option<SocketAddr>,
    in_flight: AtomicU32,
    routed: AtomicU64,
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    health: HealthStatus,
    rtt: PeakEwma,
    load: LoadPredictor,
    passive: PassiveState,
    completed: u64,
    failures: u64,
    /// Requests in flight and the sum of their start times (ns since `epoch`), for the
    /// mean age of what is outstanding.
    pending: u64,
    pending_started_ns: u128,
}

impl SlotState {
    fn end_pending(&mut self, started_ns: u128) {
        self.pending = self.pending.saturating_sub(1);
        self.pending_started_ns = self.pending_started_ns.saturating_sub(started_ns);
    }

    /// Mean age of the requests in flight, in ns: a request pending for 400 ms proves the
    /// instance's latency is at least that, before any response says so.
    fn pending_age_ns(&self, now_ns: u128) -> f64 {
        if self.pending == 0 {
            return 0.0;
        }
        let mean_start = self.pending_started_ns / u128::from(self.pending);
        now_ns.saturating_sub(mean_start) as f64
    }
}

impl Slot {
    fn saturated(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) >= self.capacity.max_concurrent
    }
}

/// The instance table, replaced whole on add and remove (copy-on-write), so routing
/// takes a read lock just long enough to clone an `Arc`.
#[derive(Debug, Default)]
struct Table {
    slots: Vec<Arc<Slot>>,
    index: HashMap<InstanceId, usize>,
    ring: HashRing,
}

#[derive(Debug, Default)]
struct GeoCounters {
    with_origin: AtomicU64,
    local: AtomicU64,
    cross_zone: AtomicU64,
    spill_overs: AtomicU64,
    distance_m: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    config: BalancerConfig,
    table: RwLock<Arc<Table>>,
    health_checker: HealthChecker,
    next_rr: AtomicUsize,
    routing_failures: AtomicU64,
    geo: GeoCounters,
    last_sweep: Mutex<Instant>,
    /// Origin of the pending-request timestamps.
    epoch: Instant,
}

/// A load balancer over a changing set of instances.
///
/// Cheap to clone (one `Arc`); clones share everything. See the crate documentation for
/// the routing algorithm.
#[derive(Debug, Clone)]
pub struct IntelligentLoadBalancer {
    inner: Arc<Inner>,
}

impl Default for IntelligentLoadBalancer {
    fn default() -> Self {
        Self::new(BalancerConfig::default())
    }
}

/// A request the balancer has routed and counts as in flight until it completes.
///
/// Call [`RequestGuard::complete`] with the outcome: its latency feeds the peak-EWMA
/// estimate and failures feed passive health checking. Dropping the guard without
/// completing only ends the in-flight count (a cancelled request says nothing about the
/// instance).
#[derive(Debug)]
pub struct RequestGuard {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    started: Instant,
    done: bool,
}

impl RequestGuard {
    /// The chosen instance.
    pub fn id(&self) -> &InstanceId {
        &self.slot.id
    }

    /// The chosen instance's address, if it has one.
    pub fn address(&self) -> Option<SocketAddr> {
        self.slot.address
    }

    /// Ends the request: `ok` says whether the instance served it.
    pub fn complete(mut self, ok: bool) {
        self.done = true;
        let latency = self.started.elapsed();
        self.slot
            .state
            .lock()
            .end_pending(self.inner.since_epoch(self.started));
        self.inner.finish(&self.slot, latency, ok);
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if !self.done {
            self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
            let mut st = self.slot.state.lock();
            st.end_pending(self.inner.since_epoch(self.started));
        }
    }
}

impl IntelligentLoadBalancer {
    /// An empty balancer with `config`.
    pub fn new(config: BalancerConfig) -> Self {
        let health_checker = HealthChecker::new(config.health.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                table: RwLock::new(Arc::new(Table::default())),
                health_checker,
                next_rr: AtomicUsize::new(0),
                routing_failures: AtomicU64::new(0),
                geo: GeoCounters::default(),
                last_sweep: Mutex::new(Instant::now()),
                epoch: Instant::now(),
            }),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &BalancerConfig {
        &self.inner.config
    }

    /// Its health checker.
    pub fn health_checker(&self) -> &HealthChecker {
        &self.inner.health_checker
    }

    /// Chooses an instance for `request` and counts it as routed, without tracking the
    /// request's completion (the 2025 API). Use [`Self::start_request`] to let the
    /// balancer learn from the response.
    pub async fn route_request(&self, request: Request) -> Result<InstanceId, RoutingError> {
        let slot = self.inner.select(&request, None)?;
        slot.routed.fetch_add(1, Ordering::Relaxed);
        Ok(slot.id.clone())
    }

    /// Chooses an instance for `request` and tracks it until the guard completes.
    pub fn start_request(&self, request: &Request) -> Result<RequestGuard, RoutingError> {
        self.start_request_excluding(request, None)
    }

    /// As [`Self::start_request`], avoiding `exclude` unless it is the only routable
    /// instance (for retries).
    pub fn start_request_excluding(
        &self,
        request: &Request,
        exclude: Option<&InstanceId>,
    ) -> Result<RequestGuard, RoutingError> {
        let slot = self.inner.select(request, exclude)?;
        slot.routed.fetch_add(1, Ordering::Relaxed);
        let in_flight = slot.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let started = Instant::now();
        let mut st = slot.state.lock();
        st.load.observe(f64::from(in_flight));
        st.pending += 1;
        st.pending_started_ns += self.inner.since_epoch(started);
        drop(st);
        Ok(RequestGuard {
            inner: Arc::clone(&self.inner),
            slot,
            started,
            done: false,
        })
    }

    /// Registers `instance`.
    pub async fn add_instance(&self, instance: InstanceInfo) -> Result<(), InstanceError> {
        let cap = instance.capacity;
        if !(cap.weight.is_finite() && cap.weight > 0.0) {
            return Err(InstanceError::Invalid {
                id: instance.id,
                reason: "capacity weight must be positive and finite",
            });
        }
        if cap.max_concurrent == 0 {
            return Err(InstanceError::Invalid {
                id: instance.id,
                reason: "max_concurrent must be at least 1",
            });
        }
        let cfg = &self.inner.config;
        let seed = match instance.load_metrics.latency_estimate {
            Duration::ZERO => cfg.default_rtt,
            d => d,
        };
        let slot = Arc::new(Slot {
            id: instance.id.clone(),
            location: instance.location,
            capacity: cap,
            address: instance.address,
            in_flight: AtomicU32::new(0),
            routed: AtomicU64::new(0),
            state: Mutex::new(SlotState {
                health: instance.health_status,
                rtt: PeakEwma::new(seed, Instant::now()),
                load: LoadPredictor::new(cfg.load_alpha, cfg.load_beta),
                passive: PassiveState::default(),
                completed: 0,
                failures: 0,
                pending: 0,
                pending_started_ns: 0,
            }),
        });
        let mut guard = self.inner.table.write();
        if guard.index.contains_key(&instance.id) {
            return Err(InstanceError::Duplicate(instance.id));
        }
        let mut slots = guard.slots.clone();
        slots.push(slot);
        let mut ring = guard.ring.clone();
        ring.add(instance.id.as_str(), cfg.ring_replicas);
        *guard = Arc::new(Table::build(slots, ring));
        Ok(())
    }

    /// Unregisters the instance `instance_id`; requests in flight to it still complete.
    pub async fn remove_instance(&self, instance_id: &InstanceId) -> Result<(), InstanceError> {
        let mut guard = self.inner.table.write();
        let Some(&at) = guard.index.get(instance_id) else {
            return Err(InstanceError::NotFound(instance_id.clone()));
        };
        let mut slots = guard.slots.clone();
        slots.remove(at);
        let mut ring = guard.ring.clone();
        ring.remove(instance_id.as_str());
        *guard = Arc::new(Table::build(slots, ring));
        Ok(())
    }

    /// Sets the health of `instance_id` (an operator's or an external checker's verdict).
    pub async fn update_instance_health(
        &self,
        instance_id: &InstanceId,
        health: HealthStatus,
    ) -> Result<(), HealthUpdateError> {
        let table = self.inner.snapshot();
        let slot = table
            .get(instance_id)
            .ok_or_else(|| HealthUpdateError::NotFound(instance_id.clone()))?;
        slot.state.lock().health = health;
        Ok(())
    }

    /// The instance `instance_id` as registered, with its current health and load.
    pub fn instance(&self, instance_id: &InstanceId) -> Option<InstanceInfo> {
        let table = self.inner.snapshot();
        let slot = table.get(instance_id)?;
        let st = slot.state.lock();
        Some(InstanceInfo {
            id: slot.id.clone(),
            location: slot.location.clone(),
            capacity: slot.capacity,
            health_status: st.health,
            load_metrics: self.inner.load_of(slot, &st, Instant::now()),
            address: slot.address,
        })
    }

    /// Ids of the registered instances, in registration order.
    pub fn instance_ids(&self) -> Vec<InstanceId> {
        let table = self.inner.snapshot();
        table.slots.iter().map(|s| s.id.clone()).collect()
    }

    /// How traffic has been spread so far.
    pub fn load_distribution_stats(&self) -> LoadDistributionStats {
        let table = self.inner.snapshot();
        let now = Instant::now();
        let total: u64 = table
            .slots
            .iter()
            .map(|s| s.routed.load(Ordering::Relaxed))
            .sum();
        let instances: Vec<InstanceLoad> = table
            .slots
            .iter()
            .map(|slot| {
                let routed = slot.routed.load(Ordering::Relaxed);
                let st = slot.state.lock();
                InstanceLoad {
                    id: slot.id.clone(),
                    zone: slot.location.zone.clone(),
                    routed,
                    share: if total == 0 {
                        0.0
                    } else {
                        routed as f64 / total as f64
                    },
                    health_status: st.health,
                    ejected: st.passive.is_ejected(now),
                    ejections: st.passive.ejections,
                    load: self.inner.load_of(slot, &st, now),
                }
            })
            .collect();
        let per_weight: Vec<f64> = table
            .slots
            .iter()
            .map(|s| s.routed.load(Ordering::Relaxed) as f64 / s.capacity.weight)
            .collect();
        LoadDistributionStats {
            total_routed: total,
            routing_failures: self.inner.routing_failures.load(Ordering::Relaxed),
            instances,
            imbalance: coefficient_of_variation(&per_weight),
        }
    }

    /// How geo routing has decided so far.
    pub fn geo_routing_stats(&self) -> GeoRoutingStats {
        let g = &self.inner.geo;
        let with_origin = g.with_origin.load(Ordering::Relaxed);
        GeoRoutingStats {
            with_origin,
            local: g.local.load(Ordering::Relaxed),
            cross_zone: g.cross_zone.load(Ordering::Relaxed),
            spill_overs: g.spill_overs.load(Ordering::Relaxed),
            mean_distance_km: if with_origin == 0 {
                0.0
            } else {
                g.distance_m.load(Ordering::Relaxed) as f64 / 1000.0 / with_origin as f64
            },
        }
    }

    /// Probes every instance that has an address, at once, and applies the verdicts:
    /// `unhealthy_threshold` failed probes in a row mark it `Unhealthy`,
    /// `healthy_threshold` passed ones mark an `Unhealthy` instance `Healthy` again.
    pub async fn check_health(&self) -> Vec<(InstanceId, ProbeOutcome)> {
        let table = self.inner.snapshot();
        let mut probes = tokio::task::JoinSet::new();
        for (i, slot) in table.slots.iter().enumerate() {
            if let Some(addr) = slot.address {
                let checker = self.inner.health_checker.clone();
                probes.spawn(async move { (i, checker.probe(addr).await) });
            }
        }
        let mut results = Vec::new();
        while let Some(joined) = probes.join_next().await {
            let Ok((i, outcome)) = joined else { continue };
            let slot = &table.slots[i];
            let mut st = slot.state.lock();
            let verdict = self
                .inner
                .health_checker
                .record_probe(&mut st.passive, outcome.is_healthy());
            match verdict {
                Some(false) => st.health = HealthStatus::Unhealthy,
                Some(true) if st.health == HealthStatus::Unhealthy => {
                    st.health = HealthStatus::Healthy;
                }
                _ => {}
            }
            drop(st);
            results.push((slot.id.clone(), outcome));
        }
        results
    }

    /// Runs [`Self::check_health`] every `interval` on the current tokio runtime until the
    /// returned handle is aborted.
    pub fn spawn_health_checks(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.check_health().await;
            }
        })
    }
}

impl Table {
    fn build(slots: Vec<Arc<Slot>>, ring: HashRing) -> Self {
        let index = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Self { slots, index, ring }
    }

    fn get(&self, id: &InstanceId) -> Option<&Arc<Slot>> {
        self.index.get(id).map(|&i| &self.slots[i])
    }
}

impl Inner {
    fn since_epoch(&self, t: Instant) -> u128 {
        t.saturating_duration_since(self.epoch).as_nanos()
    }

    fn snapshot(&self) -> Arc<Table> {
        Arc::clone(&self.table.read())
    }

    fn load_of(&self, slot: &Slot, st: &SlotState, now: Instant) -> LoadMetrics {
        let mut rtt = st.rtt;
        LoadMetrics {
            in_flight: slot.in_flight.load(Ordering::Relaxed),
            latency_estimate: Duration::from_nanos(rtt.estimate_ns(now, self.config.decay) as u64),
            predicted_load: st.load.forecast(1.0),
            completed: st.completed,
            failures: st.failures,
        }
    }

    fn select(
        &self,
        request: &Request,
        exclude: Option<&InstanceId>,
    ) -> Result<Arc<Slot>, RoutingError> {
        let table = self.snapshot();
        let now = Instant::now();
        let mut routable = vec![false; table.slots.len()];
        let (mut unhealthy, mut ejected) = (0, 0);
        for (i, slot) in table.slots.iter().enumerate() {
            let st = slot.state.lock();
            if st.health == HealthStatus::Unhealthy {
                unhealthy += 1;
            } else if st.passive.is_ejected(now) {
                ejected += 1;
            } else {
                routable[i] = true;
            }
        }
        let mut candidates: Vec<usize> = (0..routable.len()).filter(|&i| routable[i]).collect();
        if candidates.is_empty() {
            self.routing_failures.fetch_add(1, Ordering::Relaxed);
            return Err(if table.slots.is_empty() {
                RoutingError::NoInstances
            } else {
                RoutingError::AllUnhealthy {
                    instances: table.slots.len(),
                    unhealthy,
                    ejected,
                }
            });
        }
        if let Some(ex) = exclude.and_then(|id| table.index.get(id))
            && candidates.len() > 1
        {
            candidates.retain(|i| i != ex);
            routable[*ex] = false;
        }
        let chosen = match self.config.policy {
            RoutingPolicy::RoundRobin => {
                candidates[self.next_rr.fetch_add(1, Ordering::Relaxed) % candidates.len()]
            }
            RoutingPolicy::LeastLoaded => p2c(&candidates, |i| {
                f64::from(table.slots[i].in_flight.load(Ordering::Relaxed))
            }),
            RoutingPolicy::Intelligent => {
                self.choose_intelligent(&table, request, &routable, candidates, now)
            }
        };
        let slot = Arc::clone(&table.slots[chosen]);
        if let Some(origin) = &request.origin {
            let g = &self.geo;
            g.with_origin.fetch_add(1, Ordering::Relaxed);
            if slot.location.zone == origin.zone {
                g.local.fetch_add(1, Ordering::Relaxed);
            } else {
                g.cross_zone.fetch_add(1, Ordering::Relaxed);
            }
            let m = (origin.distance_km(&slot.location) * 1000.0) as u64;
            g.distance_m.fetch_add(m, Ordering::Relaxed);
        }
        Ok(slot)
    }

    fn choose_intelligent(
        &self,
        table: &Table,
        request: &Request,
        routable: &[bool],
        mut candidates: Vec<usize>,
        now: Instant,
    ) -> usize {
        if let Some(key) = &request.affinity_key {
            let usable = |id: &str| {
                table
                    .index
                    .get(&InstanceId::from(id))
                    .is_some_and(|&i| routable[i])
            };
            if let Some(i) = table
                .ring
                .lookup(key, usable)
                .and_then(|id| table.index.get(&InstanceId::from(id)))
            {
                return *i;
            }
        }
        let open = |i: &usize| !table.slots[*i].saturated();
        if let Some(origin) = &request.origin {
            let local: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| table.slots[i].location.zone == origin.zone)
                .filter(open)
                .collect();
            if local.is_empty() {
                self.geo.spill_overs.fetch_add(1, Ordering::Relaxed);
            } else {
                candidates = local;
            }
        }
        if candidates.iter().any(open) {
            candidates.retain(open);
        }
        // Costs of every candidate (n is small; routing already visited each one), then
        // P2C among the candidates that are not dominated: an instance whose cost with no
        // load at all exceeds the cheapest instance's loaded cost cannot be the better
        // pick, and sampling it anyway is how plain P2C sends a share of traffic to the
        // slowest pair.
        let costs: Vec<(f64, f64)> = candidates
            .iter()
            .map(|&i| self.cost(&table.slots[i], request, now))
            .collect();
        let best = costs.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
        let viable: Vec<usize> = (0..candidates.len())
            .filter(|&k| costs[k].1 <= best)
            .collect();
        candidates[p2c(&viable, |k| costs[k].0)]
    }

    /// `(cost, unloaded cost)` of one more request on `slot`. The cost is the expected
    /// time to serve it: the latency estimate (the peak EWMA, floored by the mean age of
    /// the requests already in flight) divided by the capacity weight, times a queueing
    /// factor, plus the network cost of reaching it from the request's origin. The
    /// instance serves `max_concurrent` requests in parallel, so the factor is the load it
    /// would join (the larger of the in-flight count and its Holt forecast, plus this
    /// request) over `max_concurrent`, at least 1; with `max_concurrent = 1` this is
    /// tower's `rtt x (pending + 1)`, and so it is for an instance that has not answered
    /// yet (slow start). The unloaded cost is the same with a factor of 1.
    fn cost(&self, slot: &Slot, request: &Request, now: Instant) -> (f64, f64) {
        let in_flight = f64::from(slot.in_flight.load(Ordering::Relaxed));
        let mut st = slot.state.lock();
        let rtt = st
            .rtt
            .estimate_ns(now, self.config.decay)
            .max(st.pending_age_ns(self.since_epoch(now)));
        let load = in_flight.max(st.load.forecast(1.0)) + 1.0;
        // Slow start: until an instance has answered once, it is assumed to serve one
        // request at a time, so an unknown instance is not flooded before it shows its speed.
        let parallel = if st.rtt.is_sampled() {
            f64::from(slot.capacity.max_concurrent)
        } else {
            1.0
        };
        let health = st.health;
        drop(st);
        let mut per_request = rtt / slot.capacity.weight;
        if health == HealthStatus::Degraded {
            per_request *= self.config.degraded_penalty;
        }
        let mut network = 0.0;
        if let Some(origin) = &request.origin {
            let km = origin.distance_km(&slot.location);
            network += km * self.config.latency_per_km.as_nanos() as f64;
            if slot.location.zone != origin.zone {
                network += self.config.cross_zone_penalty.as_nanos() as f64;
            }
        }
        let queueing = (load / parallel).max(1.0);
        (per_request * queueing + network, per_request + network)
    }

    fn finish(&self, slot: &Slot, latency: Duration, ok: bool) {
        let now = Instant::now();
        let in_flight = slot.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        let may_eject = ok || self.may_eject_another(slot, now);
        let decay = self.config.decay;
        let mut st = slot.state.lock();
        st.completed += 1;
        if ok {
            st.rtt.observe(latency, now, decay);
        } else {
            st.failures += 1;
            // A failure often comes back fast (a refused connection); counting its short
            // latency would make a broken instance look like the best one.
            let current = Duration::from_nanos(st.rtt.estimate_ns(now, decay) as u64);
            let penalty = latency.max(current * 2).max(self.config.default_rtt);
            st.rtt.observe(penalty, now, decay);
        }
        st.load.observe(f64::from(in_flight));
        let ejected = self
            .health_checker
            .record(&mut st.passive, ok, now, may_eject);
        drop(st);
        if ejected {
            tracing::warn!(instance = %slot.id, "ejected after consecutive failures");
        }
        self.maybe_sweep(now);
    }

    /// Whether ejecting one more instance stays within `max_ejected_share`.
    fn may_eject_another(&self, except: &Slot, now: Instant) -> bool {
        let table = self.snapshot();
        let ejected = table
            .slots
            .iter()
            .filter(|s| !std::ptr::eq(s.as_ref(), except) && s.state.lock().passive.is_ejected(now))
            .count();
        (ejected + 1) as f64 <= self.config.health.max_ejected_share * table.slots.len() as f64
    }

    /// Runs outlier detection once per `outlier_interval`, on whichever completion comes
    /// first after the interval (no background task needed).
    fn maybe_sweep(&self, now: Instant) {
        let Some(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if now.saturating_duration_since(*last) < self.config.health.outlier_interval {
            return;
        }
        *last = now;
        let table = self.snapshot();
        // Locks every slot in index order; no other path holds two slot locks at once.
        let mut guards: Vec<_> = table.slots.iter().map(|s| s.state.lock()).collect();
        let already = guards.iter().filter(|g| g.passive.is_ejected(now)).count();
        let cap = (self.config.health.max_ejected_share * table.slots.len() as f64) as usize;
        let mut states: Vec<&mut PassiveState> =
            guards.iter_mut().map(|g| &mut g.passive).collect();
        let out = self
            .health_checker
            .sweep_outliers(&mut states, now, cap.saturating_sub(already));
        drop(guards);
        for i in out {
            tracing::warn!(instance = %table.slots[i].id, "ejected as a success-rate outlier");
        }
    }
}

/// Power of two choices: two distinct random candidates, the cheaper wins.
fn p2c(candidates: &[usize], mut cost: impl FnMut(usize) -> f64) -> usize {
    match candidates.len() {
        1 => candidates[0],
        n => {
            let a = random_below(n);
            let mut b = random_below(n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (candidates[a], candidates[b]);
            if cost(b) < cost(a) { b } else { a }
        }
    }
}

fn coefficient_of_variation(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn p2c_prefers_the_cheaper_of_two() {
        let picks: Vec<usize> = (0..200).map(|_| p2c(&[0, 1], |i| i as f64)).collect();
        assert!(picks.iter().all(|&p| p == 0));
        assert_eq!(p2c(&[5], |_| 1.0), 5);
    }

    #[test]
    fn cv_of_even_counts_is_zero() {
        assert_eq!(coefficient_of_variation(&[3.0, 3.0, 3.0]), 0.0);
        assert!(coefficient_of_variation(&[1.0, 5.0]) > 0.5);
    }

    #[test]
    fn slow_instance_gets_less_traffic() {
        rt().block_on(async {
            let lb = IntelligentLoadBalancer::default();
            for id in ["fast", "slow"] {
                lb.add_instance(InstanceInfo::new(id, GeoLocation::default()))
                    .await
                    .expect("add");
            }
            let slow = InstanceId::from("slow");
            let mut fast_count = 0;
            for _ in 0..400 {
                let g = lb.start_request(&Request::new()).expect("route");
                if *g.id() == slow {
                    // Simulate a slow answer without sleeping: record through the estimator.
                    let slot = Arc::clone(&g.slot);
                    drop(g);
                    lb.inner.finish_test(&slot, Duration::from_millis(100));
                } else {
                    fast_count += 1;
                    g.complete(true);
                }
            }
            assert!(fast_count > 300, "{fast_count}");
        });
    }

    impl Inner {
        /// Records a completion of `latency` without a request having been started.
        fn finish_test(&self, slot: &Slot, latency: Duration) {
            slot.in_flight.fetch_add(1, Ordering::Relaxed);
            self.finish(slot, latency, true);
        }
    }
}
