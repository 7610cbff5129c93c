//! The runner fingerprint: a stable hash of the facts that make results comparable.
//!
//! The facts are the CPU model, the number of CPUs this process may use, total memory
//! (rounded to whole GiB so that firmware reservations do not change it), OS name and
//! version, kernel, the rustc version line and host target, and for GPU runners the
//! wgpu adapter (name, vendor, device type, driver). The fingerprint is the first 16 hex
//! digits of SHA-256 over a canonical, versioned text of those facts: the same machine
//! gives the same fingerprint, and a change in any fact gives another.

use std::fmt;
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FingerprintError;

/// A GPU adapter as wgpu describes it (supplied by the scenario runner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuAdapter {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.7, 256 bits)`.
    pub name: String,
    /// PCI vendor id (wgpu's `AdapterInfo::vendor`).
    pub vendor: u32,
    /// Kind of device.
    pub device_type: GpuDeviceType,
    /// Driver name and version.
    pub driver: String,
}

/// wgpu's `DeviceType`, spelled as wgpu spells its variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GpuDeviceType {
    /// Other or unknown.
    Other,
    /// GPU integrated with the CPU.
    IntegratedGpu,
    /// Discrete GPU.
    DiscreteGpu,
    /// Virtual or hosted GPU.
    VirtualGpu,
    /// A software rasterizer on the CPU (lavapipe, llvmpipe, WARP).
    Cpu,
}

/// The facts a fingerprint is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerFacts {
    /// CPU brand string.
    pub cpu_model: String,
    /// CPUs this process may use (respects affinity and cgroup quotas).
    pub cpu_cores: u32,
    /// Total memory, rounded to the nearest GiB.
    pub memory_gib: u64,
    /// OS name and version, e.g. `Linux 24.04 Ubuntu`.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// The first line of `rustc -vV`, e.g. `rustc 1.95.0 (… 2026-…)`.
    pub rustc: String,
    /// rustc's host target triple.
    pub target: String,
    /// The GPU adapter, on GPU runners.
    pub gpu: Option<GpuAdapter>,
}

/// A runner's fingerprint together with the facts it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerInfo {
    /// 16 lowercase hex digits.
    pub fingerprint: String,
    /// CPU brand string.
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cpu_cores: u32,
    /// Total memory in GiB (rounded).
    pub memory_gib: u64,
    /// OS name and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// rustc version line.
    pub rustc: String,
    /// rustc host target.
    pub target: String,
    /// The GPU adapter, on GPU runners.
    pub gpu: Option<GpuAdapter>,
}

impl GpuAdapter {
    /// Whether this adapter is a software rasterizer (reported as such).
    pub fn is_software(&self) -> bool {
        self.device_type == GpuDeviceType::Cpu
    }
}

impl GpuDeviceType {
    /// wgpu's variant name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Other => "Other",
            Self::IntegratedGpu => "IntegratedGpu",
            Self::DiscreteGpu => "DiscreteGpu",
            Self::VirtualGpu => "VirtualGpu",
            Self::Cpu => "Cpu",
        }
    }

    /// Parses wgpu's variant name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Other" => Self::Other,
            "IntegratedGpu" => Self::IntegratedGpu,
            "DiscreteGpu" => Self::DiscreteGpu,
            "VirtualGpu" => Self::VirtualGpu,
            "Cpu" => Self::Cpu,
            _ => return None,
        })
    }
}

