//! The `balancer/*` scenarios: ids, engines, bench targets and subjects.

use super::{CPU, Engine, Spec};

/// Subjects of tower's balance workload: the intelligent balancer (told each endpoint's
/// capacity of 500 parallel requests), tower's P2C balancers (peak-EWMA and pending
/// requests), the round-robin policy as the baseline, and the intelligent balancer left
/// at the default capacity (32), to show what the capacity knowledge is worth.
const TOWER_SUBJECTS: &[&str] = &[
    "perflab",
    "tower_p2c_peak_ewma",
    "p2c_least_loaded",
    "round_robin",
    "perflab_default_capacity",
];

/// Every `balancer/*` scenario. `balancer/tower_workload/*`: tower's balance example
/// (load). `balancer/proxy/users500`: 500 HTTP users through the proxy (load).
/// `balancer/route/instances10`: one routing decision and its completion (criterion).
pub const SCENARIOS: &[Spec] = &[
    Spec {
        id: "balancer/route/instances10",
        engine: Engine::Criterion,
        bench: Some("balancer"),
        subjects: &["perflab", "round_robin"],
        requires: CPU,
    },
    Spec {
        id: "balancer/tower_workload/steady",
        engine: Engine::Load,
        bench: None,
        subjects: TOWER_SUBJECTS,
        requires: CPU,
    },
    Spec {
        id: "balancer/tower_workload/kill2",
        engine: Engine::Load,
        bench: None,
        subjects: TOWER_SUBJECTS,
        requires: CPU,
    },
    Spec {
        id: "balancer/tower_workload/zones",
        engine: Engine::Load,
        bench: None,
        subjects: TOWER_SUBJECTS,
        requires: CPU,
    },
    Spec {
        id: "balancer/proxy/users500",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab"],
        requires: CPU,
    },
];
