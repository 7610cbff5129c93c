//! The `Service` trait, the dependencies handed to a factory, and the type-erased factory.

use std::any::{Any, type_name};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{BoxError, ServiceError};
use crate::id::ServiceId;

/// A boxed, sendable future (the return type of [`Service::shutdown`]).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A value the [`LazyServiceManager`](crate::LazyServiceManager) can hold. Implement it with
/// an empty `impl` block, or override `shutdown` to release what the service holds.
pub trait Service: Any + Send + Sync {
    /// Called once by [`LazyServiceManager::shutdown`](crate::LazyServiceManager::shutdown),
    /// after every service that depends on this one has been shut down.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// The initialised dependencies of the service being built, handed to its factory. Only the
/// dependencies declared at registration are here.
pub struct ServiceDeps {
    service: ServiceId,
    deps: Vec<Resolved>,
}

impl ServiceDeps {
    /// The id of the service being built.
    pub fn service(&self) -> &ServiceId {
        &self.service
    }

    /// The dependency `id`, as its concrete type.
    pub fn get<T: Service>(&self, id: &str) -> Result<Arc<T>, ServiceError> {
        let dep = self.find(id)?;
        downcast(&dep.id, &dep.instance, dep.type_name)
    }

    /// The dependency `id`, as a trait object.
    pub fn get_dyn(&self, id: &str) -> Result<Arc<dyn Service>, ServiceError> {
        Ok(Arc::clone(&self.find(id)?.instance))
    }

    /// The declared dependencies, in declaration order.
    pub fn ids(&self) -> impl Iterator<Item = &ServiceId> {
        self.deps.iter().map(|d| &d.id)
    }

    /// How many dependencies there are.
    pub fn len(&self) -> usize {
        self.deps.len()
    }

    /// Whether the service has no dependencies.
    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    pub(crate) fn new(service: ServiceId, deps: Vec<Resolved>) -> Self {
        Self { service, deps }
    }

    fn find(&self, id: &str) -> Result<&Resolved, ServiceError> {
        // At most a handful of dependencies: a linear scan beats hashing.
        self.deps
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| ServiceError::NotADependency {
                service: self.service.clone(),
                dependency: id.to_owned(),
            })
    }
}

impl std::fmt::Debug for ServiceDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceDeps")
            .field("service", &self.service)
            .field("deps", &self.deps.iter().map(|d| &d.id).collect::<Vec<_>>())
            .finish()
    }
}

/// One initialised dependency.
pub(crate) struct Resolved {
    pub(crate) id: ServiceId,
    pub(crate) instance: Arc<dyn Service>,
    pub(crate) type_name: &'static str,
}

/// A registered factory with its service type erased.
pub(crate) type Factory = Box<
    dyn Fn(ServiceDeps) -> BoxFuture<'static, Result<Arc<dyn Service>, BoxError>> + Send + Sync,
>;

/// Erases the service type of `factory`.
pub(crate) fn erase<T, F, Fut>(factory: F) -> Factory
where
    T: Service,
    F: Fn(ServiceDeps) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
{
    Box::new(move |deps| {
        let fut = factory(deps);
        Box::pin(async move { fut.await.map(|s| Arc::new(s) as Arc<dyn Service>) })
    })
}

/// `instance` as a `T`, or a type mismatch naming both types.
pub(crate) fn downcast<T: Service>(
    id: &ServiceId,
    instance: &Arc<dyn Service>,
    actual: &'static str,
) -> Result<Arc<T>, ServiceError> {
    let any: Arc<dyn Any + Send + Sync> = Arc::<dyn Service>::clone(instance);
    any.downcast::<T>().map_err(|_| ServiceError::TypeMismatch {
        service: id.clone(),
        requested: type_name::<T>(),
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Config(u32);
    impl Service for Config {}
    struct Other;
    impl Service for Other {}

    fn deps() -> ServiceDeps {
        ServiceDeps::new(
            "app".into(),
            vec![Resolved {
                id: "config".into(),
                instance: Arc::new(Config(7)),
                type_name: type_name::<Config>(),
            }],
        )
    }

    #[test]
    fn typed_access_to_declared_dependencies() {
        let d = deps();
        assert_eq!(d.get::<Config>("config").expect("declared").0, 7);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d.ids().map(ServiceId::as_str).collect::<Vec<_>>(),
            ["config"]
        );
        assert!(d.get_dyn("config").is_ok());
    }

    #[test]
    fn wrong_type_and_undeclared_ids_are_errors() {
        let d = deps();
        let e = d.get::<Other>("config").err().expect("mismatch");
        assert!(e.to_string().contains("Config"), "{e}");
        assert!(matches!(
            d.get::<Config>("db"),
            Err(ServiceError::NotADependency { .. })
        ));
    }

    #[tokio::test]
    async fn erased_factories_build_the_service() {
        let f = erase(|_deps| async { Ok(Config(3)) });
        let s = f(ServiceDeps::new("c".into(), Vec::new()))
            .await
            .expect("built");
        s.shutdown().await;
        let c = downcast::<Config>(&"c".into(), &s, "Config").expect("a Config");
        assert_eq!(c.0, 3);
    }
}
