//! The crate's error types: registration, resource admission, initialisation, lookup and preload.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::id::ServiceId;
use crate::limiter::{ResourceBudget, ResourceCapacity};

/// The error a service factory returns: any error type, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`LazyServiceManager::register`](crate::LazyServiceManager::register) (or
/// [`DependencyGraph::add`](crate::DependencyGraph::add)) refused a service. The graph is
/// left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistrationError {
    /// A service with this id is already registered.
    #[error("service `{0}` is already registered")]
    Duplicate(ServiceId),
    /// The service lists one dependency twice.
    #[error("service `{service}` lists dependency `{dependency}` twice")]
    DuplicateDependency {
        /// The service being registered.
        service: ServiceId,
        /// The repeated dependency.
        dependency: ServiceId,
    },
    /// The new edges would close a cycle. `cycle` starts and ends with `service`, and each
    /// element depends on the next.
    #[error(
        "registering `{service}` would create the dependency cycle {}",
        CyclePath(cycle)
    )]
    Cycle {
        /// The service being registered.
        service: ServiceId,
        /// The cycle, `service -> ... -> service`.
        cycle: Vec<ServiceId>,
    },
}

/// Why the [`ResourceLimiter`](crate::ResourceLimiter) refused a budget.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceError {
    /// The budget is larger than the limiter's whole capacity: it can never be admitted.
    #[error("budget of {requested} exceeds the limiter's capacity of {capacity}")]
    ExceedsCapacity {
        /// What was asked for.
        requested: ResourceBudget,
        /// What the limiter has in all.
        capacity: ResourceCapacity,
    },
    /// Not enough memory is left. Memory is held for a service's whole life, so waiting would
    /// only end when another service shuts down: the request is rejected instead of queued.
    #[error(
        "memory budget exhausted: {requested} bytes requested, {available} of {capacity} bytes available"
    )]
    MemoryExhausted {
        /// Bytes asked for.
        requested: u64,
        /// Bytes free at the time of the request.
        available: u64,
        /// The limiter's memory capacity.
        capacity: u64,
    },
    /// `try_acquire` found no free initialisation slots (`acquire` would have queued).
    #[error("initialisation slots busy: {requested} requested, {in_use} of {capacity} in use")]
    SlotsBusy {
        /// Slots asked for.
        requested: u32,
        /// Slots held by running initialisations.
        in_use: u32,
        /// The limiter's slot capacity.
        capacity: u32,
    },
}

