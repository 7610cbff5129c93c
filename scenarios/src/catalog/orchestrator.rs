//! The `orchestrator/*` scenarios: deadline-bound task mixes with an outage of the preferred model, and the per-task overhead.

use super::{CPU, Engine, Spec};

/// Subjects of the deadline-mix scenarios: the orchestrator, then round-robin over every
/// model (no deadline or quality awareness, one retry on the next model) and the preferred
/// model alone (naive retries on it).
const MIX_SUBJECTS: &[&str] = &["perflab", "round_robin", "static_preferred"];

/// Every `orchestrator/*` scenario.
pub const SCENARIOS: &[Spec] = &[
    Spec {
        id: "orchestrator/deadline_mix/c8",
        engine: Engine::Load,
        bench: None,
        subjects: MIX_SUBJECTS,
        requires: CPU,
    },
    Spec {
        id: "orchestrator/deadline_mix/c64",
        engine: Engine::Load,
        bench: None,
        subjects: MIX_SUBJECTS,
        requires: CPU,
    },
    Spec {
        id: "orchestrator/execute_task/models4",
        engine: Engine::Criterion,
        bench: Some("orchestrator"),
        subjects: &["perflab", "direct"],
        requires: CPU,
    },
];
