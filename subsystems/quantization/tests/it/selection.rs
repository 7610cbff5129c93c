//! `select_precision_level`, `quantize` and `optimize_for_hardware` decisions.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_ai_ide_quantization::{
    DynamicQuantizer, HardwareCapabilities, KernelTiming, Model, ModelConfig, OptimizationError,
    PrecisionLevel, Task,
};

/// A machine with AVX2 and F16C whose kernels take (M=1) 1.0, 0.5, 0.3, 0.15 and 0.25 ns
/// per weight at f32, f16, Q8_0, Q4_0 and Q4_K.
fn avx2_machine() -> HardwareCapabilities {
    let timing = |ns: f64| KernelTiming {
        ns_per_weight_m1: ns,
        ns_per_weight_m16: ns * 2.0,
    };
    HardwareCapabilities {
        avx2: true,
        avx512f: false,
        f16c: true,
        fma: true,
        neon: false,
        cores: 8,
        kernel_threads: 8,
        memory_bandwidth: 20_000_000_000,
        kernels: BTreeMap::from([
            (PrecisionLevel::FP32, timing(1.0)),
            (PrecisionLevel::FP16, timing(0.5)),
            (PrecisionLevel::INT8, timing(0.3)),
            (PrecisionLevel::INT4, timing(0.15)),
            (PrecisionLevel::Q4K, timing(0.25)),
        ]),
    }
}

fn scalar_machine() -> HardwareCapabilities {
    HardwareCapabilities {
        avx2: false,
        f16c: false,
        fma: false,
        ..avx2_machine()
    }
}

/// 10M weights: 10 ms at f32, 5 at f16, 3 at Q8_0, 1.5 at Q4_0 on `avx2_machine`.
const WEIGHTS: u64 = 10_000_000;

#[test]
fn quality_decides_without_a_budget() {
    let q = DynamicQuantizer::new();
    let hw = avx2_machine();
    let task = |tol: f64| Task::new(tol).with_workload(WEIGHTS, 1);
    // Before any measurement the analytic losses hold: f16 ~3e-4, Q8_0 ~7e-3, Q4_0 ~8e-2.
    assert_eq!(
        q.select_precision_level(&task(0.2), &hw),
        PrecisionLevel::INT4
    );
    assert_eq!(
        q.select_precision_level(&task(0.02), &hw),
        PrecisionLevel::INT8
    );
    assert_eq!(
        q.select_precision_level(&task(0.001), &hw),
        PrecisionLevel::FP16
    );
    assert_eq!(
        q.select_precision_level(&task(0.0), &hw),
        PrecisionLevel::FP32
    );
    // Nothing meets a negative tolerance: the most accurate level, not the fastest.
    assert_eq!(
        q.select_precision_level(&task(-1.0), &hw),
        PrecisionLevel::FP32
    );
}

#[test]
fn a_budget_buys_accuracy_within_quality() {
    let q = DynamicQuantizer::new();
    let hw = avx2_machine();
    let loose = Task::new(0.2).with_workload(WEIGHTS, 1);
    // 6 ms fits f16 (5 ms) but not f32: the most accurate that fits.
    let t = loose.with_latency_budget(Duration::from_millis(6));
    assert_eq!(q.select_precision_level(&t, &hw), PrecisionLevel::FP16);
    // 2 ms fits only Q4_0.
    let t = loose.with_latency_budget(Duration::from_millis(2));
    assert_eq!(q.select_precision_level(&t, &hw), PrecisionLevel::INT4);
    // 1 ms fits nothing within quality 0.02: the fastest that meets quality (Q8_0), since
    // quality is never traded for the budget.
    let t = Task::new(0.02)
        .with_workload(WEIGHTS, 1)
        .with_latency_budget(Duration::from_millis(1));
    assert_eq!(q.select_precision_level(&t, &hw), PrecisionLevel::INT8);
    // More rows make every kernel slower: at 16 rows Q4_0 takes 3 ms and misses 2 ms.
    let t = Task::new(0.02)
        .with_workload(WEIGHTS, 16)
        .with_latency_budget(Duration::from_millis(2));
    assert_eq!(q.select_precision_level(&t, &hw), PrecisionLevel::INT8);
}

#[test]
fn hardware_without_simd_keeps_float_formats() {
    let q = DynamicQuantizer::new();
    let hw = scalar_machine();
    assert!(!hw.supports_precision(PrecisionLevel::INT4));
    assert!(!hw.supports_precision(PrecisionLevel::FP16));
    let t = Task::new(0.2).with_workload(WEIGHTS, 1);
    assert_eq!(q.select_precision_level(&t, &hw), PrecisionLevel::FP32);
}

