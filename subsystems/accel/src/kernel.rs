//! The kernel set and its shape rules, shared by the GPU and CPU back ends.

use crate::error::HardwareError;
use crate::tensor::{DType, Tensor};

/// One-input elementwise operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `x` (a copy; the bandwidth calibration uses it).
    Identity,
    /// `-x`.
    Neg,
    /// `max(x, 0)`.
    Relu,
    /// GELU, tanh approximation (as in GPT-2).
    Gelu,
    /// `x * sigmoid(x)`.
    Silu,
    /// `e^x`.
    Exp,
}

/// Two-input elementwise operations on tensors of the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `max(a, b)`.
    Max,
}

/// Reductions over the last axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// A compute kernel that [`HardwareAccelerator::execute_kernel`](crate::HardwareAccelerator::execute_kernel) runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// One `f32` input, same-shape output.
    Unary(UnaryOp),
    /// Two `f32` inputs of one shape, same-shape output.
    Binary(BinaryOp),
    /// `alpha * x + y` for `f32` inputs `x` and `y` of one shape (SAXPY, into a new tensor).
    Axpy {
        /// The scale of `x`.
        alpha: f32,
    },
    /// Reduces the last axis of one `f32` input: `[.., n]` becomes `[..]` (`[1]` for a vector).
    Reduce(ReduceOp),
    /// Softmax over the last axis of one `f32` input (max-subtracted, so large inputs are fine).
    Softmax,
    /// `[m, k] x [k, n] -> [m, n]`, both `f32`.
    MatMul,
    /// `x · dequant(w)ᵀ` like GGML's Q8_0: `x` is `f32 [m, k]`, `w` is `i8 [n, k]`, `scales`
    /// is `f32 [n, k / block_size]`, and weight `w[j][i]` stands for
    /// `w[j][i] * scales[j][i / block_size]`. Output `f32 [m, n]`.
    DequantMatMul {
        /// Weights per scale along `k`; a positive multiple of 4 that divides `k`.
        block_size: u32,
    },
}

