//! Quantized outputs against an f64 reference on seeded random inputs.

use rust_ai_ide_quantization::candle_core::Tensor;
use rust_ai_ide_quantization::{
    DynamicQuantizer, Model, ModelConfig, PrecisionLevel, QuantizedLinear, WeightDistribution,
    cosine_similarity, relative_error,
};

use crate::reference::{Matrix, device, forward_f64, inputs, values};

fn small(distribution: WeightDistribution) -> ModelConfig {
    ModelConfig {
        layers: 2,
        hidden: 256,
        ffn: 512,
        distribution,
        ..ModelConfig::default()
    }
}

/// Mean over rows of the cosine similarity of `a` and `b`, both `[rows, cols]`.
fn mean_row_cosine(a: &[f32], b: &[f32], cols: usize) -> f64 {
    let rows = a.len() / cols;
    (0..rows)
        .map(|r| cosine_similarity(&a[r * cols..(r + 1) * cols], &b[r * cols..(r + 1) * cols]))
        .sum::<f64>()
        / rows as f64
}

#[test]
fn each_precision_tracks_the_f64_reference() {
    // (precision, max relative error, min cosine) of the whole model's output; the 4-bit
    // bounds leave room for Student-t(3) weights, whose outliers stretch the block scales.
    let bounds = [
        (PrecisionLevel::FP32, 1e-5, 0.999_999),
        (PrecisionLevel::FP16, 2e-3, 0.999_99),
        (PrecisionLevel::INT8, 0.02, 0.999),
        (PrecisionLevel::INT4, 0.16, 0.985),
        (PrecisionLevel::Q4K, 0.16, 0.985),
    ];
    for distribution in [
        WeightDistribution::Gaussian,
        WeightDistribution::StudentT { dof: 3 },
    ] {
        let model = Model::seeded(&small(distribution), 11).unwrap();
        let x = inputs(model.hidden(), 8, 99);
        let reference = forward_f64(&model, &x).to_f32();
        let quantizer = DynamicQuantizer::new();
        for (precision, max_err, min_cos) in bounds {
            let q = quantizer.quantize_to(&model, precision).unwrap();
            let y = values(&q.forward(&x).unwrap());
            let err = relative_error(&reference, &y);
            let cos = mean_row_cosine(&reference, &y, model.hidden());
            assert!(
                err <= max_err,
                "{distribution:?} {precision:?}: relative error {err} > {max_err}"
            );
            assert!(
                cos >= min_cos,
                "{distribution:?} {precision:?}: cosine {cos} < {min_cos}"
            );
        }
    }
}

#[test]
fn errors_shrink_with_more_bits() {
    let model = Model::seeded(&small(WeightDistribution::Gaussian), 5).unwrap();
    let quantizer = DynamicQuantizer::new();
    let losses: Vec<f64> = [
        PrecisionLevel::FP32,
        PrecisionLevel::FP16,
        PrecisionLevel::INT8,
        PrecisionLevel::INT4,
    ]
    .into_iter()
    .map(|p| quantizer.estimate_accuracy_loss(&model, p))
    .collect();
    assert_eq!(losses[0], 0.0, "f32 layers are the reference itself");
    assert!(losses.windows(2).all(|w| w[0] < w[1]), "{losses:?}");
    // The analytic sizes of the formats (see analytic_loss): f16 ~3e-4, Q8_0 ~7e-3, Q4_0 ~8e-2.
    assert!(
        losses[1] < 1e-3 && losses[2] < 0.015 && losses[3] < 0.12,
        "{losses:?}"
    );
}

#[test]
fn quantized_linear_matches_an_f64_matmul() {
    let (n, k) = (96, 512);
    let w = Tensor::randn(0f32, 0.05, (n, k), &device()).unwrap();
    let x = inputs(k, 4, 3);
    let reference = Matrix::from_tensor(&x)
        .matmul_t(&Matrix::from_tensor(&w))
        .to_f32();
    for (precision, bound) in [
        (PrecisionLevel::FP32, 1e-5),
        (PrecisionLevel::FP16, 1e-3),
        (PrecisionLevel::INT8, 0.015),
        (PrecisionLevel::INT4, 0.15),
    ] {
        let linear = QuantizedLinear::new(&w, precision).unwrap();
        assert_eq!(linear.dims(), (n, k));
        let y = values(&linear.forward(&x).unwrap());
        let err = relative_error(&reference, &y);
        assert!(err <= bound, "{precision:?}: {err} > {bound}");
        // Against the dequantized weights in f64 the only error left is the kernel's own
        // (8-bit activations for the integer formats).
        let deq = Matrix::from_tensor(&linear.dequantized_weight().unwrap());
        let own = Matrix::from_tensor(&x).matmul_t(&deq).to_f32();
        assert!(
            relative_error(&own, &y) <= bound,
            "{precision:?} against its own weights"
        );
    }
}

