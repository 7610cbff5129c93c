//! The `accel/*` scenarios: SAXPY and SGEMM on the wgpu adapter against candle's CPU kernels,
//! and a small matmul wall-time bench.

use super::{Engine, Requirement, Spec};

const GPU: &[Requirement] = &[Requirement::Gpu];

/// Subjects of the load scenarios: the accelerator on the adapter, candle on the CPU, and
/// the accelerator's own CPU back end.
const SUBJECTS: &[&str] = &["perflab", "candle_cpu", "perflab_cpu"];

/// Every `accel/*` scenario.
pub const SCENARIOS: &[Spec] = &[
    Spec {
        id: "accel/saxpy/f32",
        engine: Engine::Load,
        bench: None,
        subjects: SUBJECTS,
        requires: GPU,
    },
    Spec {
        id: "accel/sgemm/n1024",
        engine: Engine::Load,
        bench: None,
        subjects: SUBJECTS,
        requires: GPU,
    },
    Spec {
        id: "accel/sgemm/n2048",
        engine: Engine::Load,
        bench: None,
        subjects: SUBJECTS,
        requires: GPU,
    },
    Spec {
        id: "accel/matmul/n256",
        engine: Engine::Criterion,
        bench: Some("accel"),
        subjects: &["perflab", "candle_cpu"],
        requires: GPU,
    },
];
