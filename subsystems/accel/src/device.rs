//! What the machine has: the device a kernel runs on, adapter and CPU capabilities, and the
//! NPUs/TPUs the operating system reports.

use std::path::Path;

use crate::probe::AdapterSummary;

/// GPU vendors, from the adapter's PCI (or Khronos) vendor id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GPUVendor {
    /// NVIDIA (0x10de).
    Nvidia,
    /// AMD (0x1002).
    Amd,
    /// Intel (0x8086).
    Intel,
    /// Apple (0x106b).
    Apple,
    /// Qualcomm (0x5143).
    Qualcomm,
    /// Arm (0x13b5).
    Arm,
    /// Mesa's software drivers such as lavapipe (Khronos id 0x10005).
    Mesa,
    /// Any other id.
    Other(u32),
}

impl GPUVendor {
    /// The vendor of a PCI or Khronos vendor id.
    pub fn from_id(id: u32) -> Self {
        match id {
            0x10de => Self::Nvidia,
            0x1002 => Self::Amd,
            0x8086 => Self::Intel,
            0x106b => Self::Apple,
            0x5143 => Self::Qualcomm,
            0x13b5 => Self::Arm,
            0x10005 => Self::Mesa,
            other => Self::Other(other),
        }
    }
}

/// A compute device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceType {
    /// The host CPU (the fallback back end).
    CPU,
    /// A wgpu adapter.
    GPU {
        /// Who made it.
        vendor: GPUVendor,
    },
    /// A neural processing unit the OS exposes through the DRM accel subsystem.
    NPU {
        /// Driver and PCI id, e.g. `intel_vpu 8086:7d1d`.
        model: String,
    },
    /// A tensor processing unit the OS exposes (Edge TPU `apex` class, Cloud TPU `/dev/accel*`).
    TPU {
        /// What the OS says about it, e.g. `apex 1ac1:089a` or `accel0`.
        version: String,
    },
}

/// Limits and features of the wgpu adapter that matter for compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterCapabilities {
    /// Name, vendor, type, driver, backend.
    pub summary: AdapterSummary,
    /// Largest buffer the device may create.
    pub max_buffer_size: u64,
    /// Largest storage buffer binding.
    pub max_storage_buffer_binding_size: u64,
    /// Bytes of workgroup memory per workgroup.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// `shader-f16`: half-precision arithmetic in shaders.
    pub shader_f16: bool,
    /// 64-bit integers in shaders.
    pub shader_int64: bool,
    /// Subgroup operations.
    pub subgroup: bool,
    /// Timestamp queries.
    pub timestamp_query: bool,
    /// The allocation strategy asked of the device (`performance`: large memory blocks).
    pub memory_hint: &'static str,
    /// A software rasterizer (wgpu `DeviceType::Cpu`, such as lavapipe).
    pub software: bool,
}

/// What the host CPU offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuCapabilities {
    /// Threads the OS lets this process run at once.
    pub logical_cores: usize,
    /// SIMD extensions detected at run time (`sse4.2`, `avx2`, `fma`, `f16c`, `avx512f`,
    /// `neon`, ...).
    pub simd: Vec<&'static str>,
}

/// Everything the accelerator knows about the hardware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareCapabilities {
    /// The adapter, when the GPU back end is in use.
    pub adapter: Option<AdapterCapabilities>,
    /// The host CPU.
    pub cpu: CpuCapabilities,
    /// NPUs and TPUs the OS reports (they run no kernels of this crate; listed for callers
    /// that route work to their own runtimes).
    pub os_accelerators: Vec<DeviceType>,
}

impl HardwareCapabilities {
    pub(crate) fn from_adapter(
        adapter: &wgpu::Adapter,
        limits: &wgpu::Limits,
    ) -> AdapterCapabilities {
        let features = adapter.features();
        let summary = AdapterSummary::from_info(&adapter.get_info());
        AdapterCapabilities {
            software: summary.device_type == "Cpu",
            summary,
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            shader_int64: features.contains(wgpu::Features::SHADER_INT64),
            subgroup: features.contains(wgpu::Features::SUBGROUP),
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            memory_hint: "performance",
        }
    }
}

