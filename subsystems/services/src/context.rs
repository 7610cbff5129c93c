//! How a service is initialised: its registration descriptor and initialisation context.

use std::time::Duration;

use crate::id::ServiceId;
use crate::limiter::ResourceBudget;

/// Order of admission when initialisations wait for the resource limiter: a higher priority
/// is admitted first, equal priorities first come, first served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum InitializationPriority {
    /// Only when nothing else waits.
    Background,
    /// Below the default.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Before the default.
    High,
    /// Before everything else.
    Critical,
}

/// How one initialisation runs: the resources it reserves, how long its factory may take,
/// and its admission priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceInitializationContext {
    /// Reserved from the manager's [`ResourceLimiter`](crate::ResourceLimiter): the memory for
    /// the service's whole life, the initialisation slots while its factory runs.
    pub available_resources: ResourceBudget,
    /// How long the factory may run (waiting for dependencies and for admission not counted).
    pub timeout: Duration,
    /// Admission order when the limiter's slots are all in use.
    pub priority: InitializationPriority,
}

impl ServiceInitializationContext {
    /// The default timeout: 30 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// This context with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This context with another priority.
    pub fn with_priority(mut self, priority: InitializationPriority) -> Self {
        self.priority = priority;
        self
    }

    /// This context with another budget.
    pub fn with_resources(mut self, budget: ResourceBudget) -> Self {
        self.available_resources = budget;
        self
    }
}

impl Default for ServiceInitializationContext {
    /// One initialisation slot and no memory, 30 seconds, normal priority.
    fn default() -> Self {
        Self {
            available_resources: ResourceBudget::default(),
            timeout: Self::DEFAULT_TIMEOUT,
            priority: InitializationPriority::Normal,
        }
    }
}

/// What [`LazyServiceManager::register`](crate::LazyServiceManager::register) needs besides
/// the factory: the id, the dependencies, and the context used when the service is initialised
/// on demand.
#[derive(Debug, Clone)]
pub struct ServiceDescriptor {
    id: ServiceId,
    dependencies: Vec<ServiceId>,
    context: ServiceInitializationContext,
}

impl ServiceDescriptor {
    /// A service without dependencies and with the default context.
    pub fn new(id: impl Into<ServiceId>) -> Self {
        Self {
            id: id.into(),
            dependencies: Vec::new(),
            context: ServiceInitializationContext::default(),
        }
    }

    /// Adds dependencies (initialised before this service, shut down after it).
    pub fn depends_on<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<ServiceId>,
    {
        self.dependencies.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Replaces the whole context.
    pub fn with_context(mut self, context: ServiceInitializationContext) -> Self {
        self.context = context;
        self
    }

    /// Sets the factory's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.context.timeout = timeout;
        self
    }

    /// Sets the admission priority.
    pub fn priority(mut self, priority: InitializationPriority) -> Self {
        self.context.priority = priority;
        self
    }

    /// Sets the resource budget.
    pub fn resources(mut self, budget: ResourceBudget) -> Self {
        self.context.available_resources = budget;
        self
    }

    /// The service's id.
    pub fn id(&self) -> &ServiceId {
        &self.id
    }

    /// Its declared dependencies.
    pub fn dependencies(&self) -> &[ServiceId] {
        &self.dependencies
    }

    /// Its on-demand initialisation context.
    pub fn context(&self) -> &ServiceInitializationContext {
        &self.context
    }

    pub(crate) fn into_parts(self) -> (ServiceId, Vec<ServiceId>, ServiceInitializationContext) {
        (self.id, self.dependencies, self.context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_order_from_background_to_critical() {
        use InitializationPriority::*;
        assert!(Background < Low && Low < Normal && Normal < High && High < Critical);
        assert_eq!(InitializationPriority::default(), Normal);
    }

    #[test]
    fn descriptor_builder_sets_every_field() {
        let d = ServiceDescriptor::new("lsp")
            .depends_on(["config", "fs"])
            .timeout(Duration::from_millis(250))
            .priority(InitializationPriority::High)
            .resources(ResourceBudget::new(1 << 20, 2));
        assert_eq!(d.id(), &ServiceId::from("lsp"));
        assert_eq!(d.dependencies().len(), 2);
        assert_eq!(d.context().timeout, Duration::from_millis(250));
        assert_eq!(d.context().priority, InitializationPriority::High);
        assert_eq!(d.context().available_resources.memory_bytes, 1 << 20);
        let ctx = ServiceInitializationContext::default()
            .with_timeout(Duration::from_secs(1))
            .with_priority(InitializationPriority::Low)
            .with_resources(ResourceBudget::new(5, 0));
        let d = d.with_context(ctx);
        assert_eq!(*d.context(), ctx);
    }
}
