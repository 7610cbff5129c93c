//! The data the balancer routes over: instances, their location, capacity, health and load, and requests.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Mean Earth radius used by the great-circle distance, in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// The name of a backend instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// An id from any string.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for InstanceId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for InstanceId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Where an instance (or a request's origin) is: coordinates and an availability zone.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoLocation {
    /// Degrees north, -90 to 90.
    pub latitude: f64,
    /// Degrees east, -180 to 180.
    pub longitude: f64,
    /// The zone (e.g. "eu-west-1a"); instances in the request's zone are "local".
    pub zone: String,
}

impl GeoLocation {
    /// A location in `zone`.
    pub fn new(latitude: f64, longitude: f64, zone: impl Into<String>) -> Self {
        Self {
            latitude,
            longitude,
            zone: zone.into(),
        }
    }

    /// Great-circle distance to `other` in kilometres (haversine formula on a sphere).
    pub fn distance_km(&self, other: &GeoLocation) -> f64 {
        let (p1, p2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dp = p2 - p1;
        let dl = (other.longitude - self.longitude).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

impl Default for GeoLocation {
    fn default() -> Self {
        Self::new(0.0, 0.0, "default")
    }
}

/// How much work an instance can take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceCapacity {
    /// Requests it serves in parallel at full speed; beyond that they queue, and an
    /// instance with this many in flight counts as saturated (32 by default).
    pub max_concurrent: u32,
    /// Relative processing capacity (e.g. cores); an instance of weight 2 gets about twice
    /// the load of one of weight 1 at the same latency.
    pub weight: f64,
}

impl Default for ResourceCapacity {
    fn default() -> Self {
        Self {
            max_concurrent: 32,
            weight: 1.0,
        }
    }
}

/// The health an operator or the active checker assigns to an instance.
///
/// Passive ejection (failures, outliers) is tracked apart from this and reported by
/// [`InstanceLoad::ejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthStatus {
    /// Serves normally.
    #[default]
    Healthy,
    /// Serves, but its cost is multiplied by `BalancerConfig::degraded_penalty`.
    Degraded,
    /// Gets no traffic.
    Unhealthy,
}

/// An instance's load as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadMetrics {
    /// Requests started and not yet completed.
    pub in_flight: u32,
    /// The peak-EWMA latency estimate; in [`InstanceInfo`] passed to `add_instance`, a
    /// non-zero value seeds the estimate instead of `BalancerConfig::default_rtt`.
    pub latency_estimate: Duration,
    /// The Holt forecast of `in_flight` one step ahead.
    pub predicted_load: f64,
    /// Requests completed.
    pub completed: u64,
    /// Requests that completed with a failure.
    pub failures: u64,
}

/// One backend instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceInfo {
    /// Its unique name.
    pub id: InstanceId,
    /// Where it runs.
    pub location: GeoLocation,
    /// How much it can take.
    pub capacity: ResourceCapacity,
    /// Its assigned health.
    pub health_status: HealthStatus,
    /// Its load (a snapshot when read back).
    pub load_metrics: LoadMetrics,
    /// Its HTTP address, for the proxy and the active health checks.
    pub address: Option<SocketAddr>,
}

impl InstanceInfo {
    /// A healthy instance with default capacity at `location`.
    pub fn new(id: impl Into<InstanceId>, location: GeoLocation) -> Self {
        Self {
            id: id.into(),
            location,
            capacity: ResourceCapacity::default(),
            health_status: HealthStatus::Healthy,
            load_metrics: LoadMetrics::default(),
            address: None,
        }
    }

    /// The same instance with capacity `capacity`.
    pub fn with_capacity(mut self, capacity: ResourceCapacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// The same instance reachable at `address`.
    pub fn with_address(mut self, address: SocketAddr) -> Self {
        self.address = Some(address);
        self
    }
}

/// What the balancer knows about a request when it routes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Requests with the same key go to the same instance while it is routable
    /// (consistent hashing), e.g. a session or a model-cache key.
    pub affinity_key: Option<String>,
    /// Where the request comes from, for geo routing.
    pub origin: Option<GeoLocation>,
}

