//! Adapter probe, capabilities, precision support, calibration, batch sizing, and the OS
//! NPU/TPU scan.

use std::fs;

use rust_ai_ide_accel::{
    DeviceType, GPUVendor, HardwareAccelerator, PrecisionLevel, detect_adapter,
    detect_os_accelerators,
};

use crate::gpu;

#[test]
fn probe_agrees_with_the_accelerator() {
    let Some(acc) = gpu("probe_agrees_with_the_accelerator") else {
        assert_eq!(detect_adapter(), None);
        return;
    };
    let summary = detect_adapter().expect("an adapter was opened, so the probe finds one");
    let caps = acc
        .capabilities()
        .adapter
        .as_ref()
        .expect("gpu back end has adapter caps");
    assert_eq!(caps.summary, summary);
    assert!(
        ["Other", "IntegratedGpu", "DiscreteGpu", "VirtualGpu", "Cpu"]
            .contains(&summary.device_type.as_str()),
        "{summary:?}"
    );
    assert_eq!(caps.software, summary.device_type == "Cpu");
    assert_eq!(
        acc.device_type(),
        &DeviceType::GPU {
            vendor: GPUVendor::from_id(summary.vendor)
        }
    );
    assert!(
        caps.max_compute_invocations_per_workgroup >= 256,
        "kernels use 256 invocations"
    );
    assert!(
        caps.max_compute_workgroup_storage_size >= 8192,
        "matmul tiles use 8 KiB"
    );
    let json = serde_json::to_value(&summary).expect("serializes");
    assert_eq!(json["backend"], summary.backend.as_str());
}

#[test]
fn precision_support_follows_features() {
    let cpu = HardwareAccelerator::cpu();
    assert!(cpu.supports_precision(PrecisionLevel::FP32));
    assert!(cpu.supports_precision(PrecisionLevel::INT8));
    assert!(!cpu.supports_precision(PrecisionLevel::INT4));
    assert_eq!(
        cpu.supports_precision(PrecisionLevel::FP16),
        cpu.capabilities().cpu.has_f16()
    );
    if let Some(acc) = gpu("precision_support_follows_features") {
        let f16 = acc
            .capabilities()
            .adapter
            .as_ref()
            .expect("adapter")
            .shader_f16;
        assert_eq!(acc.supports_precision(PrecisionLevel::FP16), f16);
    }
}

#[test]
fn gpu_calibration_and_batch_curve_are_measured() {
    let Some(acc) = gpu("gpu_calibration_and_batch_curve_are_measured") else {
        return;
    };
    let cal = acc.calibration();
    assert!(
        cal.memory_bandwidth > 0 && cal.compute_throughput > 0.0,
        "{cal:?}"
    );
    assert_eq!(acc.memory_bandwidth(), cal.memory_bandwidth, "cached");
    let model = 4 * 64 * 64;
    let curve = acc.batch_throughput_curve(model);
    assert!(
        curve.len() >= 2 && curve.iter().all(|p| p.samples_per_second > 0.0),
        "{curve:?}"
    );
    let best = curve
        .iter()
        .map(|p| p.samples_per_second)
        .fold(0.0, f64::max);
    let chosen = acc.optimal_batch_size(model);
    let point = curve
        .iter()
        .find(|p| p.batch == chosen)
        .expect("on the curve");
    assert!(
        point.samples_per_second >= 0.9 * best,
        "{chosen} on {curve:?}"
    );
}

#[test]
fn os_accelerators_come_only_from_what_the_os_shows() {
    let root = tempfile::tempdir().expect("tempdir");
    assert!(
        detect_os_accelerators(root.path()).is_empty(),
        "nothing invented"
    );
    let npu = root.path().join("sys/class/accel/accel0/device");
    fs::create_dir_all(&npu).expect("mkdir");
    fs::write(npu.join("uevent"), "DRIVER=intel_vpu\nPCI_ID=8086:7D1D\n").expect("write");
    fs::write(npu.join("vendor"), "0x8086\n").expect("write");
    fs::write(npu.join("device"), "0x7d1d\n").expect("write");
    let apex = root.path().join("sys/class/apex/apex_0/device");
    fs::create_dir_all(&apex).expect("mkdir");
    fs::write(apex.join("uevent"), "DRIVER=apex\n").expect("write");
    fs::create_dir_all(root.path().join("dev/accel")).expect("drm accel folder");
    fs::write(root.path().join("dev/accel0"), "").expect("cloud tpu chip");
    assert_eq!(
        detect_os_accelerators(root.path()),
        vec![
            DeviceType::NPU {
                model: "intel_vpu 8086:7d1d".into()
            },
            DeviceType::TPU {
                version: "apex".into()
            },
            DeviceType::TPU {
                version: "accel0".into()
            },
        ]
    );
}
