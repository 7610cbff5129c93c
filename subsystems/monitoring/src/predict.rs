//! `PredictiveAnalyzer`: least-squares linear trends, as Prometheus' `predict_linear` fits them.

use std::time::Duration;

use serde::Serialize;

/// A fitted line `value(t) = intercept + slope · (t − t0)`, `t` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinearTrend {
    /// Change per second.
    pub slope: f64,
    /// The fitted value at the reference time `t0`.
    pub intercept: f64,
    /// Coefficient of determination of the fit (1 for collinear points; 1 when flat).
    pub r_squared: f64,
}

/// What the trends of the system metrics say about the near future.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PredictiveMetrics {
    /// When used memory reaches total memory at the current trend (`None`: not rising, or
    /// too few samples).
    pub memory_exhaustion_in: Option<Duration>,
    /// When the fullest disk fills at the current trend.
    pub disk_exhaustion_in: Option<Duration>,
    /// Used memory's trend, bytes per second.
    pub memory_trend_bytes_per_sec: Option<f64>,
    /// CPU usage one hour ahead at the current trend, percent (clamped to 0..=100).
    pub cpu_usage_in_1h: Option<f64>,
}

/// Least-squares trends over the recent samples of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictiveAnalyzer {
    /// Samples older than this (before the evaluation time) are left out of a fit.
    pub window: Duration,
    /// Fewer samples than this give no prediction.
    pub min_samples: usize,
}

impl Default for PredictiveAnalyzer {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3600),
            min_samples: 5,
        }
    }
}

impl PredictiveAnalyzer {
    /// Fits `points` (`(seconds, value)`) by ordinary least squares with times taken relative
    /// to `t0`, as `predict_linear` does with the evaluation time. `None` with fewer than
    /// `min_samples` points or all at one time.
    pub fn fit(&self, points: &[(f64, f64)], t0: f64) -> Option<LinearTrend> {
        if points.len() < self.min_samples.max(2) {
            return None;
        }
        let n = points.len() as f64;
        let (mut sx, mut sy) = (0.0, 0.0);
        for &(t, v) in points {
            sx += t - t0;
            sy += v;
        }
        let (mx, my) = (sx / n, sy / n);
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for &(t, v) in points {
            let (dx, dy) = (t - t0 - mx, v - my);
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        if sxx == 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let r_squared = if syy == 0.0 {
            1.0
        } else {
            (sxy * sxy) / (sxx * syy)
        };
        Some(LinearTrend {
            slope,
            intercept: my - slope * mx,
            r_squared,
        })
    }

    /// The value `horizon` seconds after `t0`: Prometheus' `predict_linear(v[window], horizon)`
    /// evaluated at `t0` (only points in `[t0 - window, t0]` are used).
    pub fn predict_linear(&self, points: &[(f64, f64)], t0: f64, horizon: f64) -> Option<f64> {
        let recent = self.recent(points, t0);
        self.fit(&recent, t0)
            .map(|f| f.intercept + f.slope * horizon)
    }

    /// How long from `t0` until the trend rises to the upper limit `limit` (total memory, a
    /// disk's size): zero when the fitted value is already at or past it, `None` when the
    /// trend is flat or falling.
    pub fn time_until(&self, points: &[(f64, f64)], t0: f64, limit: f64) -> Option<Duration> {
        let recent = self.recent(points, t0);
        let f = self.fit(&recent, t0)?;
        let gap = limit - f.intercept;
        if gap <= 0.0 {
            return Some(Duration::ZERO);
        }
        if f.slope <= 0.0 {
            return None;
        }
        Duration::try_from_secs_f64(gap / f.slope).ok()
    }

    fn recent(&self, points: &[(f64, f64)], t0: f64) -> Vec<(f64, f64)> {
        let from = t0 - self.window.as_secs_f64();
        points
            .iter()
            .copied()
            .filter(|&(t, _)| t >= from && t <= t0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn time_until_memory_is_exhausted() {
        let a = PredictiveAnalyzer::default();
        // 1 GiB used, growing 1 MiB/s, sampled every 10 s for 10 minutes; 2 GiB total.
        let gib = 1024.0 * 1024.0 * 1024.0;
        let pts: Vec<(f64, f64)> = (0..=60)
            .map(|i| {
                let t = 1000.0 + i as f64 * 10.0;
                (t, gib + (t - 1000.0) * 1024.0 * 1024.0)
            })
            .collect();
        let eta = a.time_until(&pts, 1600.0, 2.0 * gib).expect("rising");
        assert!((eta.as_secs_f64() - 424.0).abs() < 1e-6, "{eta:?}");
        // Falling usage never exhausts memory; a limit already passed is reached now.
        let falling: Vec<(f64, f64)> = pts.iter().map(|&(t, v)| (t, 3.0 * gib - v)).collect();
        assert_eq!(a.time_until(&falling, 1600.0, 2.0 * gib), None);
        assert_eq!(a.time_until(&falling, 1600.0, gib), Some(Duration::ZERO));
        assert_eq!(a.time_until(&pts[..3], 1020.0, 2.0 * gib), None);
    }

    proptest! {
        #[test]
        fn recovers_an_exact_line(
            slope in -1e3f64..1e3,
            intercept in -1e6f64..1e6,
            n in 5usize..100,
            horizon in 0.0f64..1e4,
        ) {
            let a = PredictiveAnalyzer::default();
            let t0 = 10_000.0;
            let pts: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    let t = t0 - (n - 1 - i) as f64 * 15.0;
                    (t, intercept + slope * (t - t0))
                })
                .collect();
            let got = a.predict_linear(&pts, t0, horizon).expect("enough points");
            let want = intercept + slope * horizon;
            prop_assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs() + intercept.abs()));
        }
    }
}
