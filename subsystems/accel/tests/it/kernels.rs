//! Every kernel on the adapter against the CPU reference: fresh random inputs each run,
//! outputs poisoned with NaN first, odd shapes, and the documented error bounds.

use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_accel::{BinaryOp, HardwareAccelerator, Kernel, ReduceOp, Tensor, UnaryOp};

use crate::gpu;

/// A fresh seed per call, printed in every failure message so a failure can be replayed.
fn rng() -> (u64, Xoshiro256PlusPlus) {
    let seed: u64 = rand::random();
    (seed, Xoshiro256PlusPlus::seed_from_u64(seed))
}

fn random(rng: &mut Xoshiro256PlusPlus, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f32(shape, (0..n).map(|_| rng.random_range(lo..hi)).collect()).expect("tensor")
}

/// Runs `kernel` on both back ends and checks every element: not NaN (the GPU output was
/// poisoned, so NaN means unwritten) and `|gpu - cpu| <= bound(i, cpu)`.
fn compare(
    acc: &HardwareAccelerator,
    kernel: &Kernel,
    inputs: &[&Tensor],
    seed: u64,
    bound: impl Fn(usize, f32) -> f32,
) {
    acc.set_output_poisoning(true);
    let got = pollster::block_on(acc.execute_kernel(kernel, inputs)).expect("gpu kernel");
    let want = HardwareAccelerator::cpu()
        .execute_kernel_blocking(kernel, inputs)
        .expect("cpu kernel");
    assert_eq!(got.shape(), want.shape(), "{kernel:?}");
    let (g, w) = (got.as_f32().expect("f32"), want.as_f32().expect("f32"));
    for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
        assert!(
            !g.is_nan(),
            "{kernel:?} seed {seed}: element {i} unwritten (NaN)"
        );
        let b = bound(i, w);
        assert!(
            (g - w).abs() <= b,
            "{kernel:?} seed {seed}: element {i}: gpu {g} cpu {w} differ by more than {b}"
        );
    }
}

/// Bound for exactly rounded arithmetic (+, -, *, max, fma or mul-then-add): 4 ulp relative.
fn arith(_: usize, w: f32) -> f32 {
    4.0 * f32::EPSILON * w.abs()
}

/// Bound for exp-based ops (WGSL allows exp 3 + 2|x| ulp; tanh derives from it): 1e-4
/// relative plus 1e-6 absolute.
fn transcendental(_: usize, w: f32) -> f32 {
    1e-4 * w.abs() + 1e-6
}

#[test]
fn elementwise_ops_match_cpu() {
    let Some(acc) = gpu("elementwise_ops_match_cpu") else {
        return;
    };
    let (seed, mut r) = rng();
    for len in [1usize, 255, 257, 100_003] {
        let x = random(&mut r, &[len], -4.0, 4.0);
        let y = random(&mut r, &[len], 0.5, 4.0);
        for op in [UnaryOp::Identity, UnaryOp::Neg, UnaryOp::Relu] {
            compare(&acc, &Kernel::Unary(op), &[&x], seed, arith);
        }
        for op in [UnaryOp::Gelu, UnaryOp::Silu, UnaryOp::Exp] {
            compare(&acc, &Kernel::Unary(op), &[&x], seed, transcendental);
        }
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max] {
            compare(&acc, &Kernel::Binary(op), &[&x, &y], seed, arith);
        }
        // WGSL division is accurate to 2.5 ulp.
        compare(&acc, &Kernel::Binary(BinaryOp::Div), &[&x, &y], seed, arith);
        compare(
            &acc,
            &Kernel::Axpy { alpha: 1.5 },
            &[&x, &y],
            seed,
            |i, w| {
                // fma or mul+add: one extra rounding of alpha * x.
                4.0 * f32::EPSILON * (w.abs() + (1.5 * x.as_f32().expect("f32")[i]).abs())
            },
        );
    }
}

#[test]
fn reductions_match_cpu() {
    let Some(acc) = gpu("reductions_match_cpu") else {
        return;
    };
    let (seed, mut r) = rng();
    // 70,000 rows need a 2-D grid (65,535 workgroups per axis); 1,000 and 5,000 columns
    // exercise the strided fold; 3-D input reduces its last axis.
    for shape in [
        vec![3usize, 1000],
        vec![1, 5000],
        vec![70_000, 1],
        vec![4, 5, 33],
        vec![7],
    ] {
        let x = random(&mut r, &shape, -1.0, 1.0);
        let cols = *shape.last().expect("rank >= 1");
        let data = x.as_f32().expect("f32").to_vec();
        let abs_sum = |i: usize| {
            data[i * cols..][..cols]
                .iter()
                .map(|v| v.abs())
                .sum::<f32>()
        };
        // Any two summation orders differ by at most 2 (n - 1) eps sum|x|.
        compare(&acc, &Kernel::Reduce(ReduceOp::Sum), &[&x], seed, |i, _| {
            2.0 * cols as f32 * f32::EPSILON * abs_sum(i)
        });
        compare(
            &acc,
            &Kernel::Reduce(ReduceOp::Mean),
            &[&x],
            seed,
            |i, _| 2.0 * (cols as f32 + 1.0) * f32::EPSILON * abs_sum(i) / cols as f32,
        );
        compare(&acc, &Kernel::Reduce(ReduceOp::Max), &[&x], seed, |_, _| {
            0.0
        });
        compare(&acc, &Kernel::Reduce(ReduceOp::Min), &[&x], seed, |_, _| {
            0.0
        });
    }
}