impl CpuCapabilities {
    /// Probes the running CPU.
    pub fn detect() -> Self {
        Self {
            logical_cores: std::thread::available_parallelism().map_or(1, usize::from),
            simd: simd_features(),
        }
    }

    /// Whether the CPU converts or computes half floats in hardware (`f16c`, or Arm `fp16`).
    pub fn has_f16(&self) -> bool {
        self.simd.iter().any(|f| matches!(*f, "f16c" | "fp16"))
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_features() -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! probe {
        ($($f:tt),*) => {$(
            if std::arch::is_x86_feature_detected!($f) {
                out.push($f);
            }
        )*};
    }
    probe!(
        "sse2",
        "sse4.2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512vnni"
    );
    out
}

#[cfg(target_arch = "aarch64")]
fn simd_features() -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! probe {
        ($($f:tt),*) => {$(
            if std::arch::is_aarch64_feature_detected!($f) {
                out.push($f);
            }
        )*};
    }
    probe!("neon", "fp16", "dotprod", "i8mm", "sve");
    out
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_features() -> Vec<&'static str> {
    Vec::new()
}

/// NPUs and TPUs under `root` (`/` on a real system): DRM accel devices
/// (`sys/class/accel/accel*`, an NPU unless the driver is a TPU's), Edge TPUs
/// (`sys/class/apex/apex_*`), and Cloud TPU chips (`dev/accel<N>` files). Nothing is reported
/// that the OS does not show.
pub fn detect_os_accelerators(root: &Path) -> Vec<DeviceType> {
    let mut out = Vec::new();
    for dev in sorted_entries(&root.join("sys/class/accel"), "accel") {
        let ident = device_ident(&dev);
        if ident.contains("tpu") {
            out.push(DeviceType::TPU { version: ident });
        } else {
            out.push(DeviceType::NPU { model: ident });
        }
    }
    for dev in sorted_entries(&root.join("sys/class/apex"), "apex") {
        out.push(DeviceType::TPU {
            version: device_ident(&dev),
        });
    }
    for dev in sorted_entries(&root.join("dev"), "accel") {
        let name = dev.file_name().map(|n| n.to_string_lossy().into_owned());
        // `/dev/accel` itself is the DRM accel folder (already counted through sysfs).
        if let Some(name) =
            name.filter(|n| n.len() > 5 && n[5..].bytes().all(|b| b.is_ascii_digit()))
        {
            out.push(DeviceType::TPU { version: name });
        }
    }
    out
}

fn sorted_entries(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// `driver vendor:device` of a sysfs class entry, from its `device/` link (whatever of it
/// exists), else the entry's name.
fn device_ident(class_entry: &Path) -> String {
    let dev = class_entry.join("device");
    let driver = std::fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| {
            std::fs::read_to_string(dev.join("uevent"))
                .ok()
                .and_then(|u| {
                    u.lines()
                        .find_map(|l| l.strip_prefix("DRIVER=").map(str::to_owned))
                })
        });
    let read_id = |f: &str| {
        std::fs::read_to_string(dev.join(f))
            .ok()
            .map(|s| s.trim().trim_start_matches("0x").to_owned())
    };
    let pci = read_id("vendor")
        .zip(read_id("device"))
        .map(|(v, d)| format!("{v}:{d}"));
    let name = class_entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match (driver, pci) {
        (Some(d), Some(p)) => format!("{d} {p}"),
        (Some(d), None) => d,
        (None, Some(p)) => format!("{name} {p}"),
        (None, None) => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_from_ids() {
        assert_eq!(GPUVendor::from_id(0x10de), GPUVendor::Nvidia);
        assert_eq!(GPUVendor::from_id(0x10005), GPUVendor::Mesa);
        assert_eq!(GPUVendor::from_id(7), GPUVendor::Other(7));
    }

    #[test]
    fn cpu_probe_sees_at_least_one_core() {
        let cpu = CpuCapabilities::detect();
        assert!(cpu.logical_cores >= 1);
        #[cfg(target_arch = "x86_64")]
        assert!(cpu.simd.contains(&"sse2"), "x86_64 always has sse2");
    }
}