impl Kernel {
    /// A short name for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Unary(_) => "unary",
            Self::Binary(_) => "binary",
            Self::Axpy { .. } => "axpy",
            Self::Reduce(_) => "reduce",
            Self::Softmax => "softmax",
            Self::MatMul => "matmul",
            Self::DequantMatMul { .. } => "dequant_matmul",
        }
    }

    /// The input types this kernel takes, in order.
    pub fn input_dtypes(&self) -> &'static [DType] {
        match self {
            Self::Unary(_) | Self::Reduce(_) | Self::Softmax => &[DType::F32],
            Self::Binary(_) | Self::Axpy { .. } | Self::MatMul => &[DType::F32, DType::F32],
            Self::DequantMatMul { .. } => &[DType::F32, DType::I8, DType::F32],
        }
    }

    /// Floating-point operations for inputs of these shapes (the FLOP count used by the
    /// calibration and the scenarios: `2mnk` for the matrix products).
    pub fn flops(&self, shapes: &[&[usize]]) -> f64 {
        let len = |s: &[usize]| s.iter().product::<usize>() as f64;
        match self {
            Self::MatMul | Self::DequantMatMul { .. } => match shapes {
                [a, b, ..] if a.len() == 2 && b.len() == 2 => {
                    let n = if matches!(self, Self::MatMul) {
                        b[1]
                    } else {
                        b[0]
                    };
                    2.0 * a[0] as f64 * a[1] as f64 * n as f64
                }
                _ => 0.0,
            },
            Self::Axpy { .. } => shapes.first().map_or(0.0, |s| 2.0 * len(s)),
            Self::Softmax => shapes.first().map_or(0.0, |s| 4.0 * len(s)),
            _ => shapes.first().map_or(0.0, |s| len(s)),
        }
    }

    /// Checks the inputs and returns the output shape (the output is always `f32`).
    pub fn output_shape(&self, inputs: &[(&[usize], DType)]) -> Result<Vec<usize>, HardwareError> {
        let name = self.name();
        let dtypes = self.input_dtypes();
        if inputs.len() != dtypes.len() {
            return Err(HardwareError::InputCount {
                kernel: name,
                expected: dtypes.len(),
                got: inputs.len(),
            });
        }
        for (index, (&(_, got), &expected)) in inputs.iter().zip(dtypes).enumerate() {
            if got != expected {
                return Err(HardwareError::DTypeMismatch {
                    kernel: name,
                    index,
                    expected,
                    got,
                });
            }
        }
        let mismatch = |detail: String| HardwareError::ShapeMismatch {
            kernel: name,
            detail,
        };
        let shape0 = inputs[0].0;
        match *self {
            Self::Unary(_) | Self::Softmax => Ok(shape0.to_vec()),
            Self::Binary(_) | Self::Axpy { .. } => {
                if inputs[1].0 != shape0 {
                    return Err(mismatch(format!("{shape0:?} and {:?}", inputs[1].0)));
                }
                Ok(shape0.to_vec())
            }
            Self::Reduce(_) => Ok(if shape0.len() == 1 {
                vec![1]
            } else {
                shape0[..shape0.len() - 1].to_vec()
            }),
            Self::MatMul => {
                let (a, b) = (shape0, inputs[1].0);
                if a.len() != 2 || b.len() != 2 || a[1] != b[0] {
                    return Err(mismatch(format!("cannot multiply {a:?} by {b:?}")));
                }
                Ok(vec![a[0], b[1]])
            }
            Self::DequantMatMul { block_size } => {
                let (x, w, s) = (shape0, inputs[1].0, inputs[2].0);
                if block_size == 0 || block_size % 4 != 0 {
                    return Err(HardwareError::InvalidParameter(format!(
                        "block size {block_size} is not a positive multiple of 4"
                    )));
                }
                let block = block_size as usize;
                if x.len() != 2 || w.len() != 2 || x[1] != w[1] {
                    return Err(mismatch(format!("x {x:?} and weights {w:?} differ in k")));
                }
                if x[1] % block != 0 {
                    return Err(mismatch(format!(
                        "k = {} is not a multiple of {block}",
                        x[1]
                    )));
                }
                if s != [w[0], w[1] / block] {
                    return Err(mismatch(format!(
                        "scales {s:?}, expected {:?}",
                        [w[0], w[1] / block]
                    )));
                }
                Ok(vec![x[0], w[0]])
            }
        }
    }

    /// [`Kernel::output_shape`] for host tensors.
    pub fn check(&self, inputs: &[&Tensor]) -> Result<Vec<usize>, HardwareError> {
        let specs: Vec<(&[usize], DType)> = inputs.iter().map(|t| (t.shape(), t.dtype())).collect();
        self.output_shape(&specs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: &[usize], dtype: DType) -> (&[usize], DType) {
        (shape, dtype)
    }

    #[test]
    fn shape_rules() {
        let f = DType::F32;
        assert_eq!(
            Kernel::MatMul
                .output_shape(&[spec(&[3, 5], f), spec(&[5, 7], f)])
                .expect("ok"),
            vec![3, 7]
        );
        assert!(matches!(
            Kernel::MatMul.output_shape(&[spec(&[3, 5], f), spec(&[4, 7], f)]),
            Err(HardwareError::ShapeMismatch { .. })
        ));
        assert_eq!(
            Kernel::Reduce(ReduceOp::Sum)
                .output_shape(&[spec(&[2, 3, 4], f)])
                .expect("ok"),
            vec![2, 3]
        );
        assert_eq!(
            Kernel::Reduce(ReduceOp::Max)
                .output_shape(&[spec(&[9], f)])
                .expect("ok"),
            vec![1]
        );
        assert!(matches!(
            Kernel::Binary(BinaryOp::Add).output_shape(&[spec(&[2], f)]),
            Err(HardwareError::InputCount {
                expected: 2,
                got: 1,
                ..
            })
        ));
        let q = Kernel::DequantMatMul { block_size: 32 };
        assert_eq!(
            q.output_shape(&[
                spec(&[3, 64], f),
                spec(&[5, 64], DType::I8),
                spec(&[5, 2], f)
            ])
            .expect("ok"),
            vec![3, 5]
        );
        assert!(matches!(
            q.output_shape(&[spec(&[3, 64], f), spec(&[5, 64], f), spec(&[5, 2], f)]),
            Err(HardwareError::DTypeMismatch { index: 1, .. })
        ));
        assert!(
            q.output_shape(&[
                spec(&[3, 48], f),
                spec(&[5, 48], DType::I8),
                spec(&[5, 1], f)
            ])
            .is_err()
        );
        assert!(matches!(
            Kernel::DequantMatMul { block_size: 6 }.output_shape(&[
                spec(&[3, 48], f),
                spec(&[5, 48], DType::I8),
                spec(&[5, 8], f)
            ]),
            Err(HardwareError::InvalidParameter(_))
        ));
    }

    #[test]
    fn flop_counts() {
        assert_eq!(
            Kernel::MatMul.flops(&[&[4, 8], &[8, 16]]),
            2.0 * 4.0 * 8.0 * 16.0
        );
        assert_eq!(
            Kernel::DequantMatMul { block_size: 4 }.flops(&[&[4, 8], &[16, 8], &[16, 2]]),
            2.0 * 4.0 * 8.0 * 16.0
        );
        assert_eq!(Kernel::Axpy { alpha: 2.0 }.flops(&[&[10], &[10]]), 20.0);
    }
}
