//! `quantization/accuracy/*` load scenarios: accuracy of the seeded model per precision on Gaussian and Student-t weights.

use std::collections::BTreeMap;

use rust_ai_ide_quantization::{
    AccuracyReport, DynamicQuantizer, Model, ModelConfig, PrecisionLevel, WeightDistribution,
    calibration_inputs,
};

use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

/// Degrees of freedom of the heavy-tailed weights: Student-t(3) has infinite kurtosis,
/// about the heaviest tails a trained transformer's weights show.
const STUDENT_T_DOF: u32 = 3;
const SEED: u64 = 0x7175_616e_745f_6163;
/// Rows of the evaluation batch (a seed other than the quantizer's calibration batch,
/// so the figures are measured on inputs the calibration never saw).
const EVAL_ROWS: usize = 64;
const EVAL_SEED: u64 = 0x6576_616c;

/// The model measured: the forward scenarios' shape, or a smaller one with `--quick`.
fn config(opts: LoadOptions, distribution: WeightDistribution) -> ModelConfig {
    let (hidden, ffn) = if opts.quick {
        (512, 2048)
    } else {
        (1024, 4096)
    };
    ModelConfig {
        layers: 2,
        hidden,
        ffn,
        distribution,
        ..ModelConfig::default()
    }
}

/// `(distribution, precision)` of a scenario id `quantization/accuracy/<dist>_<precision>`.
fn parse(id: &str) -> Option<(WeightDistribution, PrecisionLevel)> {
    let param = id.strip_prefix("quantization/accuracy/")?;
    let (dist, precision) = if let Some(p) = param.strip_prefix("gaussian_") {
        (WeightDistribution::Gaussian, p)
    } else {
        let p = param.strip_prefix("student_t_")?;
        (WeightDistribution::StudentT { dof: STUDENT_T_DOF }, p)
    };
    let precision = PrecisionLevel::ALL
        .into_iter()
        .find(|l| l.name() == precision)?;
    Some((dist, precision))
}

fn measures(r: &AccuracyReport) -> BTreeMap<String, Measure> {
    [
        ("output_cosine", r.output_cosine),
        ("output_relative_error", r.output_relative_error),
        ("layer_relative_error", r.layer_relative_error),
        ("weight_rmse", r.weight_rmse),
        ("weight_relative_rmse", r.weight_relative_rmse),
        ("bits_per_weight", r.bits_per_weight),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Measure::point(v)))
    .collect()
}

/// Runs the `quantization/*` load scenarios in `ids`.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let quantizer = DynamicQuantizer::new();
    // One model per distribution, shared by that distribution's precisions.
    let mut models: Vec<(WeightDistribution, Model)> = Vec::new();
    for &id in ids {
        let res = (|| -> Result<BTreeMap<String, Measure>, String> {
            let (dist, precision) =
                parse(id).ok_or_else(|| format!("{id} is not an accuracy scenario"))?;
            let model = match models.iter().find(|(d, _)| *d == dist) {
                Some((_, m)) => m.clone(),
                None => {
                    let m = Model::seeded(&config(opts, dist), SEED).map_err(|e| e.to_string())?;
                    models.push((dist, m.clone()));
                    m
                }
            };
            let quantized = quantizer
                .quantize_to(&model, precision)
                .map_err(|e| e.to_string())?;
            let inputs = calibration_inputs(model.hidden(), EVAL_ROWS, EVAL_SEED)
                .map_err(|e| e.to_string())?;
            let report = rust_ai_ide_quantization::measure_accuracy(&model, &quantized, &inputs)
                .map_err(|e| e.to_string())?;
            Ok(measures(&report))
        })();
        outcome.record(id, "perflab", res);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accuracy_id_parses() {
        for spec in crate::catalog::quantization::SCENARIOS {
            if spec.id.starts_with("quantization/accuracy/") {
                assert!(parse(spec.id).is_some(), "{}", spec.id);
            }
        }
        assert_eq!(
            parse("quantization/accuracy/student_t_q4_0"),
            Some((
                WeightDistribution::StudentT { dof: 3 },
                PrecisionLevel::INT4
            ))
        );
        assert_eq!(parse("quantization/accuracy/uniform_q4_0"), None);
    }
}
