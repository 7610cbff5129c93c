//! Errors of the orchestrator: one enum per seed operation, the models' own error and registration errors.

use rust_ai_ide_quantization::QuantizationError;
use thiserror::Error;

use crate::model::TaskType;

/// Why one model call failed (the seed's `Error` argument of `handle_failover`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// The model is down or unreachable.
    #[error("model {model} is unavailable")]
    Unavailable {
        /// The model's name.
        model: String,
    },
    /// The model refused the call because it is saturated.
    #[error("model {model} is overloaded")]
    Overloaded {
        /// The model's name.
        model: String,
    },
    /// The input cannot be served by this model; retrying elsewhere will not help.
    #[error("model {model} rejected the input: {reason}")]
    InvalidInput {
        /// The model's name.
        model: String,
        /// What is wrong with the input.
        reason: String,
    },
    /// The model failed while running.
    #[error("model {model} failed: {reason}")]
    Internal {
        /// The model's name.
        model: String,
        /// What went wrong.
        reason: String,
    },
}

impl ModelError {
    /// Whether another model (or a later call) may succeed where this call failed: every
    /// error but a rejected input, which is the caller's fault and not the model's health.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::InvalidInput { .. })
    }
}

/// Why `select_model` found no model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SelectionError {
    /// No registered model serves the task type.
    #[error("no model serves task type {0}")]
    NoCapableModel(TaskType),
    /// Models serve the task type, but none at the required quality.
    #[error("no model serving {task_type} reaches quality {required} (best {best})")]
    QualityUnattainable {
        /// The task type asked for.
        task_type: TaskType,
        /// The required quality score.
        required: f64,
        /// The best quality score among the capable models.
        best: f64,
    },
    /// Every model that meets the requirements is out of rotation (open circuit) or was
    /// already tried for this task.
    #[error("every model that meets the requirements is out of rotation")]
    AllUnavailable,
    /// The context's deadline had passed before a model was chosen.
    #[error("the deadline has already passed")]
    DeadlinePassed,
}

/// Why `load_balance` could not pick a model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadBalancingError {
    /// The slice of models was empty.
    #[error("no models to balance over")]
    NoModels,
    /// A model in the slice is not registered with this orchestrator.
    #[error("model {0} is not registered with this orchestrator")]
    UnknownModel(String),
    /// Every model in the slice is out of rotation (open circuit).
    #[error("every model is out of rotation")]
    AllUnavailable,
}

/// Why `handle_failover` offered no replacement.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FailoverError {
    /// The error is not one another model could fix.
    #[error("error is not retryable: {0}")]
    NotRetryable(ModelError),
    /// The retry budget has no token left: retrying now would multiply load.
    #[error("retry budget exhausted")]
    RetryBudgetExhausted,
    /// The failed model is not registered with this orchestrator.
    #[error("model {0} is not registered with this orchestrator")]
    UnknownModel(String),
    /// No other model can take the task.
    #[error("no alternative model: {0}")]
    NoAlternative(#[source] SelectionError),
}

/// Why `execute_task` returned no result.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OrchestrationError {
    /// No model could be chosen for the first attempt.
    #[error("no model selected: {0}")]
    Selection(#[from] SelectionError),
    /// The deadline passed before a model answered.
    #[error("deadline exceeded after {attempts} attempt(s)")]
    DeadlineExceeded {
        /// Model calls made for the task.
        attempts: u32,
        /// The model that was running when the deadline passed, if any.
        model: Option<String>,
    },
    /// Every allowed attempt failed.
    #[error("task failed on {model} after {attempts} attempt(s): {source}")]
    RetriesExhausted {
        /// The model of the last attempt.
        model: String,
        /// Model calls made for the task.
        attempts: u32,
        /// The last attempt's error.
        source: ModelError,
    },
    /// An attempt failed and failover offered no replacement.
    #[error(
        "task failed on {model} after {attempts} attempt(s) ({error}) and failover refused: {reason}"
    )]
    Failover {
        /// The model of the last attempt.
        model: String,
        /// Model calls made for the task.
        attempts: u32,
        /// The last attempt's error.
        error: ModelError,
        /// Why no replacement was offered.
        #[source]
        reason: FailoverError,
    },
}

/// Why a model could not be registered or built.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Two models share a name; names identify models in stats and balancing.
    #[error("a model named {0} is already registered")]
    DuplicateModel(String),
    /// A model reported a quality score outside `[0, 1]` or a negative or non-finite cost.
    #[error("model {model} has an invalid {field}: {value}")]
    InvalidModel {
        /// The model's name.
        model: String,
        /// `quality_score` or `cost`.
        field: &'static str,
        /// The offending value.
        value: f64,
    },
    /// Quantizing a model or measuring its accuracy failed.
    #[error("quantized model: {0}")]
    Quantization(#[from] QuantizationError),
}
