//! An orchestrator of AI models: quality- and deadline-aware selection, P2C load balancing, budgeted failover with circuit breakers.
#![doc = include_str!("../README.md")]

mod balancer;
mod context;
mod error;
mod failover;
mod histogram;
mod model;
mod orchestrator;
mod quantized;
mod scripted;
mod stats;
mod tracker;

pub use context::{ModelExecutionContext, QualityRequirements};
pub use error::{
    ConfigError, FailoverError, LoadBalancingError, ModelError, OrchestrationError, SelectionError,
};
pub use failover::CircuitState;
pub use model::{AIModel, InferFuture, Task, TaskOutput, TaskType};
pub use orchestrator::{ModelOrchestrator, OrchestratorConfig, TaskResult};
pub use quantized::QuantizedAIModel;
pub use scripted::{ScriptedModel, ScriptedModelConfig};
pub use stats::{ModelStats, PerformanceStats};
