//! `MetricsSnapshot` and its flattening into named, labelled samples.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::predict::PredictiveMetrics;
use crate::recorder::{ApplicationMetrics, Labels};
use crate::system::SystemMetrics;

/// Metrics set by the application for its users (active sessions, open files, queue sizes
/// seen by a person): plain named values, set with `MonitoringSystem::set_user_metric`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserMetrics {
    /// Name to value.
    pub values: BTreeMap<String, f64>,
}

/// Everything one collection saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// When it was taken.
    pub timestamp: SystemTime,
    /// The machine and this process.
    pub system: SystemMetrics,
    /// What the application recorded through the `metrics` facade.
    pub application: ApplicationMetrics,
    /// Metrics set by the application for its users.
    pub user: UserMetrics,
    /// Trend predictions over the stored history.
    pub predictions: PredictiveMetrics,
}

/// The Prometheus type of a flattened sample's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
    Summary,
}

/// One flattened sample: family name and type, sample name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) family: String,
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) labels: Labels,
    pub(crate) value: f64,
}

/// Metric names of the system side, as the exporter shows them.
pub(crate) const CPU_USAGE: &str = "system_cpu_usage_percent";
pub(crate) const MEMORY_TOTAL: &str = "system_memory_total_bytes";
pub(crate) const MEMORY_USED: &str = "system_memory_used_bytes";
pub(crate) const DISK_TOTAL: &str = "system_disk_total_bytes";
pub(crate) const DISK_AVAILABLE: &str = "system_disk_available_bytes";

impl MetricsSnapshot {
    /// Every value as a named, labelled sample (Prometheus naming: units as suffixes,
    /// histograms as summaries with `quantile` labels plus `_sum` and `_count`).
    pub(crate) fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut gauge = |name: &str, labels: Labels, value: f64| {
            out.push(Sample {
                family: name.to_owned(),
                kind: Kind::Gauge,
                name: name.to_owned(),
                labels,
                value,
            });
        };
        let s = &self.system;
        gauge(CPU_USAGE, vec![], s.cpu_usage_percent);
        gauge("system_cpu_count", vec![], s.cpu_count as f64);
        gauge(MEMORY_TOTAL, vec![], s.memory_total_bytes as f64);
        gauge(MEMORY_USED, vec![], s.memory_used_bytes as f64);
        gauge(
            "system_memory_available_bytes",
            vec![],
            s.memory_available_bytes as f64,
        );
        for (name, v) in ["system_load1", "system_load5", "system_load15"]
            .into_iter()
            .zip(s.load_average)
        {
            gauge(name, vec![], v);
        }
        for d in &s.disks {
            let labels = vec![("mountpoint".to_owned(), d.mount_point.clone())];
            gauge(DISK_TOTAL, labels.clone(), d.total_bytes as f64);
            gauge(DISK_AVAILABLE, labels, d.available_bytes as f64);
        }
        gauge(
            "process_resident_memory_bytes",
            vec![],
            s.process_rss_bytes as f64,
        );
        for g in &self.application.gauges {
            gauge(&g.name, g.labels.clone(), g.value);
        }
        for (name, v) in &self.user.values {
            gauge(name, vec![], *v);
        }
        for c in &self.application.counters {
            out.push(Sample {
                family: c.name.clone(),
                kind: Kind::Counter,
                name: c.name.clone(),
                labels: c.labels.clone(),
                value: c.value as f64,
            });
        }
        for h in &self.application.histograms {
            for (q, v) in [("0.5", h.p50), ("0.9", h.p90), ("0.99", h.p99)] {
                let mut labels = h.labels.clone();
                labels.push(("quantile".to_owned(), q.to_owned()));
                out.push(Sample {
                    family: h.name.clone(),
                    kind: Kind::Summary,
                    name: h.name.clone(),
                    labels,
                    value: v,
                });
            }
            for (suffix, v) in [("_sum", h.sum), ("_count", h.count as f64)] {
                out.push(Sample {
                    family: h.name.clone(),
                    kind: Kind::Summary,
                    name: format!("{}{suffix}", h.name),
                    labels: h.labels.clone(),
                    value: v,
                });
            }
        }
        out
    }
}
