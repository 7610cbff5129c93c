//! Criterion bench of the orchestrator's own cost per task: `execute_task` over four
//! instant scripted models against a direct call of the model it would pick.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rust_ai_ide_orchestrator::{
    AIModel, ModelExecutionContext, ModelOrchestrator, OrchestratorConfig, ScriptedModel,
    ScriptedModelConfig, Task, TaskType,
};

fn execute_task(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Zero service time: what is measured is selection, bookkeeping and the future.
    let models: Vec<Arc<ScriptedModel>> = [
        ("a", 0.7, 1.0),
        ("b", 0.85, 2.0),
        ("c", 0.9, 3.0),
        ("d", 0.95, 6.0),
    ]
    .iter()
    .map(|&(name, q, cost)| {
        Arc::new(ScriptedModel::new(ScriptedModelConfig::new(
            name,
            &[TaskType::Completion],
            q,
            cost,
            Duration::ZERO,
        )))
    })
    .collect();
    let o = ModelOrchestrator::with_models(
        OrchestratorConfig::default(),
        models.iter().map(|m| Arc::clone(m) as Arc<dyn AIModel>),
    )
    .expect("models");
    let ctx = ModelExecutionContext::new(TaskType::Completion, 1).with_min_quality(0.8);
    let mut g = c.benchmark_group("orchestrator/execute_task/models4");
    g.bench_function("perflab", |b| {
        b.iter(|| {
            rt.block_on(o.execute_task(Task::new(1, vec![1.0]), ctx))
                .expect("answered")
        })
    });
    let preferred = &models[1];
    g.bench_function("direct", |b| {
        b.iter(|| {
            rt.block_on(preferred.infer(&Task::new(1, vec![1.0])))
                .expect("answered")
        })
    });
    g.finish();
}

criterion_group!(benches, execute_task);
criterion_main!(benches);
