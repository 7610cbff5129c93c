//! Accuracy metrics: relative output error, cosine similarity, weight RMSE, bits per weight.

use candle_core::{Device, Tensor};

use crate::error::QuantizationError;
use crate::model::{Model, linear_f32, rms_norm};
use crate::precision::PrecisionLevel;
use crate::quantized::{QuantizedModel, dequantize};
use crate::sampling::Sampler;

/// Rows of the calibration batch `estimate_accuracy_loss` runs.
pub const CALIBRATION_ROWS: usize = 32;

/// Seed of the calibration batch.
pub const CALIBRATION_SEED: u64 = 0x5eed_ca1b;

/// How far a quantized model is from its f32 original, measured on real outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracyReport {
    /// The quantized model's precision.
    pub precision: PrecisionLevel,
    /// Relative error of the quantized linear layers' outputs, each fed the f32 model's
    /// own activations for the calibration batch: `sqrt(sum |Wq x - W x|^2 / sum |W x|^2)`
    /// over every layer. This is `estimate_accuracy_loss`.
    pub layer_relative_error: f64,
    /// Relative error of the whole model's output on the calibration batch:
    /// `|y_q - y| / |y|`, errors compounding through the stack.
    pub output_relative_error: f64,
    /// Mean over the calibration rows of the cosine similarity of the quantized and f32
    /// outputs.
    pub output_cosine: f64,
    /// Root mean square of the weight errors (dequantized minus original) over every
    /// linear weight.
    pub weight_rmse: f64,
    /// `weight_rmse` divided by the weights' own root mean square.
    pub weight_relative_rmse: f64,
    /// Storage bits per weight, block scales included.
    pub bits_per_weight: f64,
}

/// `|actual - reference| / |reference|` (Euclidean norms, in f64); 0 when both are zero.
pub fn relative_error(reference: &[f32], actual: &[f32]) -> f64 {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&r, &a) in reference.iter().zip(actual) {
        diff += (f64::from(a) - f64::from(r)).powi(2);
        norm += f64::from(r).powi(2);
    }
    if norm == 0.0 {
        if diff == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (diff / norm).sqrt()
    }
}

/// Cosine similarity of `a` and `b` (in f64); 1 when both are zero, 0 when one is.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    match (na == 0.0, nb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => dot / (na.sqrt() * nb.sqrt()),
    }
}

/// Root mean square of `a - b` (in f64).
pub fn rmse(a: &[f32], b: &[f32]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    (sum / a.len() as f64).sqrt()
}

/// `rows` seeded N(0, 1) inputs of width `hidden`: the calibration batch.
pub fn calibration_inputs(
    hidden: usize,
    rows: usize,
    seed: u64,
) -> Result<Tensor, QuantizationError> {
    let mut sampler = Sampler::new(seed);
    let data: Vec<f32> = (0..hidden * rows)
        .map(|_| sampler.normal() as f32)
        .collect();
    Ok(Tensor::from_vec(data, (rows, hidden), &Device::Cpu)?)
}

fn flat(t: &Tensor) -> Result<Vec<f32>, QuantizationError> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Accumulates `sum |q - r|^2` and `sum |r|^2` for a pooled relative error.
#[derive(Debug, Default)]
struct ErrorSum {
    diff: f64,
    norm: f64,
}

impl ErrorSum {
    fn add(&mut self, reference: &Tensor, actual: &Tensor) -> Result<(), QuantizationError> {
        let (r, a) = (flat(reference)?, flat(actual)?);
        for (&r, &a) in r.iter().zip(&a) {
            self.diff += (f64::from(a) - f64::from(r)).powi(2);
            self.norm += f64::from(r).powi(2);
        }
        Ok(())
    }

    fn relative(&self) -> f64 {
        if self.norm == 0.0 {
            0.0
        } else {
            (self.diff / self.norm).sqrt()
        }
    }
}

/// Measures `quantized` against its original `model` on the `[rows, hidden]` batch `inputs`.
pub fn measure_accuracy(
    model: &Model,
    quantized: &QuantizedModel,
    inputs: &Tensor,
) -> Result<AccuracyReport, QuantizationError> {
    if quantized.input_dim() != model.hidden() || quantized.num_layers() != model.num_layers() {
        return Err(QuantizationError::Format(format!(
            "the quantized model ({} blocks of {}) is not a version of the model ({} blocks of {})",
            quantized.num_layers(),
            quantized.input_dim(),
            model.num_layers(),
            model.hidden()
        )));
    }
    let mut layer_err = ErrorSum::default();
    let mut weight_err = ErrorSum::default();
    let mut weight_count = 0usize;
    let mut x = inputs.contiguous()?;
    for (l, q) in model.layers().iter().zip(quantized.layers()) {
        let normed = rms_norm(&x, &l.norm, model.norm_eps())?;
        let up = linear_f32(&normed, &l.up)?;
        layer_err.add(&up, &q.up.forward(&normed)?)?;
        let inner = up.gelu()?;
        let down = linear_f32(&inner, &l.down)?;
        layer_err.add(&down, &q.down.forward(&inner)?)?;
        x = (x + down)?;
        for (w, qw) in [(&l.up, &q.up), (&l.down, &q.down)] {
            weight_err.add(w, &dequantize(qw)?)?;
            weight_count += w.elem_count();
        }
    }
    let reference = model.forward(inputs)?;
    let actual = quantized.forward(inputs)?;
    let (rows, _) = reference.dims2()?;
    let mut cosine = 0.0;
    for r in 0..rows {
        cosine += cosine_similarity(&flat(&reference.get(r)?)?, &flat(&actual.get(r)?)?);
    }
    let weight_rmse = if weight_count == 0 {
        0.0
    } else {
        (weight_err.diff / weight_count as f64).sqrt()
    };
    Ok(AccuracyReport {
        precision: quantized.precision(),
        layer_relative_error: layer_err.relative(),
        output_relative_error: relative_error(&flat(&reference)?, &flat(&actual)?),
        output_cosine: cosine / rows.max(1) as f64,
        weight_rmse,
        weight_relative_rmse: weight_err.relative(),
        bits_per_weight: quantized.precision().bits_per_weight(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_known_vectors() {
        let r = [3.0f32, 4.0];
        assert_eq!(relative_error(&r, &r), 0.0);
        assert!((relative_error(&r, &[3.0, 4.5]) - 0.1).abs() < 1e-12);
        assert!((cosine_similarity(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-12);
        assert!((cosine_similarity(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-12);
        assert!((rmse(&[0.0, 0.0], &[3.0, 4.0]) - 12.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(relative_error(&[0.0], &[0.0]), 0.0);
        assert_eq!(relative_error(&[0.0], &[1.0]), f64::INFINITY);
        assert_eq!(cosine_similarity(&[0.0], &[0.0]), 1.0);
    }

    #[test]
    fn calibration_inputs_are_seeded() {
        let a = flat(&calibration_inputs(32, 4, 1).unwrap()).unwrap();
        let b = flat(&calibration_inputs(32, 4, 1).unwrap()).unwrap();
        assert_eq!(a.len(), 128);
        assert_eq!(a, b);
    }
}
