//! The `plugins/*` scenarios: ids, engines, bench targets and subjects.
//!
//! `perflab` is the plugin sandbox of `rust-ai-ide-plugins`; `wasmtime` is raw wasmtime with
//! the same engine configuration (`RuntimeConfig::engine_config`); `native` a Rust function;
//! `unmetered` raw wasmtime with neither epoch interruption nor fuel.

use super::{CPU, Engine, Spec};

/// Every `plugins/*` scenario.
pub const SCENARIOS: &[Spec] = &[
    Spec {
        id: "plugins/install/local",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab"],
        requires: CPU,
    },
    Spec {
        id: "plugins/instantiate/pooling",
        engine: Engine::Criterion,
        bench: Some("plugins"),
        subjects: &["perflab", "wasmtime"],
        requires: CPU,
    },
    Spec {
        id: "plugins/instantiate/on_demand",
        engine: Engine::Criterion,
        bench: Some("plugins"),
        subjects: &["perflab", "wasmtime"],
        requires: CPU,
    },
    Spec {
        id: "plugins/call_overhead/trivial",
        engine: Engine::Criterion,
        bench: Some("plugins"),
        subjects: &["perflab", "wasmtime", "native"],
        requires: CPU,
    },
    Spec {
        id: "plugins/slowdown/epoch",
        engine: Engine::Criterion,
        bench: Some("plugins"),
        subjects: &["perflab", "unmetered"],
        requires: CPU,
    },
    Spec {
        id: "plugins/slowdown/fuel",
        engine: Engine::Criterion,
        bench: Some("plugins"),
        subjects: &["perflab", "unmetered"],
        requires: CPU,
    },
    Spec {
        id: "plugins/runaway_stop/epoch",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab"],
        requires: CPU,
    },
];