impl fmt::Display for GpuDeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunnerFacts {
    /// Reads the facts of this machine; `gpu` is the adapter the scenario runner found.
    pub fn detect(gpu: Option<GpuAdapter>) -> Result<Self, FingerprintError> {
        let (rustc, target) = rustc_version()?;
        let mut sys = sysinfo::System::new().map_err(|e| FingerprintError::System {
            message: e.to_string(),
        })?;
        sys.refresh_memory();
        sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        let brand = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_owned())
            .filter(|b| !b.is_empty())
            .or_else(cpu_model_from_proc)
            .unwrap_or_else(sysinfo::System::cpu_arch);
        let cpu_cores = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or_else(|_| u32::try_from(sys.cpus().len()).unwrap_or(u32::MAX));
        const GIB: u64 = 1 << 30;
        let memory_gib = (sys.total_memory() + GIB / 2) / GIB;
        let os_name = sysinfo::System::name().unwrap_or_else(|_| std::env::consts::OS.to_owned());
        let os = match sysinfo::System::os_version() {
            Ok(v) if !v.is_empty() => format!("{os_name} {v}"),
            _ => os_name,
        };
        let kernel = sysinfo::System::kernel_version().unwrap_or_else(|_| "unknown".to_owned());
        Ok(Self {
            cpu_model: brand,
            cpu_cores,
            memory_gib,
            os,
            kernel,
            rustc,
            target,
            gpu,
        })
    }

    /// The fingerprint of these facts.
    pub fn fingerprint(&self) -> String {
        let mut text = String::from("perflab-runner-v1\n");
        let mut line = |k: &str, v: &str| {
            text.push_str(k);
            text.push('=');
            // Newlines inside a value would let two fact sets collide; escape them.
            text.push_str(&v.replace('\\', "\\\\").replace('\n', "\\n"));
            text.push('\n');
        };
        line("cpu_model", &self.cpu_model);
        line("cpu_cores", &self.cpu_cores.to_string());
        line("memory_gib", &self.memory_gib.to_string());
        line("os", &self.os);
        line("kernel", &self.kernel);
        line("rustc", &self.rustc);
        line("target", &self.target);
        match &self.gpu {
            None => line("gpu", "none"),
            Some(g) => {
                line("gpu.name", &g.name);
                line("gpu.vendor", &g.vendor.to_string());
                line("gpu.device_type", g.device_type.as_str());
                line("gpu.driver", &g.driver);
            }
        }
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

impl RunnerInfo {
    /// Describes this machine (see [`RunnerFacts::detect`]).
    pub fn detect(gpu: Option<GpuAdapter>) -> Result<Self, FingerprintError> {
        Ok(Self::from_facts(RunnerFacts::detect(gpu)?))
    }

    /// Computes the fingerprint of `facts`.
    pub fn from_facts(facts: RunnerFacts) -> Self {
        let fingerprint = facts.fingerprint();
        Self {
            fingerprint,
            cpu_model: facts.cpu_model,
            cpu_cores: facts.cpu_cores,
            memory_gib: facts.memory_gib,
            os: facts.os,
            kernel: facts.kernel,
            rustc: facts.rustc,
            target: facts.target,
            gpu: facts.gpu,
        }
    }

    /// The facts this runner was described by.
    pub fn facts(&self) -> RunnerFacts {
        RunnerFacts {
            cpu_model: self.cpu_model.clone(),
            cpu_cores: self.cpu_cores,
            memory_gib: self.memory_gib,
            os: self.os.clone(),
            kernel: self.kernel.clone(),
            rustc: self.rustc.clone(),
            target: self.target.clone(),
            gpu: self.gpu.clone(),
        }
    }

    /// Whether the stored fingerprint matches the facts (a tampered or stale record does not).
    pub fn is_consistent(&self) -> bool {
        self.facts().fingerprint() == self.fingerprint
    }

    /// One line describing the runner for reports.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} ({} CPUs, {} GiB, {} / {}, {}, {})",
            self.cpu_model,
            self.cpu_cores,
            self.memory_gib,
            self.os,
            self.kernel,
            self.rustc,
            self.target
        );
        if let Some(g) = &self.gpu {
            s.push_str(&format!(
                ", GPU {} [{}{}], driver {}",
                g.name,
                g.device_type,
                if g.is_software() { ", software" } else { "" },
                g.driver
            ));
        }
        s
    }
}

