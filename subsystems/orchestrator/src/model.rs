//! The `AIModel` trait the orchestrator drives, and the tasks it runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::ModelError;

/// What a task asks a model to do; models declare the types they serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskType {
    /// Inline code completion.
    Completion,
    /// Longer code generation.
    Generation,
    /// Code review and analysis.
    Review,
    /// Embedding of code or text.
    Embedding,
    /// Conversational answers.
    Chat,
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Completion => "completion",
            Self::Generation => "generation",
            Self::Review => "review",
            Self::Embedding => "embedding",
            Self::Chat => "chat",
        };
        f.write_str(name)
    }
}

/// One unit of work: an id for tracing and the input activations, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Caller-chosen id, echoed in the result.
    pub id: u64,
    /// The input, row-major (`rows x input_dim` for the quantized models).
    pub input: Vec<f32>,
}

impl Task {
    /// A task with id `id` over `input`.
    pub fn new(id: u64, input: Vec<f32>) -> Self {
        Self { id, input }
    }
}

/// What a model returns: the output activations, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutput {
    /// The output values.
    pub values: Vec<f32>,
}

/// The future of one `AIModel::infer` call: boxed so that the trait stays dyn-compatible.
pub type InferFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TaskOutput, ModelError>> + Send + 'a>>;

/// A model the orchestrator can route tasks to; used as `Arc<dyn AIModel>`.
///
/// `infer` returns a boxed future rather than being an `async fn`: an `async fn` in a trait
/// makes it unusable as `dyn AIModel`, and the `async-trait` crate would generate the very
/// same boxed future behind a macro and one more dependency.
pub trait AIModel: Send + Sync + fmt::Debug {
    /// A unique name: it keys the orchestrator's per-model state and stats.
    fn name(&self) -> &str;

    /// The task types this model serves.
    fn capabilities(&self) -> &[TaskType];

    /// Output quality in `[0, 1]` (1 = the reference model's answers).
    fn quality_score(&self) -> f64;

    /// Relative cost of one call (any unit, the same for every model of an orchestrator).
    fn cost(&self) -> f64;

    /// Runs the model on `task`.
    fn infer<'a>(&'a self, task: &'a Task) -> InferFuture<'a>;

    /// Whether the model serves `task_type`.
    fn supports(&self, task_type: TaskType) -> bool {
        self.capabilities().contains(&task_type)
    }
}
