//! Criterion wall-time bench of the accelerator: one 256x256 matrix product end to end on the
//! wgpu adapter (upload, kernel, readback), against candle's CPU matmul.
//!
//! Naming (read by the harness): group = scenario id, function = subject. Without an adapter
//! the group is skipped and says so on stderr.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rust_ai_ide_accel::{HardwareAccelerator, Kernel, Preference, Tensor};

const N: usize = 256;

fn data(seed: usize) -> Vec<f32> {
    (0..N * N)
        .map(|i| ((i * 7919 + seed) % 2001) as f32 / 1000.5 - 1.0)
        .collect()
}

fn matmul(c: &mut Criterion) {
    let acc = match HardwareAccelerator::with_preference_blocking(Preference::Gpu) {
        Ok(acc) => acc,
        Err(e) => {
            eprintln!("skipped: accel/matmul/n256: requires gpu: {e}");
            return;
        }
    };
    let a = Tensor::from_f32(&[N, N], data(1)).expect("tensor");
    let b = Tensor::from_f32(&[N, N], data(2)).expect("tensor");
    let ca = candle_core::Tensor::from_vec(data(1), (N, N), &candle_core::Device::Cpu)
        .expect("candle tensor");
    let cb = candle_core::Tensor::from_vec(data(2), (N, N), &candle_core::Device::Cpu)
        .expect("candle tensor");
    let mut group = c.benchmark_group("accel/matmul/n256");
    group.bench_function("perflab", |bench| {
        bench.iter(|| {
            black_box(
                acc.execute_kernel_blocking(&Kernel::MatMul, &[&a, &b])
                    .expect("matmul"),
            )
        });
    });
    group.bench_function("candle_cpu", |bench| {
        bench.iter(|| black_box(ca.matmul(&cb).expect("candle matmul")));
    });
    group.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
