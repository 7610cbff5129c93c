//! Criterion benches of the quantization subsystem: K = N = 4096 matmuls at 1 and 64 rows, and the seeded model's forward pass, per precision.
//!
//! Naming (read by the harness): group = scenario id, function = subject. `perflab` is our
//! `QuantizedLinear` / `QuantizedModel` at the group's precision; `candle_f32` is raw
//! candle's f32 `matmul` of the same shapes and `model_f32` the unquantized `Model`, so the
//! ratio perflab / anchor is the speed-up over f32. Candle's kernels run on two threads
//! (`CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS`, set to 2 unless the caller set them).

use std::hint::black_box;

use criterion::Criterion;
use rust_ai_ide_quantization::candle_core::{Device, Tensor};
use rust_ai_ide_quantization::{
    Model, ModelConfig, PrecisionLevel, QuantizedLinear, QuantizedModel,
};

/// K = N of the matmul scenarios.
const DIM: usize = 4096;
/// The precisions of the matmul and forward scenarios.
const PRECISIONS: [PrecisionLevel; 4] = [
    PrecisionLevel::FP32,
    PrecisionLevel::FP16,
    PrecisionLevel::INT8,
    PrecisionLevel::INT4,
];
const SEED: u64 = 0x0062_656e_6368;

fn randn(rows: usize, cols: usize, std: f32) -> Tensor {
    Tensor::randn(0f32, std, (rows, cols), &Device::Cpu).expect("random tensor")
}

fn matmul(c: &mut Criterion, rows: usize) {
    let weight = randn(DIM, DIM, 1.0 / (DIM as f32).sqrt());
    let x = randn(rows, DIM, 1.0);
    let wt = weight.t().expect("transpose");
    for precision in PRECISIONS {
        let linear = QuantizedLinear::new(&weight, precision).expect("quantize");
        let mut group =
            c.benchmark_group(format!("quantization/matmul_m{rows}/{}", precision.name()));
        if rows > 1 {
            // One iteration is tens of milliseconds: ten samples keep the run short.
            group.sample_size(10);
        }
        group.bench_function("perflab", |b| {
            b.iter(|| black_box(linear.forward(black_box(&x)).expect("forward")))
        });
        group.bench_function("candle_f32", |b| {
            b.iter(|| black_box(black_box(&x).matmul(&wt).expect("matmul")))
        });
        group.finish();
    }
}

fn matmul_m1(c: &mut Criterion) {
    matmul(c, 1);
}

fn matmul_m64(c: &mut Criterion) {
    matmul(c, 64);
}

fn forward_m1(c: &mut Criterion) {
    let config = ModelConfig {
        layers: 2,
        hidden: 1024,
        ffn: 4096,
        ..ModelConfig::default()
    };
    let model = Model::seeded(&config, SEED).expect("seeded model");
    let x = randn(1, config.hidden, 1.0);
    for precision in PRECISIONS.into_iter().chain([PrecisionLevel::Q4K]) {
        let quantized = QuantizedModel::from_model(&model, precision).expect("quantize");
        let mut group = c.benchmark_group(format!("quantization/forward_m1/{}", precision.name()));
        group.bench_function("perflab", |b| {
            b.iter(|| black_box(quantized.forward(black_box(&x)).expect("forward")))
        });
        group.bench_function("model_f32", |b| {
            b.iter(|| black_box(model.forward(black_box(&x)).expect("forward")))
        });
        group.finish();
    }
}

fn main() {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            // SAFETY: the first statement of main, before criterion or candle start a thread,
            // so no other thread can read the environment concurrently.
            unsafe { std::env::set_var(var, "2") };
        }
    }
    let mut c = Criterion::default().configure_from_args();
    matmul_m1(&mut c);
    matmul_m64(&mut c);
    forward_m1(&mut c);
    c.final_summary();
}
