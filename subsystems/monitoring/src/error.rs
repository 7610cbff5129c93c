//! The crate's errors: one enum per operation family, as the 2025 API document names them.

use thiserror::Error;

/// Collecting metrics or serving them failed.
#[derive(Debug, Error)]
pub enum MonitoringError {
    /// The operating system could not be queried.
    #[error("system metrics unavailable: {0}")]
    System(String),
    /// The anomaly detector configuration is out of range.
    #[error("invalid configuration: {0}")]
    Config(#[from] AnomalyError),
    /// A global `metrics` recorder is already installed.
    #[error("a global metrics recorder is already installed")]
    RecorderInstalled,
    /// The exporter could not bind or needs a runtime.
    #[error("prometheus exporter: {0}")]
    Exporter(String),
}

/// Evaluating or configuring alert rules failed.
#[derive(Debug, Error)]
pub enum AlertError {
    /// A rule is malformed (empty name, hysteresis on the wrong side, non-finite threshold).
    #[error("invalid alert rule {rule:?}: {reason}")]
    InvalidRule {
        /// The rule's name.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two rules share a name.
    #[error("duplicate alert rule {0:?}")]
    DuplicateRule(String),
}

/// Building a report failed.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The range ends before it starts.
    #[error("time range ends before it starts")]
    InvalidRange,
}

/// Anomaly detection failed.
#[derive(Debug, Error)]
pub enum AnomalyError {
    /// A detector parameter is out of range.
    #[error("invalid detector configuration: {0}")]
    InvalidConfig(String),
}

/// Building dashboard data failed.
#[derive(Debug, Error)]
pub enum DashboardError {
    /// A panel needs at least three points per series (downsampling keeps both ends).
    #[error("max_points must be at least 3, got {0}")]
    TooFewPoints(usize),
}