impl Request {
    /// A request without affinity or origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same request with affinity key `key`.
    pub fn with_affinity(mut self, key: impl Into<String>) -> Self {
        self.affinity_key = Some(key.into());
        self
    }

    /// The same request coming from `origin`.
    pub fn with_origin(mut self, origin: GeoLocation) -> Self {
        self.origin = Some(origin);
        self
    }
}

/// How the balancer picks among routable instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutingPolicy {
    /// Consistent hashing for requests with an affinity key, otherwise geo filtering then
    /// power-of-two-choices over peak-EWMA latency x forecast load / capacity.
    #[default]
    Intelligent,
    /// Power-of-two-choices over in-flight requests alone.
    LeastLoaded,
    /// Each routable instance in turn: the baseline.
    RoundRobin,
}

/// Tuning of the balancer; `Default` gives the documented values.
#[derive(Debug, Clone, PartialEq)]
pub struct BalancerConfig {
    /// The policy.
    pub policy: RoutingPolicy,
    /// Latency estimate of an instance before its first response (30 ms, as tower's example).
    pub default_rtt: Duration,
    /// Decay period of the peak-EWMA estimate (10 s).
    pub decay: Duration,
    /// Smoothing of the load level in the Holt forecast (0.5).
    pub load_alpha: f64,
    /// Smoothing of the load trend in the Holt forecast (0.1).
    pub load_beta: f64,
    /// Latency added to the estimate of an instance outside the request's zone (20 ms).
    pub cross_zone_penalty: Duration,
    /// Latency added per kilometre between origin and instance (10 µs: light in fibre,
    /// both ways).
    pub latency_per_km: Duration,
    /// Cost multiplier of a `Degraded` instance (2).
    pub degraded_penalty: f64,
    /// Virtual nodes per instance on the hash ring (160, as ketama).
    pub ring_replicas: u32,
    /// Passive and active health checking.
    pub health: crate::health::HealthConfig,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            policy: RoutingPolicy::Intelligent,
            default_rtt: Duration::from_millis(30),
            decay: Duration::from_secs(10),
            load_alpha: 0.5,
            load_beta: 0.1,
            cross_zone_penalty: Duration::from_millis(20),
            latency_per_km: Duration::from_micros(10),
            degraded_penalty: 2.0,
            ring_replicas: 160,
            health: crate::health::HealthConfig::default(),
        }
    }
}

/// Per-instance figures of [`crate::LoadDistributionStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceLoad {
    /// The instance.
    pub id: InstanceId,
    /// Its zone.
    pub zone: String,
    /// Requests routed to it.
    pub routed: u64,
    /// Its share of all routed requests, 0 to 1.
    pub share: f64,
    /// Its health and load now.
    pub health_status: HealthStatus,
    /// Whether passive health checking has it ejected now.
    pub ejected: bool,
    /// Times it was ejected.
    pub ejections: u32,
    /// Its load now.
    pub load: LoadMetrics,
}

/// How traffic is spread over the instances.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadDistributionStats {
    /// Requests routed in all.
    pub total_routed: u64,
    /// Routing attempts that found no instance.
    pub routing_failures: u64,
    /// One entry per registered instance, in registration order.
    pub instances: Vec<InstanceLoad>,
    /// Coefficient of variation of the weight-normalized routed counts (0 = perfectly even).
    pub imbalance: f64,
}

/// How geo routing decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeoRoutingStats {
    /// Requests that carried an origin.
    pub with_origin: u64,
    /// Of those, sent to an instance in the origin's zone.
    pub local: u64,
    /// Of those, sent to another zone.
    pub cross_zone: u64,
    /// Times the local zone was saturated or had no routable instance, so all zones were
    /// candidates.
    pub spill_overs: u64,
    /// Mean great-circle distance between origin and chosen instance, km.
    pub mean_distance_km: f64,
}
