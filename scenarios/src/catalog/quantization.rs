//! The `quantization/*` scenarios: ids, engines, bench targets and subjects.

use super::{CPU, Engine, Spec};

/// Subjects of the matmul scenarios: our `QuantizedLinear` at the scenario's precision,
/// and raw candle's f32 `matmul` of the same shapes (the same for every precision, so the
/// ratio is the speed-up over f32).
const MATMUL_SUBJECTS: &[&str] = &["perflab", "candle_f32"];

/// Subjects of the forward scenarios: the seeded model's `QuantizedModel` at the
/// scenario's precision, and the unquantized f32 `Model::forward`.
const FORWARD_SUBJECTS: &[&str] = &["perflab", "model_f32"];

/// Subject of the accuracy scenarios: our quantizer's measurement (no anchor: the f32
/// model is the reference the metrics are relative to).
const ACCURACY_SUBJECTS: &[&str] = &["perflab"];

const fn criterion(id: &'static str, subjects: &'static [&'static str]) -> Spec {
    Spec {
        id,
        engine: Engine::Criterion,
        bench: Some("quantization"),
        subjects,
        requires: CPU,
    }
}

const fn load(id: &'static str) -> Spec {
    Spec {
        id,
        engine: Engine::Load,
        bench: None,
        subjects: ACCURACY_SUBJECTS,
        requires: CPU,
    }
}

/// Every `quantization/*` scenario. `matmul_m1/<precision>` and `matmul_m64/<precision>`:
/// one K = N = 4096 matmul for 1 and 64 input rows on two threads (criterion).
/// `forward_m1/<precision>`: one row through the seeded model (2 blocks, hidden 1024,
/// ffn 4096; criterion). `accuracy/<distribution>_<precision>`: relative output error,
/// cosine similarity, weight RMSE and bits per weight of the seeded model on Gaussian and
/// Student-t(3) weights (load).
pub const SCENARIOS: &[Spec] = &[
    criterion("quantization/matmul_m1/f32", MATMUL_SUBJECTS),
    criterion("quantization/matmul_m1/f16", MATMUL_SUBJECTS),
    criterion("quantization/matmul_m1/q8_0", MATMUL_SUBJECTS),
    criterion("quantization/matmul_m1/q4_0", MATMUL_SUBJECTS),
    criterion("quantization/matmul_m64/f32", MATMUL_SUBJECTS),
    criterion("quantization/matmul_m64/f16", MATMUL_SUBJECTS),
    criterion("quantization/matmul_m64/q8_0", MATMUL_SUBJECTS),
    criterion("quantization/matmul_m64/q4_0", MATMUL_SUBJECTS),
    criterion("quantization/forward_m1/f32", FORWARD_SUBJECTS),
    criterion("quantization/forward_m1/f16", FORWARD_SUBJECTS),
    criterion("quantization/forward_m1/q8_0", FORWARD_SUBJECTS),
    criterion("quantization/forward_m1/q4_0", FORWARD_SUBJECTS),
    criterion("quantization/forward_m1/q4k", FORWARD_SUBJECTS),
    load("quantization/accuracy/gaussian_f16"),
    load("quantization/accuracy/gaussian_q8_0"),
    load("quantization/accuracy/gaussian_q4_0"),
    load("quantization/accuracy/gaussian_q4k"),
    load("quantization/accuracy/student_t_f16"),
    load("quantization/accuracy/student_t_q8_0"),
    load("quantization/accuracy/student_t_q4_0"),
    load("quantization/accuracy/student_t_q4k"),
];
