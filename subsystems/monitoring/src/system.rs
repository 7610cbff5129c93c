//! `SystemMetrics` read from the operating system through `sysinfo`.

use parking_lot::Mutex;
use serde::Serialize;
use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::error::MonitoringError;

/// One mounted file system.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    /// Where it is mounted.
    pub mount_point: String,
    /// Size in bytes.
    pub total_bytes: u64,
    /// Bytes free for unprivileged users.
    pub available_bytes: u64,
}

/// The machine and this process, as the OS reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemMetrics {
    /// Mean usage of all CPUs since the previous collection, percent (0 on the first).
    pub cpu_usage_percent: f64,
    /// Logical CPUs.
    pub cpu_count: usize,
    /// Physical memory, bytes.
    pub memory_total_bytes: u64,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Memory available to new allocations without swapping, bytes.
    pub memory_available_bytes: u64,
    /// Load averages over 1, 5 and 15 minutes (zero where the OS has none).
    pub load_average: [f64; 3],
    /// Mounted file systems.
    pub disks: Vec<DiskUsage>,
    /// Resident set size of this process, bytes.
    pub process_rss_bytes: u64,
}

/// Keeps the `sysinfo` handles between collections: CPU usage is a difference between two
/// refreshes.
#[derive(Debug)]
pub(crate) struct MetricsCollector {
    system: Mutex<(System, Disks)>,
    pid: Pid,
}

impl MetricsCollector {
    pub(crate) fn new() -> Result<Self, MonitoringError> {
        let err = |e: sysinfo::Error| MonitoringError::System(e.to_string());
        let pid = sysinfo::get_current_pid().map_err(err)?;
        let system = System::new().map_err(err)?;
        let disks = Disks::new().map_err(err)?;
        Ok(Self {
            system: Mutex::new((system, disks)),
            pid,
        })
    }

    pub(crate) fn collect(&self) -> SystemMetrics {
        let mut guard = self.system.lock();
        let (system, disks) = &mut *guard;
        system.refresh_cpu_usage();
        system.refresh_memory();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        disks.refresh(true);
        let load = System::load_average().map_or([0.0; 3], |l| [l.one, l.five, l.fifteen]);
        SystemMetrics {
            cpu_usage_percent: f64::from(system.global_cpu_usage()),
            cpu_count: system.cpus().len(),
            memory_total_bytes: system.total_memory(),
            memory_used_bytes: system.used_memory(),
            memory_available_bytes: system.available_memory(),
            load_average: load,
            disks: disks
                .iter()
                .map(|d| DiskUsage {
                    mount_point: d.mount_point().to_string_lossy().into_owned(),
                    total_bytes: d.total_space(),
                    available_bytes: d.available_space(),
                })
                .collect(),
            process_rss_bytes: system.process(self.pid).map_or(0, |p| p.memory()),
        }
    }
}
