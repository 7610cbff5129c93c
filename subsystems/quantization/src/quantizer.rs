//! `DynamicQuantizer`: precision selection, quantization and measured accuracy loss.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{OptimizationError, QuantizationError};
use crate::hardware::HardwareCapabilities;
use crate::metrics::{
    AccuracyReport, CALIBRATION_ROWS, CALIBRATION_SEED, calibration_inputs, measure_accuracy,
};
use crate::model::Model;
use crate::precision::PrecisionLevel;
use crate::quantized::QuantizedModel;

/// Relative output error `optimize_for_hardware` tolerates unless told otherwise: 2%,
/// which Q8_0 meets with room to spare and 4-bit formats do not.
pub const DEFAULT_TOLERANCE: f64 = 0.02;

/// Below this many weight bytes per thread, splitting a matmul costs more in wake-ups
/// and barriers (a few microseconds) than the thread saves in streaming its share.
const MIN_BYTES_PER_THREAD: f64 = 256.0 * 1024.0;

/// Expected largest |z| in a block of 32 standard normal weights, which sets a block's
/// scale in the absmax formats (the mean of the maximum of 32 |N(0,1)|).
const BLOCK_ABSMAX_32: f64 = 2.07;

/// What a caller needs from an inference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Task {
    /// The largest tolerated relative error of the quantized layers' outputs (as
    /// `estimate_accuracy_loss` measures it): 0.01 is "within 1%".
    pub max_relative_error: f64,
    /// The time one forward pass may take, if bounded.
    pub latency_budget: Option<Duration>,
    /// Linear weights one forward pass reads (0: unknown; `quantize` fills in the model's).
    pub weights_per_call: u64,
    /// Input rows per forward pass.
    pub rows: usize,
}

impl Task {
    /// A task tolerating `max_relative_error`, one row per call, no latency budget.
    pub fn new(max_relative_error: f64) -> Self {
        Self {
            max_relative_error,
            latency_budget: None,
            weights_per_call: 0,
            rows: 1,
        }
    }

    /// The same task with a latency budget per forward pass.
    pub fn with_latency_budget(self, budget: Duration) -> Self {
        Self {
            latency_budget: Some(budget),
            ..self
        }
    }

    /// The same task with its size: weights per forward pass and rows per call.
    pub fn with_workload(self, weights_per_call: u64, rows: usize) -> Self {
        Self {
            weights_per_call,
            rows: rows.max(1),
            ..self
        }
    }
}

/// A model quantized for a machine, with the reasons.
#[derive(Debug, Clone)]
pub struct OptimizedModel {
    /// The quantized model.
    pub model: QuantizedModel,
    /// Its precision: the fastest the hardware supports within the tolerance.
    pub precision: PrecisionLevel,
    /// Threads worth giving candle's kernels for this model (`CANDLE_NUM_THREADS`; candle
    /// sizes its pool once per process).
    pub threads: usize,
    /// Predicted time of one single-row forward pass.
    pub predicted_latency: Duration,
    /// The measured accuracy of the chosen precision.
    pub accuracy: AccuracyReport,
}

/// Quantizes models, choosing the precision from the task and the hardware.
///
/// Accuracy is measured, never assumed: `estimate_accuracy_loss` quantizes the model and
/// runs its calibration batch through both versions. Results are cached per model id and
/// precision; `select_precision_level`, which sees no model, uses the worst loss measured
/// so far at each precision, and before any measurement the analytic error of the format
/// on Gaussian weights.
#[derive(Debug)]
pub struct DynamicQuantizer {
    precision_levels: Vec<PrecisionLevel>,
    tolerance: f64,
    accuracy: Mutex<HashMap<(u64, PrecisionLevel), AccuracyReport>>,
}

impl Default for DynamicQuantizer {
    fn default() -> Self {
        Self::new()
    }
}

impl DynamicQuantizer {
    /// A quantizer that considers every level (FP32, FP16, INT8, INT4 and Q4_K), with a 2%
    /// tolerance for `optimize_for_hardware`. Q4_K only qualifies for models whose widths
    /// are multiples of 256 (elsewhere its loss is infinite); where it does, it is more
    /// accurate than Q4_0 at the same size. On x86 with AVX-512 VNNI both run on repacked
    /// kernels (Q4_K on candle's, Q4_0 on this crate's tiles) of about the same speed; the
    /// choice between them goes by the measured loss and kernel times (see the README).
    pub fn new() -> Self {
        Self {
            precision_levels: PrecisionLevel::ALL.to_vec(),
            tolerance: DEFAULT_TOLERANCE,
            accuracy: Mutex::new(HashMap::new()),
        }
    }

