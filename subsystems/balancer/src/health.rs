//! Health checking: passive ejection (consecutive failures, success-rate outliers) with a
//! growing cool-down, and active HTTP probes with a timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Tuning of [`HealthChecker`]; `Default` gives the documented values.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Consecutive failed requests that eject an instance (5, as Envoy).
    pub consecutive_failures: u32,
    /// First ejection time; the n-th ejection lasts n times as long, up to `max_cool_down` (5 s).
    pub cool_down: Duration,
    /// Longest ejection (60 s).
    pub max_cool_down: Duration,
    /// Length of a success-rate window for outlier detection (1 s).
    pub outlier_interval: Duration,
    /// Requests an instance needs in a window to take part in outlier detection (20).
    pub outlier_min_requests: u64,
    /// An instance whose success rate is below mean - factor x stdev is an outlier (1.9, as Envoy).
    pub outlier_stdev_factor: f64,
    /// Most instances ejected at once, as a share of all (0.5); failures never eject more.
    pub max_ejected_share: f64,
    /// Path probed by active checks ("/health").
    pub probe_path: String,
    /// Time limit of one probe, connect included (1 s).
    pub probe_timeout: Duration,
    /// Failed probes in a row that mark an instance `Unhealthy` (2).
    pub unhealthy_threshold: u32,
    /// Passed probes in a row that mark an `Unhealthy` instance `Healthy` again (1).
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            cool_down: Duration::from_secs(5),
            max_cool_down: Duration::from_secs(60),
            outlier_interval: Duration::from_secs(1),
            outlier_min_requests: 20,
            outlier_stdev_factor: 1.9,
            max_ejected_share: 0.5,
            probe_path: "/health".to_owned(),
            probe_timeout: Duration::from_secs(1),
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        }
    }
}

/// What one active probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// A 2xx answer within the timeout.
    Healthy {
        /// How long it took.
        latency: Duration,
    },
    /// A non-2xx answer.
    BadStatus(u16),
    /// Connecting, sending or reading failed.
    Failed(String),
    /// No answer within the timeout.
    TimedOut,
}

impl ProbeOutcome {
    /// Whether the probe passed.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy { .. })
    }
}

/// Passive health state of one instance.
#[derive(Debug, Clone, Default)]
pub(crate) struct PassiveState {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    pub(crate) ejections: u32,
    window_ok: u64,
    window_failed: u64,
    probe_failures: u32,
    probe_passes: u32,
}

impl PassiveState {
    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| now < t)
    }
}

/// Decides ejections and runs probes; the balancer owns one and applies its verdicts.
#[derive(Debug, Clone)]
pub struct HealthChecker {
    config: HealthConfig,
}

impl HealthChecker {
    /// A checker with `config`.
    pub fn new(config: HealthConfig) -> Self {
        Self { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Records a request outcome; returns whether it ejects the instance. `may_eject` is
    /// false when the ejection cap is reached.
    pub(crate) fn record(
        &self,
        s: &mut PassiveState,
        ok: bool,
        now: Instant,
        may_eject: bool,
    ) -> bool {
        if ok {
            s.consecutive_failures = 0;
            s.window_ok += 1;
            return false;
        }
        s.window_failed += 1;
        s.consecutive_failures += 1;
        if s.consecutive_failures >= self.config.consecutive_failures
            && !s.is_ejected(now)
            && may_eject
        {
            self.eject(s, now);
            return true;
        }
        false
    }

    fn eject(&self, s: &mut PassiveState, now: Instant) {
        s.ejections += 1;
        let time = self
            .config
            .cool_down
            .saturating_mul(s.ejections)
            .min(self.config.max_cool_down);
        s.ejected_until = Some(now + time);
        // After the cool-down the instance is back on probation: the counter restarts, so
        // a few more failures eject it again, for longer.
        s.consecutive_failures = 0;
    }

    /// Success-rate outlier detection over one window of every instance: those below
    /// `mean - factor x stdev` (among instances with enough requests) are ejected, up to
    /// `allowed` of them, worst first. Resets the windows. Returns the ejected indices.
    pub(crate) fn sweep_outliers(
        &self,
        states: &mut [&mut PassiveState],
        now: Instant,
        allowed: usize,
    ) -> Vec<usize> {
        let rates: Vec<(usize, f64)> = states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let n = s.window_ok + s.window_failed;
                (n >= self.config.outlier_min_requests && !s.is_ejected(now))
                    .then(|| (i, s.window_ok as f64 / n as f64))
            })
            .collect();
        for s in states.iter_mut() {
            s.window_ok = 0;
            s.window_failed = 0;
        }
        if rates.len() < 2 {
            return Vec::new();
        }
        let n = rates.len() as f64;
        let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / n;
        let var = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
        let threshold = mean - self.config.outlier_stdev_factor * var.sqrt();
        let mut outliers: Vec<(usize, f64)> =
            rates.into_iter().filter(|&(_, r)| r < threshold).collect();
        outliers.sort_by(|a, b| a.1.total_cmp(&b.1));
        outliers.truncate(allowed);
        for &(i, _) in &outliers {
            self.eject(states[i], now);
        }
        outliers.into_iter().map(|(i, _)| i).collect()
    }