/// `rustc -vV` (honouring `$RUSTC`): the version line and the host target.
fn rustc_version() -> Result<(String, String), FingerprintError> {
    let program = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(&program)
        .arg("-vV")
        .output()
        .map_err(|source| FingerprintError::Command {
            program: program.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(FingerprintError::Output {
            program,
            reason: format!("exited with {}", out.status),
        });
    }
    parse_rustc_vv(&String::from_utf8_lossy(&out.stdout))
        .map_err(|reason| FingerprintError::Output { program, reason })
}

fn parse_rustc_vv(text: &str) -> Result<(String, String), String> {
    let version = text
        .lines()
        .next()
        .filter(|l| l.starts_with("rustc "))
        .ok_or("first line is not `rustc <version>`")?
        .trim()
        .to_owned();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or("no `host:` line")?
        .trim()
        .to_owned();
    Ok((version, host))
}

fn cpu_model_from_proc() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RunnerFacts {
        RunnerFacts {
            cpu_model: "AMD EPYC 7B13".into(),
            cpu_cores: 2,
            memory_gib: 24,
            os: "Linux 24.04 Ubuntu".into(),
            kernel: "6.8.0".into(),
            rustc: "rustc 1.95.0 (abc 2026-01-01)".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            gpu: None,
        }
    }

    fn gpu() -> GpuAdapter {
        GpuAdapter {
            name: "llvmpipe (LLVM 15.0.7, 256 bits)".into(),
            vendor: 0x10005,
            device_type: GpuDeviceType::Cpu,
            driver: "Mesa 23.2.1".into(),
        }
    }

    #[test]
    fn same_facts_same_fingerprint() {
        let a = facts().fingerprint();
        assert_eq!(a, facts().fingerprint());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn every_fact_changes_the_fingerprint() {
        let base = facts().fingerprint();
        let changes: Vec<fn(&mut RunnerFacts)> = vec![
            |f| f.cpu_model.push('X'),
            |f| f.cpu_cores += 1,
            |f| f.memory_gib += 1,
            |f| f.os.push('X'),
            |f| f.kernel.push('X'),
            |f| f.rustc.push('X'),
            |f| f.target = "aarch64-unknown-linux-gnu".into(),
            |f| f.gpu = Some(gpu()),
        ];
        let mut seen = std::collections::HashSet::from([base.clone()]);
        for change in &changes {
            let mut f = facts();
            change(&mut f);
            assert!(seen.insert(f.fingerprint()), "{f:?} collides");
        }
        let gpu_changes: Vec<fn(&mut GpuAdapter)> = vec![
            |g| g.name.push('X'),
            |g| g.vendor += 1,
            |g| g.device_type = GpuDeviceType::DiscreteGpu,
            |g| g.driver.push('X'),
        ];
        for change in &gpu_changes {
            let mut f = facts();
            let mut g = gpu();
            change(&mut g);
            f.gpu = Some(g);
            assert!(seen.insert(f.fingerprint()), "{f:?} collides");
        }
    }

    #[test]
    fn values_cannot_be_shifted_between_fields() {
        let mut a = facts();
        a.os = "Linux\nkernel=6.8.0".into();
        a.kernel = String::new();
        let mut b = facts();
        b.os = "Linux".into();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn detect_is_stable_on_this_machine() {
        let a = RunnerInfo::detect(None).expect("rustc is on PATH in tests");
        let b = RunnerInfo::detect(None).expect("rustc is on PATH in tests");
        assert_eq!(a, b);
        assert!(a.is_consistent());
        assert!(a.cpu_cores >= 1);
        assert!(a.rustc.starts_with("rustc "), "{}", a.rustc);
        let with_gpu = RunnerInfo::detect(Some(gpu())).unwrap();
        assert_ne!(with_gpu.fingerprint, a.fingerprint);
        assert!(with_gpu.describe().contains("software"));
    }

    #[test]
    fn parses_rustc_vv() {
        let text = "rustc 1.95.0 (0123abcd 2026-03-01)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";
        let (v, host) = parse_rustc_vv(text).unwrap();
        assert_eq!(v, "rustc 1.95.0 (0123abcd 2026-03-01)");
        assert_eq!(host, "x86_64-unknown-linux-gnu");
        assert!(parse_rustc_vv("garbage").is_err());
    }
}
