//! The execution context of a task: its type, size, deadline and quality requirements.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::TaskType;

/// The quality a task needs from the model that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QualityRequirements {
    /// The lowest acceptable `AIModel::quality_score`, in `[0, 1]`.
    pub min_quality: f64,
}

impl QualityRequirements {
    /// Requires a quality score of at least `min_quality`.
    pub fn at_least(min_quality: f64) -> Self {
        Self { min_quality }
    }
}

/// What the orchestrator knows about a task when it picks a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelExecutionContext {
    /// The kind of work; only models with this capability are considered.
    pub task_type: TaskType,
    /// The input's size in the models' work units (rows of activations, tokens); latency is
    /// tracked per power-of-two size class.
    pub input_size: usize,
    /// When the answer stops being useful; `None` for no deadline.
    pub deadline: Option<Instant>,
    /// The quality the answer must have.
    pub quality_requirements: QualityRequirements,
}

impl ModelExecutionContext {
    /// A context without deadline or quality requirement.
    pub fn new(task_type: TaskType, input_size: usize) -> Self {
        Self {
            task_type,
            input_size,
            deadline: None,
            quality_requirements: QualityRequirements::default(),
        }
    }

    /// Sets the deadline to `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the deadline to `budget` from now.
    pub fn with_timeout(self, budget: Duration) -> Self {
        self.with_deadline(Instant::now() + budget)
    }

    /// Requires a quality score of at least `min_quality`.
    pub fn with_min_quality(mut self, min_quality: f64) -> Self {
        self.quality_requirements = QualityRequirements::at_least(min_quality);
        self
    }
}
