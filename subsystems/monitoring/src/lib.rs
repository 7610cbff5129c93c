//! Monitoring for the Rust AI IDE: OS and application metrics, alerts, anomalies, trends, a Prometheus endpoint.
#![doc = include_str!("../README.md")]

mod alerts;
mod anomaly;
mod dashboard;
mod error;
mod exporter;
mod histogram;
mod monitoring;
mod predict;
mod recorder;
mod snapshot;
mod store;
mod system;

pub use alerts::{Alert, AlertRule, AlertState, Comparison};
pub use anomaly::{DetectorConfig, DetectorKind, SeriesDetector, Verdict, detect_series};
pub use dashboard::{DashboardData, Panel, PlotSeries};
pub use error::{AlertError, AnomalyError, DashboardError, MonitoringError, ReportError};
pub use exporter::{CONTENT_TYPE, PrometheusExporter};
pub use monitoring::{
    Anomaly, MonitoringConfig, MonitoringReport, MonitoringSystem, SeriesSummary, TimeRange,
};
pub use predict::{LinearTrend, PredictiveAnalyzer, PredictiveMetrics};
pub use recorder::{
    ApplicationMetrics, CounterSample, FastRecorder, GaugeSample, HistogramSample, Labels,
};
pub use snapshot::{MetricsSnapshot, UserMetrics};
pub use store::SeriesKey;
pub use system::{DiskUsage, SystemMetrics};
