//! Lazy, dependency-ordered service initialisation for the Rust AI IDE.
#![doc = include_str!("../README.md")]

mod context;
mod error;
mod graph;
mod id;
mod limiter;
mod manager;
mod service;
mod stats;

pub use context::{InitializationPriority, ServiceDescriptor, ServiceInitializationContext};
pub use error::{
    BoxError, InitializationError, PreloadError, RegistrationError, ResourceError, ServiceError,
};
pub use graph::DependencyGraph;
pub use id::ServiceId;
pub use limiter::{
    MemoryReservation, ResourceBudget, ResourceCapacity, ResourceLimiter, ResourcePermit,
    ResourceUsage,
};
pub use manager::LazyServiceManager;
pub use service::{BoxFuture, Service, ServiceDeps};
pub use stats::{InitializationStats, MAX_KEPT_ERRORS, ServiceState, ServiceStats};
