//! An f64 reimplementation of the model's forward pass, the yardstick of the accuracy tests.

use rust_ai_ide_quantization::candle_core::Tensor;
use rust_ai_ide_quantization::{Model, candle_core};

/// A row-major f64 matrix.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn from_tensor(t: &Tensor) -> Self {
        let (rows, cols) = t.dims2().expect("a matrix");
        let data = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("f32 tensor")
            .into_iter()
            .map(f64::from)
            .collect();
        Self { rows, cols, data }
    }

    /// `self @ w^T` for `w` of shape `[out, cols]`, accumulated in f64.
    pub fn matmul_t(&self, w: &Matrix) -> Matrix {
        assert_eq!(self.cols, w.cols);
        let mut data = vec![0.0; self.rows * w.rows];
        for i in 0..self.rows {
            let x = &self.data[i * self.cols..(i + 1) * self.cols];
            for j in 0..w.rows {
                let row = &w.data[j * w.cols..(j + 1) * w.cols];
                data[i * w.rows + j] = x.iter().zip(row).map(|(a, b)| a * b).sum();
            }
        }
        Matrix {
            rows: self.rows,
            cols: w.rows,
            data,
        }
    }

    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// candle's `gelu`: the tanh approximation.
fn gelu(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh())
}

/// The model's forward pass in f64: RMS norm, up, GELU, down, residual, per block.
pub fn forward_f64(model: &Model, input: &Tensor) -> Matrix {
    let mut x = Matrix::from_tensor(input);
    for i in 0..model.num_layers() {
        let get = |suffix: &str| -> Tensor {
            model
                .tensor(&format!("blk.{i}.{suffix}"))
                .unwrap_or_else(|| panic!("blk.{i}.{suffix}"))
        };
        let norm: Vec<f64> = get("ffn_norm.weight")
            .to_vec1::<f32>()
            .expect("norm")
            .into_iter()
            .map(f64::from)
            .collect();
        let up = Matrix::from_tensor(&get("ffn_up.weight"));
        let down = Matrix::from_tensor(&get("ffn_down.weight"));
        let mut normed = Matrix {
            rows: x.rows,
            cols: x.cols,
            data: x.data.clone(),
        };
        for r in 0..x.rows {
            let row = &mut normed.data[r * x.cols..(r + 1) * x.cols];
            let ms = row.iter().map(|v| v * v).sum::<f64>() / x.cols as f64;
            let scale = 1.0 / (ms + model.norm_eps()).sqrt();
            for (v, g) in row.iter_mut().zip(&norm) {
                *v *= scale * g;
            }
        }
        let mut inner = normed.matmul_t(&up);
        inner.data.iter_mut().for_each(|v| *v = gelu(*v));
        let out = inner.matmul_t(&down);
        for (v, o) in x.data.iter_mut().zip(&out.data) {
            *v += o;
        }
    }
    x
}

/// `rows` seeded inputs of width `hidden`.
pub fn inputs(hidden: usize, rows: usize, seed: u64) -> Tensor {
    rust_ai_ide_quantization::calibration_inputs(hidden, rows, seed).expect("inputs")
}

/// The flattened f32 values of `t`.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 values")
}

/// Keeps the candle re-export in use from the tests' side, as downstream crates use it.
pub fn device() -> candle_core::Device {
    candle_core::Device::Cpu
}