    /// Applies a probe outcome; returns the new active verdict when it changes
    /// (`Some(true)`: healthy again, `Some(false)`: unhealthy).
    pub(crate) fn record_probe(&self, s: &mut PassiveState, healthy: bool) -> Option<bool> {
        if healthy {
            s.probe_failures = 0;
            s.probe_passes += 1;
            (s.probe_passes == self.config.healthy_threshold).then_some(true)
        } else {
            s.probe_passes = 0;
            s.probe_failures += 1;
            (s.probe_failures == self.config.unhealthy_threshold).then_some(false)
        }
    }

    /// Sends `GET probe_path` to `addr` over a fresh HTTP/1.1 connection, within `probe_timeout`.
    pub async fn probe(&self, addr: SocketAddr) -> ProbeOutcome {
        let started = Instant::now();
        match tokio::time::timeout(self.config.probe_timeout, self.probe_once(addr)).await {
            Err(_) => ProbeOutcome::TimedOut,
            Ok(Err(e)) => ProbeOutcome::Failed(e),
            Ok(Ok(status)) if (200..300).contains(&status) => ProbeOutcome::Healthy {
                latency: started.elapsed(),
            },
            Ok(Ok(status)) => ProbeOutcome::BadStatus(status),
        }
    }

    async fn probe_once(&self, addr: SocketAddr) -> Result<u16, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let driver = tokio::spawn(conn);
        let req = hyper::Request::get(self.config.probe_path.as_str())
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let result = sender.send_request(req).await;
        driver.abort();
        result
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("send: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker() -> HealthChecker {
        HealthChecker::new(HealthConfig {
            consecutive_failures: 3,
            cool_down: Duration::from_secs(1),
            ..HealthConfig::default()
        })
    }

    #[test]
    fn consecutive_failures_eject_for_a_growing_cool_down() {
        let hc = checker();
        let t0 = Instant::now();
        let mut s = PassiveState::default();
        assert!(!hc.record(&mut s, false, t0, true));
        assert!(!hc.record(&mut s, true, t0, true));
        assert!(!hc.record(&mut s, false, t0, true));
        assert!(!hc.record(&mut s, false, t0, true));
        assert!(hc.record(&mut s, false, t0, true));
        assert!(s.is_ejected(t0 + Duration::from_millis(999)));
        assert!(!s.is_ejected(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..3 {
            hc.record(&mut s, false, t1, true);
        }
        assert!(s.is_ejected(t1 + Duration::from_millis(1999)));
        assert_eq!(s.ejections, 2);
    }

    #[test]
    fn cap_prevents_ejection() {
        let hc = checker();
        let t0 = Instant::now();
        let mut s = PassiveState::default();
        for _ in 0..10 {
            assert!(!hc.record(&mut s, false, t0, false));
        }
        assert!(!s.is_ejected(t0));
    }

    #[test]
    fn outlier_detection_ejects_the_low_success_rate() {
        let hc = checker();
        let t0 = Instant::now();
        let mut states: Vec<PassiveState> = (0..6).map(|_| PassiveState::default()).collect();
        for (i, s) in states.iter_mut().enumerate() {
            for k in 0..100 {
                let ok = if i == 4 { k % 2 == 0 } else { k % 50 != 0 };
                hc.record(s, ok, t0, true);
            }
        }
        let mut refs: Vec<&mut PassiveState> = states.iter_mut().collect();
        assert_eq!(hc.sweep_outliers(&mut refs, t0, 3), vec![4]);
        assert!(states[4].is_ejected(t0));
        assert!(!states[0].is_ejected(t0));
    }

    #[test]
    fn probe_thresholds() {
        let hc = checker();
        let mut s = PassiveState::default();
        assert_eq!(hc.record_probe(&mut s, false), None);
        assert_eq!(hc.record_probe(&mut s, false), Some(false));
        assert_eq!(hc.record_probe(&mut s, false), None);
        assert_eq!(hc.record_probe(&mut s, true), Some(true));
        assert_eq!(hc.record_probe(&mut s, true), None);
    }
}
