//! Initialisation statistics: per service state, times, attempts and errors.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::id::ServiceId;
use crate::limiter::ResourceUsage;

/// How many error messages a service keeps (the most recent ones).
pub const MAX_KEPT_ERRORS: usize = 8;

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServiceState {
    /// Registered, never attempted.
    #[default]
    Uninitialized,
    /// An attempt is running.
    Initializing,
    /// Initialised: `get_service` returns it without waiting.
    Ready,
    /// The last attempt failed; the next request tries again.
    Failed,
    /// Shut down with the manager.
    ShutDown,
}

/// Initialisation record of one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceStats {
    /// Current state.
    pub state: ServiceState,
    /// Attempts started (including those that failed before the factory ran, because a
    /// dependency failed or the limiter refused).
    pub attempts: u32,
    /// Attempts that failed or were cancelled.
    pub failures: u32,
    /// Those of `failures` that stopped because a dependency failed (the factory never ran).
    pub dependency_failures: u32,
    /// Factory run time of the successful attempt.
    pub init_time: Option<Duration>,
    /// Factory run time of all attempts together.
    pub total_init_time: Duration,
    /// Time spent waiting for the resource limiter, all attempts together.
    pub queue_wait: Duration,
    /// Position in the order services became ready (0 for the first), if ready.
    pub ready_seq: Option<u64>,
    /// The most recent error messages (at most [`MAX_KEPT_ERRORS`]), oldest first, each with
    /// its chain of causes.
    pub errors: Vec<String>,
}

/// A snapshot of every service's record and of the resource limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializationStats {
    /// Per service, by id.
    pub services: BTreeMap<ServiceId, ServiceStats>,
    /// The resource limiter's state and counters.
    pub resources: ResourceUsage,
}

impl InitializationStats {
    /// The record of `id`.
    pub fn service(&self, id: &str) -> Option<&ServiceStats> {
        self.services.get(id)
    }

    /// How many services are in `state`.
    pub fn count(&self, state: ServiceState) -> usize {
        self.services.values().filter(|s| s.state == state).count()
    }

    /// Attempts of all services together.
    pub fn total_attempts(&self) -> u64 {
        self.services.values().map(|s| u64::from(s.attempts)).sum()
    }

    /// Failed attempts of all services together.
    pub fn total_failures(&self) -> u64 {
        self.services.values().map(|s| u64::from(s.failures)).sum()
    }

    /// Failed attempts of all services together that failed on their own (not because a
    /// dependency failed): factory errors, timeouts, panics, refusals, cancellations.
    pub fn total_own_failures(&self) -> u64 {
        self.services
            .values()
            .map(|s| u64::from(s.failures - s.dependency_failures))
            .sum()
    }

    /// Factory time of the ready services' successful attempts together.
    pub fn total_init_time(&self) -> Duration {
        self.services.values().filter_map(|s| s.init_time).sum()
    }
}

impl ServiceStats {
    pub(crate) fn record_error(&mut self, message: String) {
        self.failures += 1;
        self.state = ServiceState::Failed;
        if self.errors.len() == MAX_KEPT_ERRORS {
            self.errors.remove(0);
        }
        self.errors.push(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::ResourceLimiter;

    #[test]
    fn errors_are_bounded_and_counted() {
        let mut s = ServiceStats::default();
        for i in 0..MAX_KEPT_ERRORS + 3 {
            s.record_error(format!("e{i}"));
        }
        assert_eq!(s.failures as usize, MAX_KEPT_ERRORS + 3);
        assert_eq!(s.errors.len(), MAX_KEPT_ERRORS);
        assert_eq!(s.errors[0], "e3");
        assert_eq!(s.state, ServiceState::Failed);
    }

    #[test]
    fn totals_sum_the_services() {
        let mut services = BTreeMap::new();
        services.insert(
            ServiceId::from("a"),
            ServiceStats {
                state: ServiceState::Ready,
                attempts: 2,
                failures: 1,
                init_time: Some(Duration::from_millis(3)),
                ..ServiceStats::default()
            },
        );
        services.insert(
            ServiceId::from("b"),
            ServiceStats {
                attempts: 1,
                failures: 1,
                dependency_failures: 1,
                state: ServiceState::Failed,
                ..ServiceStats::default()
            },
        );
        let s = InitializationStats {
            services,
            resources: ResourceLimiter::unlimited().usage(),
        };
        assert_eq!(s.total_attempts(), 3);
        assert_eq!(s.total_failures(), 2);
        assert_eq!(s.total_own_failures(), 1);
        assert_eq!(s.count(ServiceState::Ready), 1);
        assert_eq!(s.total_init_time(), Duration::from_millis(3));
        assert_eq!(s.service("b").map(|b| b.state), Some(ServiceState::Failed));
    }
}
