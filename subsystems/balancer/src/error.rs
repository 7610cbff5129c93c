//! The error types of the crate, one per family of calls, as the 2025 API document names them.

use std::io;
use std::net::SocketAddr;

use crate::types::InstanceId;

/// Why [`crate::IntelligentLoadBalancer::route_request`] found no instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// The balancer has no instance at all.
    #[error("no instances registered")]
    NoInstances,
    /// Every instance is unhealthy or ejected.
    #[error("no healthy instance: {unhealthy} of {instances} unhealthy, {ejected} ejected")]
    AllUnhealthy {
        /// Registered instances.
        instances: usize,
        /// Instances marked [`crate::HealthStatus::Unhealthy`].
        unhealthy: usize,
        /// Instances ejected by passive health checking (and not unhealthy).
        ejected: usize,
    },
}

/// Why an instance could not be added or removed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceError {
    /// An instance with this id is already registered.
    #[error("instance {0} is already registered")]
    Duplicate(InstanceId),
    /// No instance with this id is registered.
    #[error("instance {0} is not registered")]
    NotFound(InstanceId),
    /// The instance's description cannot be used for routing.
    #[error("invalid instance {id}: {reason}")]
    Invalid {
        /// The instance.
        id: InstanceId,
        /// What is wrong, e.g. "capacity weight must be positive and finite".
        reason: &'static str,
    },
}

/// Why a health update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthUpdateError {
    /// No instance with this id is registered.
    #[error("instance {0} is not registered")]
    NotFound(InstanceId),
}

/// Why the reverse proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The listening socket could not be bound.
    #[error("cannot bind proxy to {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_fragments() {
        let e = RoutingError::AllUnhealthy {
            instances: 3,
            unhealthy: 1,
            ejected: 2,
        };
        assert_eq!(
            e.to_string(),
            "no healthy instance: 1 of 3 unhealthy, 2 ejected"
        );
        let e = InstanceError::Duplicate(InstanceId::from("a"));
        assert_eq!(e.to_string(), "instance a is already registered");
        assert!(!e.to_string().ends_with('.'));
    }
}
