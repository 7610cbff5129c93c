//! `QuantizedAIModel`: an `AIModel` over a quantized candle model, with its quality measured
//! against the unquantized model and its cost from its bits per weight.

use std::sync::Arc;

use rust_ai_ide_quantization::candle_core::{Device, Tensor};
use rust_ai_ide_quantization::{
    DynamicQuantizer, Model, PrecisionLevel, QuantizationError, QuantizedModel,
};

use crate::error::{ConfigError, ModelError};
use crate::model::{AIModel, InferFuture, Task, TaskOutput, TaskType};

/// One precision of a model as an `AIModel`. Its forward passes run on tokio's blocking
/// pool, so a CPU-bound inference never stalls the runtime's workers.
#[derive(Debug, Clone)]
pub struct QuantizedAIModel {
    name: String,
    model: Arc<QuantizedModel>,
    capabilities: Vec<TaskType>,
    quality: f64,
    cost: f64,
}

impl QuantizedAIModel {
    /// One `QuantizedAIModel` per precision of `model`, named `<prefix>-<precision>` (for
    /// example `coder-q8_0`). Quality is `1 - ‖y - y_ref‖ / ‖y_ref‖`, the relative error of
    /// the variant's outputs against the unquantized model's on `calibration` (clamped to
    /// `[0, 1]`); cost is bits per weight over 32 (the weight bytes one forward pass reads,
    /// relative to f32, which is what a matrix-vector product's time follows).
    pub fn variants(
        prefix: &str,
        model: &Model,
        precisions: &[PrecisionLevel],
        capabilities: &[TaskType],
        calibration: &Tensor,
    ) -> Result<Vec<Self>, ConfigError> {
        let reference = model.forward(calibration)?;
        let quantizer = DynamicQuantizer::new();
        precisions
            .iter()
            .map(|&precision| {
                let q = quantizer.quantize_to(model, precision)?;
                let out = q.forward(calibration)?;
                let quality = 1.0 - relative_error(&out, &reference)?;
                Ok(Self {
                    name: format!("{prefix}-{}", precision.name()),
                    model: Arc::new(q),
                    capabilities: capabilities.to_vec(),
                    quality: quality.clamp(0.0, 1.0),
                    cost: precision.bits_per_weight() / 32.0,
                })
            })
            .collect()
    }

    /// The precision of the weights.
    pub fn precision(&self) -> PrecisionLevel {
        self.model.precision()
    }

    /// Values per input row.
    pub fn input_dim(&self) -> usize {
        self.model.input_dim()
    }
}

impl AIModel for QuantizedAIModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &[TaskType] {
        &self.capabilities
    }

    fn quality_score(&self) -> f64 {
        self.quality
    }

    fn cost(&self) -> f64 {
        self.cost
    }

    /// The task's input is `rows x input_dim` values, row-major; the output has the same shape.
    fn infer<'a>(&'a self, task: &'a Task) -> InferFuture<'a> {
        Box::pin(async move {
            let dim = self.model.input_dim();
            if task.input.is_empty() || !task.input.len().is_multiple_of(dim) {
                return Err(ModelError::InvalidInput {
                    model: self.name.clone(),
                    reason: format!(
                        "{} values is not a whole number of rows of {dim}",
                        task.input.len()
                    ),
                });
            }
            let rows = task.input.len() / dim;
            let model = Arc::clone(&self.model);
            let input = task.input.clone();
            let failed = |reason: String| ModelError::Internal {
                model: self.name.clone(),
                reason,
            };
            tokio::task::spawn_blocking(move || -> Result<Vec<f32>, QuantizationError> {
                let x = Tensor::from_vec(input, (rows, dim), &Device::Cpu)?;
                Ok(model.forward(&x)?.flatten_all()?.to_vec1::<f32>()?)
            })
            .await
            .map_err(|e| failed(e.to_string()))?
            .map(|values| TaskOutput { values })
            .map_err(|e| failed(e.to_string()))
        })
    }
}

/// `‖a - b‖ / ‖b‖` over all elements.
fn relative_error(a: &Tensor, b: &Tensor) -> Result<f64, QuantizationError> {
    let diff = (a - b)?.sqr()?.sum_all()?.to_scalar::<f32>()?;
    let norm = b.sqr()?.sum_all()?.to_scalar::<f32>()?;
    Ok(f64::from(diff).sqrt() / f64::from(norm).sqrt().max(f64::MIN_POSITIVE))
}