#[test]
fn heavy_tails_cost_q4_0_more_than_q4k() {
    let model = Model::seeded(&small(WeightDistribution::StudentT { dof: 3 }), 21).unwrap();
    let quantizer = DynamicQuantizer::new();
    let q4_0 = quantizer
        .accuracy_report(&model, PrecisionLevel::INT4)
        .unwrap();
    let q4k = quantizer
        .accuracy_report(&model, PrecisionLevel::Q4K)
        .unwrap();
    assert_eq!(q4_0.bits_per_weight, q4k.bits_per_weight);
    assert!(
        q4k.weight_relative_rmse < q4_0.weight_relative_rmse,
        "q4k {} vs q4_0 {}",
        q4k.weight_relative_rmse,
        q4_0.weight_relative_rmse
    );
}

#[test]
fn accuracy_is_cached_per_model_and_precision() {
    let quantizer = DynamicQuantizer::new();
    let a = Model::seeded(&small(WeightDistribution::Gaussian), 1).unwrap();
    let b = Model::seeded(&small(WeightDistribution::Gaussian), 2).unwrap();
    let first = quantizer.accuracy_report(&a, PrecisionLevel::INT4).unwrap();
    // A clone is the same model: same id, the cached report.
    assert_eq!(a.clone().id(), a.id());
    assert_eq!(
        quantizer
            .accuracy_report(&a.clone(), PrecisionLevel::INT4)
            .unwrap(),
        first
    );
    assert_ne!(a.id(), b.id());
    let other = quantizer.accuracy_report(&b, PrecisionLevel::INT4).unwrap();
    assert_ne!(other.layer_relative_error, first.layer_relative_error);
    assert!(first.output_cosine > 0.99 && first.output_cosine <= 1.0);
}

#[test]
fn a_model_that_does_not_fit_the_blocks_is_refused() {
    let config = ModelConfig {
        layers: 1,
        hidden: 96,
        ffn: 128,
        ..ModelConfig::default()
    };
    let model = Model::seeded(&config, 0).unwrap();
    let quantizer = DynamicQuantizer::new();
    assert!(quantizer.quantize_to(&model, PrecisionLevel::INT4).is_ok());
    assert!(quantizer.quantize_to(&model, PrecisionLevel::Q4K).is_err());
    assert_eq!(
        quantizer.estimate_accuracy_loss(&model, PrecisionLevel::Q4K),
        f64::INFINITY
    );
}

#[test]
fn bad_inputs_and_configs_are_errors() {
    let model = Model::seeded(&small(WeightDistribution::Gaussian), 0).unwrap();
    let q = DynamicQuantizer::new()
        .quantize_to(&model, PrecisionLevel::INT8)
        .unwrap();
    let wrong = inputs(128, 1, 0);
    assert!(q.forward(&wrong).is_err());
    assert!(model.forward(&wrong).is_err());
    let bad_t = ModelConfig {
        distribution: WeightDistribution::StudentT { dof: 2 },
        ..ModelConfig::default()
    };
    assert!(Model::seeded(&bad_t, 0).is_err());
    assert!(
        Model::seeded(
            &ModelConfig {
                layers: 0,
                ..ModelConfig::default()
            },
            0
        )
        .is_err()
    );
}

#[test]
fn batched_inputs_of_rank_three_work() {
    let model = Model::seeded(&small(WeightDistribution::Gaussian), 4).unwrap();
    let q = DynamicQuantizer::new()
        .quantize_to(&model, PrecisionLevel::INT8)
        .unwrap();
    let flat = inputs(model.hidden(), 6, 8);
    let batched = flat.reshape((2, 3, model.hidden())).unwrap();
    let y = q.forward(&batched).unwrap();
    assert_eq!(y.dims(), &[2, 3, model.hidden()]);
    let y_flat = q.forward(&flat).unwrap();
    assert_eq!(values(&y), values(&y_flat));
}
