//! `MonitoringSystem`: collection, storage, alerts, anomalies, reports and dashboards in one place.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::alerts::{Alert, AlertManager, AlertRule};
use crate::anomaly::{DetectorConfig, DetectorKind, SeriesDetector};
use crate::dashboard::{DashboardData, DashboardRenderer};
use crate::error::{AlertError, AnomalyError, DashboardError, MonitoringError, ReportError};
use crate::exporter::PrometheusExporter;
use crate::predict::{PredictiveAnalyzer, PredictiveMetrics};
use crate::recorder::{FastRecorder, Labels};
use crate::snapshot::{
    CPU_USAGE, DISK_AVAILABLE, DISK_TOTAL, Kind, MEMORY_TOTAL, MEMORY_USED, MetricsSnapshot,
    UserMetrics,
};
use crate::store::{SeriesKey, SeriesStore, in_range, millis};

/// Anomalies kept for reports.
const ANOMALY_HISTORY: usize = 10_000;

/// How a `MonitoringSystem` keeps and judges its data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitoringConfig {
    /// Samples kept per series.
    pub retention_points: usize,
    /// How far back an alert rule looks for a series' latest sample (Prometheus: 5 min).
    pub lookback: Duration,
    /// The anomaly detector run by `detect_anomalies`.
    pub detector: DetectorConfig,
    /// The trend fits behind the predictions.
    pub predictive: PredictiveAnalyzer,
    /// Points per plotted series in `dashboard_data` (downsampled beyond).
    pub dashboard_max_points: usize,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            retention_points: 10_000,
            lookback: Duration::from_secs(300),
            detector: DetectorConfig::default(),
            predictive: PredictiveAnalyzer::default(),
            dashboard_max_points: 500,
        }
    }
}

/// A span of time, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    /// First instant.
    pub start: SystemTime,
    /// Last instant.
    pub end: SystemTime,
}

impl TimeRange {
    /// `[start, end]`.
    pub fn new(start: SystemTime, end: SystemTime) -> Self {
        Self { start, end }
    }

    /// The last `d`, up to now.
    pub fn last(d: Duration) -> Self {
        let end = SystemTime::now();
        Self {
            start: end.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
            end,
        }
    }
}

/// One unusual value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// Metric name.
    pub metric: String,
    /// Its labels.
    pub labels: Labels,
    /// The value judged (for counters: the increase since the previous snapshot).
    pub value: f64,
    /// What the detector expected instead.
    pub expected: f64,
    /// The detector's score (see `DetectorKind`).
    pub score: f64,
    /// Which detector flagged it.
    pub detector: DetectorKind,
    /// The snapshot's time.
    pub timestamp: SystemTime,
}

/// Statistics of one series over a report's range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesSummary {
    /// The series.
    pub series: SeriesKey,
    /// Samples in range.
    pub samples: usize,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Latest value in range.
    pub last: f64,
    /// Least-squares trend, per hour (`None` below the analyzer's minimum samples).
    pub trend_per_hour: Option<f64>,
}

/// What happened in a time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitoringReport {
    /// The range covered.
    pub range: TimeRange,
    /// Every series with samples in range.
    pub series: Vec<SeriesSummary>,
    /// Alerts that fired or resolved in range.
    pub alerts: Vec<Alert>,
    /// Anomalies detected in range.
    pub anomalies: Vec<Anomaly>,
}

/// The monitoring system of the 2025 API document. Create it with [`MonitoringSystem::new`],
/// record application metrics through the `metrics` facade into [`MonitoringSystem::recorder`]
/// (installed globally with [`MonitoringSystem::install_recorder`]), and call
/// `collect_metrics` periodically: each call stores every value as a time series that alert
/// rules, anomaly detection, reports and dashboards read.
#[derive(Debug)]
pub struct MonitoringSystem {
    config: MonitoringConfig,
    metrics_collector: crate::system::MetricsCollector,
    recorder: FastRecorder,
    alert_manager: Mutex<AlertManager>,
    dashboard_renderer: DashboardRenderer,
    anomaly_detector: Mutex<HashMap<SeriesKey, (SeriesDetector, Option<f64>)>>,
    predictive_analyzer: PredictiveAnalyzer,
    store: RwLock<SeriesStore>,
    user: RwLock<UserMetrics>,
    anomalies: Mutex<VecDeque<Anomaly>>,
    last_alerts: Mutex<Vec<Alert>>,
}

