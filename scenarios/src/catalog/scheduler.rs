//! The `scheduler/*` scenarios: ids, engines, bench targets and subjects.
//!
//! `perflab` is `rust_ai_ide_scheduler::WorkStealingScheduler`; the anchors are a rayon
//! `ThreadPool` and tokio's multi-threaded runtime, all with two workers.

use super::{CPU, Engine, Spec};

/// Subjects of every scheduler scenario.
const SUBJECTS: &[&str] = &["perflab", "rayon", "tokio"];

const fn criterion(id: &'static str) -> Spec {
    Spec {
        id,
        engine: Engine::Criterion,
        bench: Some("scheduler"),
        subjects: SUBJECTS,
        requires: CPU,
    }
}

/// Every `scheduler/*` scenario.
pub const SCENARIOS: &[Spec] = &[
    criterion("scheduler/spawn_many/n10k"),
    criterion("scheduler/chained_spawn/depth1k"),
    criterion("scheduler/ping_pong/n1k"),
    criterion("scheduler/yield_many/n1k"),
    criterion("scheduler/fib/n30"),
    criterion("scheduler/sort/u64_10m"),
    Spec {
        id: "scheduler/priority/mixed80",
        engine: Engine::Load,
        bench: None,
        subjects: SUBJECTS,
        requires: CPU,
    },
];
