//! The `services/*` scenarios: ids, engines, bench targets and subjects.

use super::{CPU, Engine, Spec};

/// Every `services/*` scenario. `perflab` is the `LazyServiceManager`; `oncelock` and
/// `tokio_oncecell` are a bare `std::sync::OnceLock` / `tokio::sync::OnceCell` get (criterion),
/// `oncelock` and `rwlock` hand-rolled registries (a map of `OnceLock`s, a map behind a
/// `RwLock`) under the two-thread hammer; `eager` starts every service, then gets one.
pub const SCENARIOS: &[Spec] = &[
    Spec {
        id: "services/get/warm",
        engine: Engine::Criterion,
        bench: Some("services"),
        subjects: &["perflab", "oncelock", "tokio_oncecell"],
        requires: CPU,
    },
    Spec {
        id: "services/first_request/leaf200",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab", "eager"],
        requires: CPU,
    },
    Spec {
        id: "services/get_hammer/threads2",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab", "oncelock", "rwlock"],
        requires: CPU,
    },
];
