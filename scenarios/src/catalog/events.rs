//! The `events/*` scenarios: ids, engines, bench targets and subjects.

use super::{CPU, Engine, Spec};

/// Subjects of the fan-out scenarios: the event bus, one tokio broadcast channel whose
/// receivers filter, and one flume channel per subscriber fed by an ideal router.
const FANOUT: &[&str] = &["perflab", "tokio_broadcast", "flume"];

/// Every `events/*` scenario. `events/fanout/batch<N>`: 1 publisher, 16 subscribers, 64
/// wildcard patterns over 10,000 subjects, published in batches of N (load: delivered
/// msgs/s, p99 publish-to-deliver latency). `events/queue/spsc`: the segmented queue
/// alone, one producer and one consumer, against bounded flume and crossbeam channels
/// (load: items/s). `events/route/patterns64`: matching one subject against the 64
/// patterns, trie walk against testing each pattern in turn (criterion).
pub const SCENARIOS: &[Spec] = &[
    Spec {
        id: "events/fanout/batch1",
        engine: Engine::Load,
        bench: None,
        subjects: FANOUT,
        requires: CPU,
    },
    Spec {
        id: "events/fanout/batch16",
        engine: Engine::Load,
        bench: None,
        subjects: FANOUT,
        requires: CPU,
    },
    Spec {
        id: "events/fanout/batch256",
        engine: Engine::Load,
        bench: None,
        subjects: FANOUT,
        requires: CPU,
    },
    Spec {
        id: "events/queue/spsc",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab", "flume", "crossbeam"],
        requires: CPU,
    },
    Spec {
        id: "events/route/patterns64",
        engine: Engine::Criterion,
        bench: Some("events"),
        subjects: &["perflab", "linear"],
        requires: CPU,
    },
];
