//! The errors of quantization and hardware optimization.

use std::path::PathBuf;

use crate::precision::PrecisionLevel;

/// Why a model could not be built, loaded, saved, quantized or run.
#[derive(Debug, thiserror::Error)]
pub enum QuantizationError {
    /// A candle operation failed (shape mismatch, unsupported dtype, file format).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a model file failed.
    #[error("i/o on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model file lacks a tensor the MLP stack needs, or holds one of the wrong shape.
    #[error("model format: {0}")]
    Format(String),
    /// A model configuration that cannot be built.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// The model's shapes do not fit the block size of the precision's format.
    #[error("{precision:?} needs dimensions that are multiples of {block}, got {dim}")]
    BlockSize {
        /// The requested precision.
        precision: PrecisionLevel,
        /// The format's block size in weights.
        block: usize,
        /// The offending dimension.
        dim: usize,
    },
    /// The input's last dimension is not the model's hidden size.
    #[error("input has shape {shape:?}, expected a last dimension of {expected}")]
    InputShape {
        /// The input's shape.
        shape: Vec<usize>,
        /// The model's hidden size.
        expected: usize,
    },
}

/// Why `optimize_for_hardware` found no model to return.
#[derive(Debug, thiserror::Error)]
pub enum OptimizationError {
    /// Quantizing or measuring the model failed.
    #[error(transparent)]
    Quantization(#[from] QuantizationError),
    /// No precision the hardware supports keeps the accuracy loss within the tolerance.
    #[error(
        "no supported precision keeps the relative output error within {tolerance}; the best was {best:?} at {best_loss}"
    )]
    NoPrecisionMeetsQuality {
        /// The tolerated relative output error.
        tolerance: f64,
        /// The most accurate supported precision.
        best: PrecisionLevel,
        /// Its measured relative output error.
        best_loss: f64,
    },
}