#[test]
fn measured_losses_replace_the_analytic_ones() {
    let q = DynamicQuantizer::new();
    let hw = avx2_machine();
    let analytic = q.select_precision_level(&Task::new(0.07).with_workload(WEIGHTS, 1), &hw);
    // Q4_0's analytic loss (~0.077) is above 0.07: Q8_0.
    assert_eq!(analytic, PrecisionLevel::INT8);
    let model = Model::seeded(
        &ModelConfig {
            layers: 1,
            hidden: 256,
            ffn: 512,
            ..ModelConfig::default()
        },
        3,
    )
    .unwrap();
    let measured = q.estimate_accuracy_loss(&model, PrecisionLevel::INT4);
    let task = Task::new(measured).with_workload(WEIGHTS, 1);
    assert_eq!(q.select_precision_level(&task, &hw), PrecisionLevel::INT4);
    let task = Task::new(measured * 0.99).with_workload(WEIGHTS, 1);
    assert_ne!(q.select_precision_level(&task, &hw), PrecisionLevel::INT4);
}

#[test]
fn optimize_for_hardware_picks_the_fastest_within_tolerance() {
    let model = Model::seeded(&ModelConfig::default(), 9).unwrap();
    let hw = avx2_machine();
    let opt = DynamicQuantizer::new()
        .optimize_for_hardware(&model, &hw)
        .unwrap();
    assert_eq!(opt.precision, PrecisionLevel::INT8);
    assert_eq!(opt.model.precision(), PrecisionLevel::INT8);
    assert!(opt.accuracy.layer_relative_error <= 0.02);
    // 256 x 1024 Q8_0 weights are 278 KiB: one thread's worth.
    assert_eq!(opt.threads, 1);
    assert_eq!(
        opt.predicted_latency,
        hw.predicted_latency(PrecisionLevel::INT8, model.linear_weight_count(), 1)
    );
    let loose = DynamicQuantizer::new().with_tolerance(0.5);
    assert_eq!(
        loose.optimize_for_hardware(&model, &hw).unwrap().precision,
        PrecisionLevel::INT4
    );
    let impossible = DynamicQuantizer::new().with_tolerance(-1.0);
    assert!(matches!(
        impossible.optimize_for_hardware(&model, &hw),
        Err(OptimizationError::NoPrecisionMeetsQuality {
            best: PrecisionLevel::FP32,
            ..
        })
    ));
}

#[test]
fn q4k_is_chosen_when_enabled_and_more_accurate() {
    let model = Model::seeded(
        &ModelConfig {
            distribution: rust_ai_ide_quantization::WeightDistribution::StudentT { dof: 3 },
            ..ModelConfig::default()
        },
        13,
    )
    .unwrap();
    let mut hw = avx2_machine();
    // As fast as Q4_0 here, so that only accuracy separates them.
    hw.kernels.insert(
        PrecisionLevel::Q4K,
        KernelTiming {
            ns_per_weight_m1: 0.15,
            ns_per_weight_m16: 0.3,
        },
    );
    let q =
        DynamicQuantizer::new().with_precision_levels(&[PrecisionLevel::INT4, PrecisionLevel::Q4K]);
    assert!(q.precision_levels().contains(&PrecisionLevel::FP32));
    let t = Task::new(0.5).with_workload(model.linear_weight_count(), 1);
    let (l4, lk) = (
        q.estimate_accuracy_loss(&model, PrecisionLevel::INT4),
        q.estimate_accuracy_loss(&model, PrecisionLevel::Q4K),
    );
    let chosen = q.select_precision_level(&t, &hw);
    // Equal speed and size: the more accurate of the two 4-bit formats.
    assert_eq!(
        chosen,
        if lk < l4 {
            PrecisionLevel::Q4K
        } else {
            PrecisionLevel::INT4
        },
        "q4_0 {l4} q4k {lk}"
    );
}

#[test]
fn quantize_uses_the_models_own_losses() {
    let model = Model::seeded(&ModelConfig::default(), 2).unwrap();
    let q = DynamicQuantizer::new();
    let out = q.quantize(&model, &Task::new(0.0)).unwrap();
    assert_eq!(out.precision(), PrecisionLevel::FP32);
    let out = q.quantize(&model, &Task::new(0.02)).unwrap();
    // This machine's measured kernels decide between the levels within 2%: f16 or Q8_0.
    assert!(matches!(
        out.precision(),
        PrecisionLevel::FP16 | PrecisionLevel::INT8 | PrecisionLevel::FP32
    ));
    assert!(q.estimate_accuracy_loss(&model, out.precision()) <= 0.02);
}

#[test]
fn detected_hardware_is_measured() {
    let hw = HardwareCapabilities::detect();
    assert!(hw.cores >= 1 && hw.kernel_threads >= 1);
    assert!(
        hw.memory_bandwidth() > 100_000_000,
        "{} B/s",
        hw.memory_bandwidth()
    );
    let f32 = hw
        .kernels
        .get(&PrecisionLevel::FP32)
        .expect("f32 kernel timed");
    assert!(f32.ns_per_weight_m1 > 0.0 && f32.ns_per_weight_m16 > 0.0);
    assert!(
        std::ptr::eq(hw, HardwareCapabilities::detect()),
        "measured once"
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(hw.avx2, std::is_x86_feature_detected!("avx2"));
}