    /// The same quantizer choosing among `levels` (FP32 is always a candidate).
    pub fn with_precision_levels(mut self, levels: &[PrecisionLevel]) -> Self {
        self.precision_levels = levels.to_vec();
        if !self.precision_levels.contains(&PrecisionLevel::FP32) {
            self.precision_levels.push(PrecisionLevel::FP32);
        }
        self
    }

    /// The same quantizer with another `optimize_for_hardware` tolerance.
    pub fn with_tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The levels this quantizer chooses among.
    pub fn precision_levels(&self) -> &[PrecisionLevel] {
        &self.precision_levels
    }

    /// Quantizes `model` at the precision its measured accuracy and this machine's
    /// measured speed make best for `task` (the rule of `select_precision_level`, with
    /// this model's own losses).
    pub fn quantize(
        &self,
        model: &Model,
        task: &Task,
    ) -> Result<QuantizedModel, QuantizationError> {
        let mut task = *task;
        if task.weights_per_call == 0 {
            task.weights_per_call = model.linear_weight_count();
        }
        let hw = HardwareCapabilities::detect();
        let precision = self.choose(&task, hw, |p| self.estimate_accuracy_loss(model, p));
        self.quantize_to(model, precision)
    }

    /// Quantizes `model` to `precision`, whatever the task.
    pub fn quantize_to(
        &self,
        model: &Model,
        precision: PrecisionLevel,
    ) -> Result<QuantizedModel, QuantizationError> {
        QuantizedModel::from_model(model, precision)
    }

    /// The precision for `task` on `hardware`:
    ///
    /// 1. candidates: this quantizer's levels that `hardware` runs on a vectorized path;
    /// 2. of those, the ones whose loss is within `task.max_relative_error` (if none, the
    ///    most accurate candidate: quality is not traded away silently for speed);
    /// 3. with a latency budget, the most accurate of them predicted to fit it (spend the
    ///    slack on accuracy), or the fastest if none fits; without one, the fastest.
    ///
    /// Losses are the worst measured so far at each level (see the type's docs); latency
    /// is `hardware`'s measured kernel speed times `task.weights_per_call`.
    pub fn select_precision_level(
        &self,
        task: &Task,
        hardware: &HardwareCapabilities,
    ) -> PrecisionLevel {
        self.choose(task, hardware, |p| self.expected_loss(p))
    }

    /// The relative error of `model`'s quantized linear layers at `precision` on the
    /// calibration batch (see [`AccuracyReport::layer_relative_error`]), measured once per
    /// model and precision. Infinite when the model cannot be stored at that precision
    /// (dimensions not a multiple of the format's block).
    pub fn estimate_accuracy_loss(&self, model: &Model, precision: PrecisionLevel) -> f64 {
        self.accuracy_report(model, precision)
            .map_or(f64::INFINITY, |r| r.layer_relative_error)
    }

    /// Every accuracy figure of `model` at `precision` (cached like `estimate_accuracy_loss`).
    pub fn accuracy_report(
        &self,
        model: &Model,
        precision: PrecisionLevel,
    ) -> Result<AccuracyReport, QuantizationError> {
        let key = (model.id(), precision);
        if let Some(r) = self.cache().get(&key) {
            return Ok(*r);
        }
        // Measured outside the lock: two threads may both measure, with the same result.
        let quantized = self.quantize_to(model, precision)?;
        let inputs = calibration_inputs(model.hidden(), CALIBRATION_ROWS, CALIBRATION_SEED)?;
        let report = measure_accuracy(model, &quantized, &inputs)?;
        self.cache().insert(key, report);
        Ok(report)
    }

