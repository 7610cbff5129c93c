//! An intelligent load balancer for the Rust AI IDE: P2C over peak-EWMA latency, Holt load forecasts, geo zones, consistent hashing, health checks and a hyper reverse proxy.
#![doc = include_str!("../README.md")]

mod balancer;
mod error;
mod estimate;
mod health;
mod proxy;
mod ring;
mod types;

pub use balancer::{IntelligentLoadBalancer, RequestGuard};
pub use error::{HealthUpdateError, InstanceError, ProxyError, RoutingError};
pub use estimate::LoadPredictor;
pub use health::{HealthChecker, HealthConfig, ProbeOutcome};
pub use proxy::{AFFINITY_HEADER, BalancerProxy, ORIGIN_ZONE_HEADER, ProxyConfig, UPSTREAM_HEADER};
pub use types::{
    BalancerConfig, GeoLocation, GeoRoutingStats, HealthStatus, InstanceId, InstanceInfo,
    InstanceLoad, LoadDistributionStats, LoadMetrics, Request, ResourceCapacity, RoutingPolicy,
};
