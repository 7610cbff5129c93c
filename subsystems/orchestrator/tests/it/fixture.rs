//! Shared helpers: scripted models and orchestrators over them.

use std::sync::Arc;
use std::time::Duration;

use rust_ai_ide_orchestrator::{
    AIModel, ModelExecutionContext, ModelOrchestrator, OrchestratorConfig, ScriptedModel,
    ScriptedModelConfig, Task, TaskType,
};

/// A completion model with fixed latency, no failures, unlimited capacity.
pub fn scripted(name: &str, quality: f64, cost: f64, latency_ms: u64) -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::new(ScriptedModelConfig::new(
        name,
        &[TaskType::Completion],
        quality,
        cost,
        Duration::from_millis(latency_ms),
    )))
}

/// An orchestrator over `models` with `config`.
pub fn orchestrator(
    config: OrchestratorConfig,
    models: &[&Arc<ScriptedModel>],
) -> ModelOrchestrator {
    let models = models.iter().map(|m| Arc::clone(m) as Arc<dyn AIModel>);
    ModelOrchestrator::with_models(config, models).expect("unique names")
}

/// A completion context of one unit at `min_quality`.
pub fn ctx(min_quality: f64) -> ModelExecutionContext {
    ModelExecutionContext::new(TaskType::Completion, 1).with_min_quality(min_quality)
}

/// A one-value task.
pub fn task(id: u64) -> Task {
    Task::new(id, vec![1.0])
}