    /// `model` at the fastest precision `hardware` supports whose measured loss is within
    /// this quantizer's tolerance, with a thread count for it.
    pub fn optimize_for_hardware(
        &self,
        model: &Model,
        hardware: &HardwareCapabilities,
    ) -> Result<OptimizedModel, OptimizationError> {
        let weights = model.linear_weight_count();
        let task = Task::new(self.tolerance).with_workload(weights, 1);
        let precision = self.choose(&task, hardware, |p| self.estimate_accuracy_loss(model, p));
        let accuracy = self.accuracy_report(model, precision)?;
        if accuracy.layer_relative_error > self.tolerance {
            return Err(OptimizationError::NoPrecisionMeetsQuality {
                tolerance: self.tolerance,
                best: precision,
                best_loss: accuracy.layer_relative_error,
            });
        }
        // The largest matmul decides how many threads can share the work usefully.
        let layer_bytes = (model.hidden() * model.ffn()) as f64 * precision.bits_per_weight() / 8.0;
        let threads =
            ((layer_bytes / MIN_BYTES_PER_THREAD) as usize).clamp(1, hardware.cores.max(1));
        Ok(OptimizedModel {
            model: self.quantize_to(model, precision)?,
            precision,
            threads,
            predicted_latency: hardware.predicted_latency(precision, weights, 1),
            accuracy,
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, PrecisionLevel), AccuracyReport>> {
        // A panic while holding the lock cannot leave a half-written report behind (inserts
        // are single calls), so a poisoned cache is still sound.
        self.accuracy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The worst loss measured at `precision` so far, else the format's analytic loss.
    fn expected_loss(&self, precision: PrecisionLevel) -> f64 {
        self.cache()
            .iter()
            .filter(|((_, p), _)| *p == precision)
            .map(|(_, r)| r.layer_relative_error)
            .reduce(f64::max)
            .unwrap_or_else(|| analytic_loss(precision))
    }

    fn choose(
        &self,
        task: &Task,
        hw: &HardwareCapabilities,
        loss_of: impl Fn(PrecisionLevel) -> f64,
    ) -> PrecisionLevel {
        let mut candidates: Vec<(PrecisionLevel, f64, Duration)> = self
            .precision_levels
            .iter()
            .copied()
            .filter(|&p| hw.supports_precision(p))
            .map(|p| {
                (
                    p,
                    loss_of(p),
                    hw.predicted_latency(p, task.weights_per_call, task.rows),
                )
            })
            .collect();
        if candidates.is_empty() {
            return PrecisionLevel::FP32;
        }
        let most_accurate = |c: &[(PrecisionLevel, f64, Duration)]| {
            c.iter()
                .min_by(|a, b| {
                    a.1.total_cmp(&b.1)
                        .then(b.0.bits_per_weight().total_cmp(&a.0.bits_per_weight()))
                })
                .map(|c| c.0)
        };
        // Ties in latency (an unknown workload predicts zero for all) go to fewer bits,
        // then to the smaller loss (Q4_0 and Q4_K store 4.5 bits per weight alike).
        let fastest = |c: &[(PrecisionLevel, f64, Duration)]| {
            c.iter()
                .min_by(|a, b| {
                    a.2.cmp(&b.2)
                        .then(a.0.bits_per_weight().total_cmp(&b.0.bits_per_weight()))
                        .then(a.1.total_cmp(&b.1))
                })
                .map(|c| c.0)
        };
        let accurate_enough: Vec<_> = candidates
            .iter()
            .copied()
            .filter(|c| c.1 <= task.max_relative_error)
            .collect();
        if accurate_enough.is_empty() {
            candidates.sort_by(|a, b| a.1.total_cmp(&b.1));
            return candidates[0].0;
        }
        let pick = match task.latency_budget {
            None => fastest(&accurate_enough),
            Some(budget) => {
                let fitting: Vec<_> = accurate_enough
                    .iter()
                    .copied()
                    .filter(|c| c.2 <= budget)
                    .collect();
                most_accurate(&fitting).or_else(|| fastest(&accurate_enough))
            }
        };
        pick.unwrap_or(PrecisionLevel::FP32)
    }
}

/// The relative output error a format gives a linear layer with Gaussian weights and
/// inputs, before any measurement: the RMS rounding error over the RMS weight.
///
/// f16 rounds to an 11-bit significand: relative error uniform in +-2^-11, RMS 2^-11/sqrt(3).
/// Q8_0 and Q4_0 round to a step `d = absmax / 127` and `absmax / 8`, RMS error
/// `d / sqrt(12)`, with a block's absmax about 2.07 sigma; Q4_K spans a sub-block's
/// min..max (about twice the absmax) in 15 steps. The integer kernels also quantize the
/// activations to 8 bits (Q8_0 / Q8_K), an independent error of the Q8_0 size, added in
/// quadrature.
fn analytic_loss(precision: PrecisionLevel) -> f64 {
    let q8 = BLOCK_ABSMAX_32 / 127.0 / 12f64.sqrt();
    match precision {
        PrecisionLevel::FP32 => 0.0,
        PrecisionLevel::FP16 => 2f64.powi(-11) / 3f64.sqrt(),
        PrecisionLevel::INT8 => (2.0 * q8 * q8).sqrt(),
        PrecisionLevel::INT4 => {
            let e = BLOCK_ABSMAX_32 / 8.0 / 12f64.sqrt();
            (e * e + q8 * q8).sqrt()
        }
        PrecisionLevel::Q4K => {
            let e = 2.0 * BLOCK_ABSMAX_32 / 15.0 / 12f64.sqrt();
            (e * e + q8 * q8).sqrt()
        }
    }
}