#[test]
fn softmax_matches_cpu() {
    let Some(acc) = gpu("softmax_matches_cpu") else {
        return;
    };
    let (seed, mut r) = rng();
    for shape in [
        vec![1usize, 1],
        vec![5, 300],
        vec![64, 1000],
        vec![2, 3, 257],
    ] {
        // Large logits: only the max-subtracted form stays finite.
        let x = random(&mut r, &shape, -80.0, 80.0);
        compare(&acc, &Kernel::Softmax, &[&x], seed, transcendental);
    }
}

/// `2 k eps sum_p |a_ip| |b_pj|`: both sides are dot products of length k in some order.
fn matmul_bound(a: &Tensor, b: &Tensor) -> impl Fn(usize, f32) -> f32 {
    let (k, n) = (b.shape()[0], b.shape()[1]);
    let (a, b) = (
        a.as_f32().expect("f32").to_vec(),
        b.as_f32().expect("f32").to_vec(),
    );
    move |idx, _| {
        let (i, j) = (idx / n, idx % n);
        let s: f32 = (0..k).map(|p| (a[i * k + p] * b[p * n + j]).abs()).sum();
        2.0 * k as f32 * f32::EPSILON * s
    }
}

#[test]
fn matmul_matches_cpu_on_odd_shapes() {
    let Some(acc) = gpu("matmul_matches_cpu_on_odd_shapes") else {
        return;
    };
    let (seed, mut r) = rng();
    // Tiles are 64x64 with k steps of 16: none of these is a multiple in every dimension.
    for (m, k, n) in [
        (1, 1, 1),
        (64, 64, 64),
        (65, 17, 130),
        (127, 255, 3),
        (200, 129, 257),
        (256, 256, 256),
    ] {
        let a = random(&mut r, &[m, k], -1.0, 1.0);
        let b = random(&mut r, &[k, n], -1.0, 1.0);
        compare(&acc, &Kernel::MatMul, &[&a, &b], seed, matmul_bound(&a, &b));
    }
}

#[test]
fn dequant_matmul_matches_cpu() {
    let Some(acc) = gpu("dequant_matmul_matches_cpu") else {
        return;
    };
    let (seed, mut r) = rng();
    for (m, k, n, block) in [
        (1, 32, 1, 32),
        (3, 64, 70, 32),
        (65, 96, 129, 32),
        (100, 160, 33, 16),
        (17, 20, 5, 4),
    ] {
        let x = random(&mut r, &[m, k], -1.0, 1.0);
        let q: Vec<i8> = (0..n * k).map(|_| r.random_range(-127i8..=127)).collect();
        let w = Tensor::from_i8(&[n, k], q.clone()).expect("weights");
        let s = random(&mut r, &[n, k / block], 0.001, 0.05);
        let scales = s.as_f32().expect("f32").to_vec();
        let xs = x.as_f32().expect("f32").to_vec();
        let kernel = Kernel::DequantMatMul {
            block_size: block as u32,
        };
        compare(&acc, &kernel, &[&x, &w, &s], seed, |idx, _| {
            let (i, j) = (idx / n, idx % n);
            let sum: f32 = (0..k)
                .map(|p| {
                    (xs[i * k + p] * f32::from(q[j * k + p]) * scales[j * (k / block) + p / block])
                        .abs()
                })
                .sum();
            // One more rounding per term: the dequantizing multiply.
            2.0 * (k as f32 + 2.0) * f32::EPSILON * sum
        });
    }
}

#[test]
fn resident_path_matches_one_shot_path() {
    let Some(acc) = gpu("resident_path_matches_one_shot_path") else {
        return;
    };
    let (seed, mut r) = rng();
    let a = random(&mut r, &[33, 70], -1.0, 1.0);
    let b = random(&mut r, &[70, 45], -1.0, 1.0);
    let (da, db) = (
        acc.upload(&a).expect("upload"),
        acc.upload(&b).expect("upload"),
    );
    let dc = acc.run(&Kernel::MatMul, &[&da, &db]).expect("run");
    let sm = acc.run(&Kernel::Softmax, &[&dc]).expect("chained run");
    let resident = acc.download(&sm).expect("download");
    let c = acc
        .execute_kernel_blocking(&Kernel::MatMul, &[&a, &b])
        .expect("matmul");
    let one_shot = acc
        .execute_kernel_blocking(&Kernel::Softmax, &[&c])
        .expect("softmax");
    assert_eq!(
        resident, one_shot,
        "seed {seed}: same kernels, same device, same bits"
    );
    let back = acc.download(&da).expect("download input");
    assert_eq!(back, a, "an uploaded tensor reads back unchanged");
    let q = Tensor::from_i8(&[2, 5], vec![-128, -1, 0, 1, 127, 5, 6, 7, 8, 9]).expect("i8");
    let dq = acc.upload(&q).expect("upload i8");
    assert_eq!(acc.download(&dq).expect("download i8"), q);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn matmul_any_small_shape(m in 1usize..90, k in 1usize..90, n in 1usize..90) {
        let Some(acc) = gpu("matmul_any_small_shape") else { return Ok(()) };
        let (seed, mut r) = rng();
        let a = random(&mut r, &[m, k], -2.0, 2.0);
        let b = random(&mut r, &[k, n], -2.0, 2.0);
        compare(&acc, &Kernel::MatMul, &[&a, &b], seed, matmul_bound(&a, &b));
    }

    #[test]
    fn cpu_softmax_rows_sum_to_one(rows in 1usize..6, cols in 1usize..400, scale in 0.1f32..100.0) {
        let (_, mut r) = rng();
        let x = random(&mut r, &[rows, cols], -scale, scale);
        let y = HardwareAccelerator::cpu().execute_kernel_blocking(&Kernel::Softmax, &[&x]).expect("softmax");
        for row in y.as_f32().expect("f32").chunks(cols) {
            let s: f32 = row.iter().sum();
            prop_assert!((s - 1.0).abs() <= 1e-5 * cols as f32, "row sums to {}", s);
            prop_assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
}
