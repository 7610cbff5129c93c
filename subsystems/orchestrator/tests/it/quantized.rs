//! Real quantized models through the orchestrator: FP32, INT8 and INT4 variants of one seeded model.

use std::sync::Arc;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_orchestrator::{
    AIModel, FailoverError, ModelExecutionContext, ModelOrchestrator, OrchestrationError,
    OrchestratorConfig, QuantizedAIModel, Task, TaskType,
};
use rust_ai_ide_quantization::candle_core::{Device, Tensor};
use rust_ai_ide_quantization::{Model, ModelConfig, PrecisionLevel};

const HIDDEN: usize = 64;

fn seeded_input(rows: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..rows * HIDDEN)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect()
}

fn variants() -> (Model, Vec<QuantizedAIModel>) {
    let config = ModelConfig {
        layers: 2,
        hidden: HIDDEN,
        ffn: 128,
        ..ModelConfig::default()
    };
    let model = Model::seeded(&config, 7).expect("seeded model");
    let calibration =
        Tensor::from_vec(seeded_input(32, 1), (32, HIDDEN), &Device::Cpu).expect("tensor");
    let precisions = [
        PrecisionLevel::FP32,
        PrecisionLevel::INT8,
        PrecisionLevel::INT4,
    ];
    let v = QuantizedAIModel::variants(
        "coder",
        &model,
        &precisions,
        &[TaskType::Completion],
        &calibration,
    )
    .expect("variants");
    (model, v)
}

#[tokio::test]
async fn quantized_variants_are_routed_by_quality_and_cost() {
    let (model, v) = variants();
    let names: Vec<&str> = v.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["coder-f32", "coder-q8_0", "coder-q4_0"]);
    let (fp32, int8, int4) = (&v[0], &v[1], &v[2]);
    assert!(fp32.quality_score() > 0.9999, "{}", fp32.quality_score());
    assert!(int8.quality_score() > int4.quality_score());
    assert!(int4.quality_score() > 0.8, "{}", int4.quality_score());
    assert!(fp32.cost() > int8.cost() && int8.cost() > int4.cost());
    assert_eq!(int8.precision(), PrecisionLevel::INT8);

    let models = v.iter().map(|m| Arc::new(m.clone()) as Arc<dyn AIModel>);
    let o = ModelOrchestrator::with_models(OrchestratorConfig::default(), models).expect("models");
    let ctx = |q: f64| ModelExecutionContext::new(TaskType::Completion, 4).with_min_quality(q);
    let between = (int8.quality_score() + int4.quality_score()) / 2.0;
    let above_int8 = (int8.quality_score() + fp32.quality_score()) / 2.0;
    let input = seeded_input(4, 2);
    for (q, expected) in [(0.0, int4), (between, int8), (above_int8, fp32)] {
        let r = o
            .execute_task(Task::new(1, input.clone()), ctx(q))
            .await
            .expect("answered");
        assert_eq!(r.model, expected.name());
        // The answer is the variant's real forward pass.
        let direct = expected
            .infer(&Task::new(0, input.clone()))
            .await
            .expect("direct forward");
        assert_eq!(r.output, direct);
        assert_eq!(r.output.values.len(), 4 * HIDDEN);
    }
    // And the f32 variant answers what the unquantized model does, up to rounding.
    let x = Tensor::from_vec(input.clone(), (4, HIDDEN), &Device::Cpu).expect("tensor");
    let reference: Vec<f32> = model
        .forward(&x)
        .and_then(|y| Ok(y.flatten_all()?.to_vec1::<f32>()?))
        .expect("reference forward");
    let r = o
        .execute_task(Task::new(2, input), ctx(above_int8))
        .await
        .expect("answered");
    for (a, b) in r.output.values.iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let s = o.performance_stats();
    assert_eq!(s.succeeded, 4);
    assert_eq!(s.model("coder-f32").expect("f32").calls, 2);
    assert!(s.model("coder-q8_0").expect("q8").latency_p50 > std::time::Duration::ZERO);
}

#[tokio::test]
async fn a_malformed_input_is_rejected_without_retry() {
    let (_, v) = variants();
    let models = v.into_iter().map(|m| Arc::new(m) as Arc<dyn AIModel>);
    let o = ModelOrchestrator::with_models(OrchestratorConfig::default(), models).expect("models");
    let ctx = ModelExecutionContext::new(TaskType::Completion, 1);
    let err = o
        .execute_task(Task::new(1, vec![0.5; HIDDEN + 1]), ctx)
        .await
        .expect_err("not a whole row");
    assert!(
        matches!(
            err,
            OrchestrationError::Failover {
                attempts: 1,
                reason: FailoverError::NotRetryable(_),
                ..
            }
        ),
        "{err:?}"
    );
}