impl MonitoringSystem {
    /// A system with its own (not yet global) recorder.
    pub fn new(config: MonitoringConfig) -> Result<Self, MonitoringError> {
        config.detector.validate()?;
        Ok(Self {
            config,
            metrics_collector: crate::system::MetricsCollector::new()?,
            recorder: FastRecorder::new(),
            alert_manager: Mutex::new(AlertManager::default()),
            dashboard_renderer: DashboardRenderer {
                max_points: config.dashboard_max_points,
            },
            anomaly_detector: Mutex::new(HashMap::new()),
            predictive_analyzer: config.predictive,
            store: RwLock::new(SeriesStore::new(config.retention_points)),
            user: RwLock::new(UserMetrics::default()),
            anomalies: Mutex::new(VecDeque::new()),
            last_alerts: Mutex::new(Vec::new()),
        })
    }

    /// The recorder behind the application metrics.
    pub fn recorder(&self) -> &FastRecorder {
        &self.recorder
    }

    /// Installs the recorder as the process-wide `metrics` recorder.
    pub fn install_recorder(&self) -> Result<(), MonitoringError> {
        self.recorder.install()
    }

    /// Sets a user metric (a plain gauge) reported from the next collection on.
    pub fn set_user_metric(&self, name: impl Into<String>, value: f64) {
        self.user.write().values.insert(name.into(), value);
    }

    /// Adds an alert rule.
    pub fn add_alert_rule(&self, rule: AlertRule) -> Result<(), AlertError> {
        self.alert_manager.lock().add_rule(rule)
    }

    /// Stores one sample of an external series (another process' metric, a replayed
    /// history); alert rules and reports see it like collected ones.
    pub fn ingest(&self, name: &str, labels: Labels, at: SystemTime, value: f64) {
        self.store
            .write()
            .push(SeriesKey::new(name, labels), millis(at), value);
    }

    /// Reads the OS and the recorder, stores every value as a sample at the current time and
    /// predicts memory and disk exhaustion from the stored history.
    pub async fn collect_metrics(&self) -> Result<MetricsSnapshot, MonitoringError> {
        let timestamp = SystemTime::now();
        let mut snapshot = MetricsSnapshot {
            timestamp,
            system: self.metrics_collector.collect(),
            application: self.recorder.snapshot(),
            user: self.user.read().clone(),
            predictions: PredictiveMetrics::default(),
        };
        let ts = millis(timestamp);
        {
            let mut store = self.store.write();
            for s in snapshot.samples() {
                store.push(SeriesKey::new(s.name, s.labels), ts, s.value);
            }
        }
        snapshot.predictions = self.predict(timestamp);
        Ok(snapshot)
    }

    /// Evaluates every alert rule now.
    pub async fn check_alerts(&self) -> Result<Vec<Alert>, AlertError> {
        self.check_alerts_at(SystemTime::now())
    }

    /// Evaluates every alert rule as of `at` (like one evaluation of a Prometheus rule group
    /// at that timestamp). Evaluations must come in time order.
    pub fn check_alerts_at(&self, at: SystemTime) -> Result<Vec<Alert>, AlertError> {
        let store = self.store.read();
        let alerts = self
            .alert_manager
            .lock()
            .evaluate(&store, at, self.config.lookback);
        *self.last_alerts.lock() = alerts.clone();
        Ok(alerts)
    }

    /// Summarises every series, the alert events and the anomalies in `time_range`.
    pub async fn generate_report(
        &self,
        time_range: TimeRange,
    ) -> Result<MonitoringReport, ReportError> {
        if time_range.end < time_range.start {
            return Err(ReportError::InvalidRange);
        }
        let (start, end) = (millis(time_range.start), millis(time_range.end));
        let series = self
            .store
            .read()
            .all()
            .filter_map(|(key, samples)| {
                let pts: Vec<(i64, f64)> = in_range(samples, start, end).collect();
                self.summarise(key, &pts, end)
            })
            .collect();
        let anomalies = self
            .anomalies
            .lock()
            .iter()
            .filter(|a| a.timestamp >= time_range.start && a.timestamp <= time_range.end)
            .cloned()
            .collect();
        Ok(MonitoringReport {
            range: time_range,
            series,
            alerts: self
                .alert_manager
                .lock()
                .history(time_range.start, time_range.end),
            anomalies,
        })
    }

