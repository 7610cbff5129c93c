//! The CPU back end: every kernel on host memory with rayon; also the reference the GPU
//! results are checked against.

use rayon::prelude::*;

use crate::error::HardwareError;
use crate::kernel::{BinaryOp, Kernel, ReduceOp, UnaryOp};
use crate::tensor::Tensor;

/// Rows of a matrix product handed to one rayon task.
const ROWS_PER_TASK: usize = 8;

/// Runs `kernel` on the CPU.
pub(crate) fn execute(kernel: &Kernel, inputs: &[&Tensor]) -> Result<Tensor, HardwareError> {
    let shape = kernel.check(inputs)?;
    let f = |i: usize| inputs[i].as_f32().unwrap_or_default();
    let out = match *kernel {
        Kernel::Unary(op) => f(0).par_iter().map(|&x| unary(op, x)).collect(),
        Kernel::Binary(op) => f(0)
            .par_iter()
            .zip(f(1))
            .map(|(&a, &b)| binary(op, a, b))
            .collect(),
        Kernel::Axpy { alpha } => f(0)
            .par_iter()
            .zip(f(1))
            .map(|(&x, &y)| alpha * x + y)
            .collect(),
        Kernel::Reduce(op) => {
            let n = *inputs[0].shape().last().unwrap_or(&1);
            f(0).par_chunks(n).map(|row| reduce(op, row)).collect()
        }
        Kernel::Softmax => {
            let n = *inputs[0].shape().last().unwrap_or(&1);
            let mut out = f(0).to_vec();
            out.par_chunks_mut(n).for_each(softmax_row);
            out
        }
        Kernel::MatMul => {
            let (k, n) = (inputs[0].shape()[1], inputs[1].shape()[1]);
            matmul(f(0), f(1), k, n)
        }
        Kernel::DequantMatMul { block_size } => {
            let block = block_size as usize;
            let (x, q, scales) = (f(0), inputs[1].as_i8().unwrap_or_default(), f(2));
            let (n, k) = (inputs[1].shape()[0], inputs[1].shape()[1]);
            // Dequantize once and transpose to [k, n], so the product is a plain matmul.
            let mut w = vec![0.0f32; k * n];
            w.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
                for (j, out) in row.iter_mut().enumerate() {
                    *out = f32::from(q[j * k + i]) * scales[j * (k / block) + i / block];
                }
            });
            matmul(x, &w, k, n)
        }
    };
    Tensor::from_f32(&shape, out)
}

/// One element of a unary op; the GPU shader computes the same formulas.
pub(crate) fn unary(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Identity => x,
        UnaryOp::Neg => -x,
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Gelu => {
            let inner = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            0.5 * x * (1.0 + inner.tanh())
        }
        UnaryOp::Silu => x / (1.0 + (-x).exp()),
        UnaryOp::Exp => x.exp(),
    }
}

fn binary(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
    }
}

fn reduce(op: ReduceOp, row: &[f32]) -> f32 {
    match op {
        ReduceOp::Sum => row.iter().sum(),
        ReduceOp::Mean => row.iter().sum::<f32>() / row.len() as f32,
        ReduceOp::Max => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        ReduceOp::Min => row.iter().copied().fold(f32::INFINITY, f32::min),
    }
}

fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

/// `a [m, k] x b [k, n]`: row-parallel, i-k-j order so the inner loop is a contiguous AXPY
/// the compiler vectorizes.
fn matmul(a: &[f32], b: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; (a.len() / k) * n];
    out.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(a.par_chunks(k * ROWS_PER_TASK))
        .for_each(|(out_rows, a_rows)| {
            for (out_row, a_row) in out_rows.chunks_mut(n).zip(a_rows.chunks(k)) {
                for (p, &av) in a_row.iter().enumerate() {
                    // Plain multiply-add: `mul_add` is a libm call without a target FMA.
                    for (o, &bv) in out_row.iter_mut().zip(&b[p * n..][..n]) {
                        *o += av * bv;
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(shape, v.to_vec()).expect("tensor")
    }

    #[test]
    fn matmul_small() {
        let a = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = t(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        let c = execute(&Kernel::MatMul, &[&a, &b]).expect("matmul");
        assert_eq!(c.as_f32(), Some(&[58.0, 64.0, 139.0, 154.0][..]));
    }

    #[test]
    fn dequant_matmul_small() {
        let x = t(&[1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let w = Tensor::from_i8(&[2, 4], vec![1, -1, 2, 0, 3, 3, -3, 1]).expect("w");
        let s = t(&[2, 1], &[0.5, 2.0]);
        let c = execute(&Kernel::DequantMatMul { block_size: 4 }, &[&x, &w, &s]).expect("q8");
        // Row 0: 0.5 * (1 - 2 + 6 + 0) = 2.5; row 1: 2 * (3 + 6 - 9 + 4) = 8.
        assert_eq!(c.as_f32(), Some(&[2.5, 8.0][..]));
    }

    #[test]
    fn softmax_reduce_and_elementwise() {
        let x = t(&[2, 2], &[0.0, 0.0, 1000.0, 1000.0]);
        let s = execute(&Kernel::Softmax, &[&x]).expect("softmax");
        assert_eq!(s.as_f32(), Some(&[0.5, 0.5, 0.5, 0.5][..]));
        let r = execute(&Kernel::Reduce(ReduceOp::Mean), &[&x]).expect("mean");
        assert_eq!(r.as_f32(), Some(&[0.0, 1000.0][..]));
        let y = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let a = execute(&Kernel::Axpy { alpha: 2.0 }, &[&y, &y]).expect("axpy");
        assert_eq!(a.as_f32(), Some(&[3.0, 6.0, 9.0, 12.0][..]));
        let r = execute(&Kernel::Unary(UnaryOp::Relu), &[&t(&[2], &[-1.0, 2.0])]).expect("relu");
        assert_eq!(r.as_f32(), Some(&[0.0, 2.0][..]));
    }
}
