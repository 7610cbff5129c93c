//! The `monitoring/*` scenarios: ids, engines, bench targets and subjects.

use super::{CPU, Engine, Spec};

/// Every `monitoring/*` scenario. In the recording benches `perflab` is `FastRecorder` and
/// `prometheus` the `metrics` crate's `PrometheusRecorder`; in the anomaly scenario `perflab`
/// is the default detector (a 2-of-3 vote of the other three), `mad` the robust z-score on
/// median/MAD, `ewma` the EWMA control chart and `holt` Holt's linear method.
pub const SCENARIOS: &[Spec] = &[
    Spec {
        id: "monitoring/record/counter",
        engine: Engine::Criterion,
        bench: Some("monitoring"),
        subjects: &["perflab", "prometheus"],
        requires: CPU,
    },
    Spec {
        id: "monitoring/record/histogram",
        engine: Engine::Criterion,
        bench: Some("monitoring"),
        subjects: &["perflab", "prometheus"],
        requires: CPU,
    },
    Spec {
        id: "monitoring/anomaly/synthetic",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab", "mad", "ewma", "holt"],
        requires: CPU,
    },
];
