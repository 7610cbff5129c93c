//! Dynamic quantization on candle: models at FP32, FP16, Q8_0, Q4_0 and Q4_K with measured accuracy loss.
#![doc = include_str!("../README.md")]

pub use candle_core;

mod error;
mod hardware;
mod metrics;
mod model;
mod precision;
mod quantized;
mod quantizer;
mod sampling;
mod tiles;

pub use error::{OptimizationError, QuantizationError};
pub use hardware::{HardwareCapabilities, KernelTiming};
pub use metrics::{
    AccuracyReport, CALIBRATION_ROWS, CALIBRATION_SEED, calibration_inputs, cosine_similarity,
    measure_accuracy, relative_error, rmse,
};
pub use model::{DEFAULT_NORM_EPS, GGUF_ARCHITECTURE, Model, ModelConfig};
pub use precision::PrecisionLevel;
pub use quantized::{QuantizedLinear, QuantizedModel, round_trip};
pub use quantizer::{DEFAULT_TOLERANCE, DynamicQuantizer, OptimizedModel, Task};
pub use sampling::WeightDistribution;