/// Why a service could not be initialised. Every variant leaves the service uninitialised;
/// the next request tries again. Cheap to clone: requests that were waiting on one attempt all
/// receive its error.
#[derive(Debug, Clone, Error)]
pub enum InitializationError {
    /// No service with this id is registered.
    #[error("no service named `{0}` is registered")]
    UnknownService(ServiceId),
    /// The service depends on an id that was never registered.
    #[error("service `{service}` depends on `{dependency}`, which is not registered")]
    MissingDependency {
        /// The service being initialised.
        service: ServiceId,
        /// The unregistered dependency.
        dependency: ServiceId,
    },
    /// A dependency failed to initialise, so the service's own factory did not run.
    #[error("service `{service}` cannot start: dependency `{dependency}` failed")]
    DependencyFailed {
        /// The service being initialised.
        service: ServiceId,
        /// The dependency that failed.
        dependency: ServiceId,
        /// Why it failed.
        #[source]
        source: Box<InitializationError>,
    },
    /// The factory did not finish within the context's timeout; it was cancelled.
    #[error("service `{service}` did not initialise within {timeout:?}")]
    Timeout {
        /// The service being initialised.
        service: ServiceId,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The resource limiter refused the service's budget.
    #[error("service `{service}` was refused by the resource limiter")]
    Resources {
        /// The service being initialised.
        service: ServiceId,
        /// The limiter's reason.
        #[source]
        source: ResourceError,
    },
    /// The factory returned an error.
    #[error("service `{service}` failed to initialise")]
    Failed {
        /// The service being initialised.
        service: ServiceId,
        /// The factory's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The factory panicked.
    #[error("service `{service}` panicked while initialising")]
    Panicked {
        /// The service being initialised.
        service: ServiceId,
    },
    /// The manager has been shut down.
    #[error("the service manager is shut down")]
    ShutDown,
}

impl InitializationError {
    /// The service this error is about (`None` for [`InitializationError::ShutDown`]).
    pub fn service(&self) -> Option<&ServiceId> {
        match self {
            Self::UnknownService(service)
            | Self::MissingDependency { service, .. }
            | Self::DependencyFailed { service, .. }
            | Self::Timeout { service, .. }
            | Self::Resources { service, .. }
            | Self::Failed { service, .. }
            | Self::Panicked { service } => Some(service),
            Self::ShutDown => None,
        }
    }

    /// The innermost error of a chain of [`InitializationError::DependencyFailed`]: the
    /// failure that actually happened.
    pub fn root_cause(&self) -> &InitializationError {
        let mut e = self;
        while let Self::DependencyFailed { source, .. } = e {
            e = source;
        }
        e
    }
}

/// Why `get_service` returned no service.
#[derive(Debug, Clone, Error)]
pub enum ServiceError {
    /// The service (or one of its dependencies) could not be initialised, or is unknown.
    #[error(transparent)]
    Initialization(#[from] InitializationError),
    /// The service exists but is of another type than the one asked for.
    #[error("service `{service}` is a `{actual}`, not a `{requested}`")]
    TypeMismatch {
        /// The service asked for.
        service: ServiceId,
        /// The type asked for.
        requested: &'static str,
        /// The type it was registered with.
        actual: &'static str,
    },
    /// A factory asked its [`ServiceDeps`](crate::ServiceDeps) for a service it did not declare.
    #[error("`{dependency}` is not a declared dependency of `{service}`")]
    NotADependency {
        /// The service whose factory asked.
        service: ServiceId,
        /// What it asked for.
        dependency: String,
    },
}

/// Some services of a `preload_services` call failed; the others were initialised.
#[derive(Debug, Clone, Error)]
#[error("{} of {requested} services failed to preload: {}", failures.len(), FailedIds(failures))]
pub struct PreloadError {
    /// How many services the call asked for.
    pub requested: usize,
    /// One error per requested service that is not ready.
    pub failures: Vec<InitializationError>,
}

/// Displays `a -> b -> a`.
struct CyclePath<'a>(&'a [ServiceId]);

impl fmt::Display for CyclePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "`{id}`")?;
        }
        Ok(())
    }
}

/// Displays the first few failed ids of a preload.
struct FailedIds<'a>(&'a [InitializationError]);

impl fmt::Display for FailedIds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 5;
        for (i, e) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match e.service() {
                Some(id) => write!(f, "`{id}`")?,
                None => f.write_str("(shut down)")?,
            }
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_is_named_in_the_message() {
        let e = RegistrationError::Cycle {
            service: "a".into(),
            cycle: vec!["a".into(), "b".into(), "a".into()],
        };
        assert_eq!(
            e.to_string(),
            "registering `a` would create the dependency cycle `a` -> `b` -> `a`"
        );
    }

    #[test]
    fn root_cause_walks_dependency_chains() {
        let e = InitializationError::DependencyFailed {
            service: "c".into(),
            dependency: "b".into(),
            source: Box::new(InitializationError::DependencyFailed {
                service: "b".into(),
                dependency: "a".into(),
                source: Box::new(InitializationError::Timeout {
                    service: "a".into(),
                    timeout: Duration::from_millis(5),
                }),
            }),
        };
        assert_eq!(e.root_cause().service().map(ServiceId::as_str), Some("a"));
        assert!(matches!(
            e.root_cause(),
            InitializationError::Timeout { .. }
        ));
    }

    #[test]
    fn preload_error_lists_the_first_failures() {
        let failures = (0..7)
            .map(|i| InitializationError::Panicked {
                service: format!("s{i}").into(),
            })
            .collect();
        let e = PreloadError {
            requested: 10,
            failures,
        };
        assert_eq!(
            e.to_string(),
            "7 of 10 services failed to preload: `s0`, `s1`, `s2`, `s3`, `s4` and 2 more"
        );
    }
}