    /// Runs the configured detector over each value of `metrics` (counters by their increase
    /// since the previous snapshot), each series with its own detector state. Snapshots must
    /// come in time order.
    pub async fn detect_anomalies(
        &self,
        metrics: &MetricsSnapshot,
    ) -> Result<Vec<Anomaly>, AnomalyError> {
        let mut states = self.anomaly_detector.lock();
        let mut found = Vec::new();
        for s in metrics.samples() {
            let key = SeriesKey::new(s.name, s.labels);
            let (detector, prev) = match states.get_mut(&key) {
                Some(state) => state,
                None => states
                    .entry(key.clone())
                    .or_insert((SeriesDetector::new(self.config.detector)?, None)),
            };
            let value = if s.kind == Kind::Counter {
                let last = prev.replace(s.value);
                match last {
                    Some(last) => s.value - last,
                    None => continue,
                }
            } else {
                s.value
            };
            let v = detector.observe(value);
            if v.anomalous {
                found.push(Anomaly {
                    metric: key.name,
                    labels: key.labels,
                    value,
                    expected: v.expected,
                    score: v.score,
                    detector: self.config.detector.kind,
                    timestamp: metrics.timestamp,
                });
            }
        }
        drop(states);
        let mut history = self.anomalies.lock();
        for a in &found {
            if history.len() == ANOMALY_HISTORY {
                history.pop_front();
            }
            history.push_back(a.clone());
        }
        Ok(found)
    }

    /// Every stored series as plot-ready points (one panel per metric name), downsampled to
    /// `dashboard_max_points`, plus the alerts of the latest evaluation.
    pub fn dashboard_data(&self) -> Result<DashboardData, DashboardError> {
        let store = self.store.read();
        self.dashboard_renderer
            .render(&store, self.last_alerts.lock().clone())
    }

    /// Starts the Prometheus endpoint (`GET /metrics`) on `addr` (use a loopback address, port
    /// 0 for any free port). Needs a tokio runtime.
    pub async fn serve_prometheus(
        self: &Arc<Self>,
        addr: SocketAddr,
    ) -> Result<PrometheusExporter, MonitoringError> {
        PrometheusExporter::start(Arc::clone(self), addr).await
    }

    /// A fresh collection, rendered in the Prometheus text exposition format.
    pub async fn render_prometheus(&self) -> Result<String, MonitoringError> {
        let snapshot = self.collect_metrics().await?;
        Ok(crate::exporter::render(&snapshot.samples(), &self.recorder))
    }

    /// The `(seconds, value)` points of a series.
    pub fn series_points(&self, key: &SeriesKey) -> Vec<(f64, f64)> {
        self.store.read().get(key).map_or_else(Vec::new, |s| {
            s.iter().map(|&(t, v)| (t as f64 / 1000.0, v)).collect()
        })
    }

    fn predict(&self, now: SystemTime) -> PredictiveMetrics {
        let a = &self.predictive_analyzer;
        let t0 = millis(now) as f64 / 1000.0;
        let plain = |name: &str| self.series_points(&SeriesKey::new(name, vec![]));
        let used = plain(MEMORY_USED);
        let total = plain(MEMORY_TOTAL).last().map(|p| p.1);
        let recent_fit = |pts: &[(f64, f64)]| {
            let from = t0 - a.window.as_secs_f64();
            let recent: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.0 >= from).collect();
            a.fit(&recent, t0)
        };
        let disk_exhaustion_in = {
            let store = self.store.read();
            store
                .with_name(DISK_TOTAL)
                .filter_map(|(key, totals)| {
                    let size = totals.back()?.1;
                    let avail = store.get(&SeriesKey::new(DISK_AVAILABLE, key.labels.clone()))?;
                    let used: Vec<(f64, f64)> = avail
                        .iter()
                        .map(|&(t, v)| (t as f64 / 1000.0, size - v))
                        .collect();
                    a.time_until(&used, t0, size)
                })
                .min()
        };
        PredictiveMetrics {
            memory_exhaustion_in: total.and_then(|total| a.time_until(&used, t0, total)),
            disk_exhaustion_in,
            memory_trend_bytes_per_sec: recent_fit(&used).map(|f| f.slope),
            cpu_usage_in_1h: a
                .predict_linear(&plain(CPU_USAGE), t0, 3600.0)
                .map(|v| v.clamp(0.0, 100.0)),
        }
    }

    fn summarise(&self, key: &SeriesKey, pts: &[(i64, f64)], end: i64) -> Option<SeriesSummary> {
        let last = pts.last()?.1;
        let mut values: Vec<f64> = pts.iter().map(|p| p.1).collect();
        values.sort_by(f64::total_cmp);
        let rank =
            |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        let secs: Vec<(f64, f64)> = pts.iter().map(|&(t, v)| (t as f64 / 1000.0, v)).collect();
        Some(SeriesSummary {
            series: key.clone(),
            samples: pts.len(),
            min: values[0],
            max: values[values.len() - 1],
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: rank(0.5),
            p95: rank(0.95),
            last,
            trend_per_hour: self
                .predictive_analyzer
                .fit(&secs, end as f64 / 1000.0)
                .map(|f| f.slope * 3600.0),
        })
    }
}
