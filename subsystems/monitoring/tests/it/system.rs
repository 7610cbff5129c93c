//! Collection from the real OS, then reports, dashboards, predictions and anomalies over it.

use std::time::{Duration, SystemTime};

use rust_ai_ide_monitoring::{
    AlertRule, Comparison, DetectorConfig, DetectorKind, MonitoringConfig, MonitoringSystem,
    ReportError, SeriesKey, TimeRange,
};

#[tokio::test]
async fn collects_os_and_application_metrics() {
    let system = MonitoringSystem::new(MonitoringConfig::default()).expect("system");
    metrics::with_local_recorder(system.recorder(), || {
        metrics::counter!("edits_total", "kind" => "insert").increment(3);
        metrics::histogram!("completion_seconds").record(0.02);
    });
    system.set_user_metric("open_files", 12.0);
    let mut snap = system.collect_metrics().await.expect("collect");
    for _ in 0..5 {
        // Samples are stored per millisecond: keep the collections apart.
        tokio::time::sleep(Duration::from_millis(3)).await;
        snap = system.collect_metrics().await.expect("collect");
    }
    let s = &snap.system;
    assert!(s.memory_total_bytes > 0);
    assert!(s.memory_used_bytes <= s.memory_total_bytes);
    assert!(s.process_rss_bytes > 0, "this process has resident pages");
    assert!(s.cpu_count >= 1);
    assert!((0.0..=100.0 * s.cpu_count as f64).contains(&s.cpu_usage_percent));
    assert!(s.load_average.iter().all(|l| *l >= 0.0));
    assert!(s.disks.iter().all(|d| d.available_bytes <= d.total_bytes));
    assert_eq!(snap.application.counters[0].value, 3);
    assert_eq!(snap.application.histograms[0].count, 1);
    assert_eq!(snap.user.values.get("open_files"), Some(&12.0));
    // Six collections are enough samples for a memory trend.
    assert!(snap.predictions.memory_trend_bytes_per_sec.is_some());

    let report = system
        .generate_report(TimeRange::last(Duration::from_secs(60)))
        .await
        .expect("report");
    let rss = report
        .series
        .iter()
        .find(|s| s.series.name == "process_resident_memory_bytes")
        .expect("rss series");
    assert_eq!(rss.samples, 6);
    assert!(rss.min <= rss.p50 && rss.p50 <= rss.max);
    let err = system
        .generate_report(TimeRange::new(SystemTime::now(), SystemTime::UNIX_EPOCH))
        .await;
    assert!(matches!(err, Err(ReportError::InvalidRange)));

    let dash = system.dashboard_data().expect("dashboard");
    let panel = dash
        .panels
        .iter()
        .find(|p| p.title == "edits_total")
        .expect("counter panel");
    assert_eq!(panel.series[0].points.len(), 6);
    assert!(
        panel.series[0]
            .points
            .windows(2)
            .all(|w| w[0][0] <= w[1][0])
    );
}

#[tokio::test]
async fn snapshot_anomalies_are_reported_per_series() {
    for kind in [
        DetectorKind::RobustZScore,
        DetectorKind::Ewma,
        DetectorKind::Holt,
    ] {
        let system = MonitoringSystem::new(MonitoringConfig {
            detector: DetectorConfig::with_kind(kind),
            ..MonitoringConfig::default()
        })
        .expect("system");
        let mut flagged = Vec::new();
        for i in 0..60u32 {
            // A queue depth that wobbles around 20 and jumps to 90 once.
            let depth = if i == 50 {
                90.0
            } else {
                20.0 + f64::from(i % 5) - 2.0
            };
            metrics::with_local_recorder(system.recorder(), || {
                metrics::gauge!("queue_depth").set(depth);
            });
            let snap = system.collect_metrics().await.expect("collect");
            for a in system.detect_anomalies(&snap).await.expect("detect") {
                if a.metric == "queue_depth" {
                    flagged.push((i, a.detector));
                }
            }
        }
        assert!(flagged.contains(&(50, kind)), "{kind:?}: {flagged:?}");
        assert!(
            flagged.iter().all(|(i, _)| *i >= 50),
            "{kind:?}: {flagged:?}"
        );
        let report = system
            .generate_report(TimeRange::last(Duration::from_secs(600)))
            .await
            .expect("report");
        assert!(report.anomalies.iter().any(|a| a.metric == "queue_depth"));
    }
}

#[tokio::test]
async fn alerts_fire_on_collected_series() {
    let system = MonitoringSystem::new(MonitoringConfig::default()).expect("system");
    system
        .add_alert_rule(AlertRule::new(
            "AnyMemory",
            "system_memory_total_bytes",
            Comparison::Above,
            0.0,
        ))
        .expect("rule");
    system.collect_metrics().await.expect("collect");
    let alerts = system.check_alerts().await.expect("alerts");
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0]
            .labels
            .contains(&("alertname".to_owned(), "AnyMemory".to_owned()))
    );
    let dash = system.dashboard_data().expect("dashboard");
    assert_eq!(dash.alerts, alerts);
    let points = system.series_points(&SeriesKey::new("system_memory_total_bytes", vec![]));
    assert_eq!(points.len(), 1);
}
