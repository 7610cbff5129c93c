//! Online anomaly detectors: robust z-score (median/MAD), EWMA control chart, Holt's linear method.

use std::collections::VecDeque;

use serde::Serialize;

use crate::error::AnomalyError;

/// Which detector judges a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DetectorKind {
    /// Modified z-score `0.6745 (x - median) / MAD` over a sliding window, flagged above
    /// 3.5 (Iglewicz and Hoaglin's recommended cut-off).
    RobustZScore,
    /// EWMA control chart: `z = λx + (1-λ)z`, flagged outside `μ ± Lσ√(λ/(2-λ))`, with μ and
    /// σ tracked by a slow exponentially weighted mean and variance.
    Ewma,
    /// Holt's linear method (level and trend): flagged when the one-step-ahead forecast
    /// error exceeds `k` robust standard deviations of past errors.
    Holt,
    /// All three side by side; a point is anomalous when at least two of them flag it. Each
    /// detector's false alarms come from a different weakness (a noisy MAD, a smoothed
    /// chart, a trend that chases drifts), so they rarely coincide. The default.
    Vote,
}

/// Parameters of the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DetectorConfig {
    /// The detector.
    pub kind: DetectorKind,
    /// Points observed before a detector may flag anything.
    pub warmup: usize,
    /// Robust z-score: window length.
    pub window: usize,
    /// Robust z-score: the modified z-score cut-off (3.5).
    pub mad_threshold: f64,
    /// EWMA: smoothing of the chart statistic (λ).
    pub ewma_lambda: f64,
    /// EWMA: width of the control limits in σ of the statistic (L).
    pub ewma_width: f64,
    /// EWMA: weight of a new point in the baseline mean and variance.
    pub ewma_baseline_alpha: f64,
    /// Holt: level smoothing (α).
    pub holt_alpha: f64,
    /// Holt: trend smoothing (β).
    pub holt_beta: f64,
    /// Holt: forecast-error cut-off in robust standard deviations (k).
    pub holt_threshold: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            kind: DetectorKind::Vote,
            warmup: 30,
            window: 200,
            mad_threshold: 3.5,
            ewma_lambda: 0.3,
            ewma_width: 3.5,
            ewma_baseline_alpha: 0.02,
            holt_alpha: 0.3,
            holt_beta: 0.05,
            holt_threshold: 4.0,
        }
    }
}

impl DetectorConfig {
    /// The default parameters with detector `kind`.
    pub fn with_kind(kind: DetectorKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), AnomalyError> {
        let unit = |x: f64| x > 0.0 && x <= 1.0;
        if self.window < 3 {
            return Err(AnomalyError::InvalidConfig(
                "window must be at least 3".into(),
            ));
        }
        if !unit(self.ewma_lambda) || !unit(self.ewma_baseline_alpha) {
            return Err(AnomalyError::InvalidConfig(
                "ewma weights must lie in (0, 1]".into(),
            ));
        }
        if !unit(self.holt_alpha) || !unit(self.holt_beta) {
            return Err(AnomalyError::InvalidConfig(
                "holt weights must lie in (0, 1]".into(),
            ));
        }
        if [self.mad_threshold, self.ewma_width, self.holt_threshold]
            .iter()
            .any(|t| !t.is_finite() || *t <= 0.0)
        {
            return Err(AnomalyError::InvalidConfig(
                "thresholds must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// The verdict on one point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// Whether the point is anomalous.
    pub anomalous: bool,
    /// The detector's score in its own units (modified z, chart deviation scaled so that the
    /// control limit is `L`, forecast error in robust σ; for `Vote`, the detectors flagging).
    pub score: f64,
    /// What the detector expected (median, baseline mean, forecast).
    pub expected: f64,
}

/// One series' detector state: feed it points in order with [`SeriesDetector::observe`].
#[derive(Debug, Clone)]
pub struct SeriesDetector {
    config: DetectorConfig,
    seen: usize,
    window: VecDeque<f64>,
    // EWMA chart.
    mean: f64,
    var: f64,
    stat: f64,
    // Holt.
    level: f64,
    trend: f64,
    err_scale: f64,
    // Vote: the three detectors.
    members: Vec<SeriesDetector>,
}

/// `MAD × 1.4826` estimates σ of a normal sample; the modified z-score's 0.6745 is its
/// reciprocal.
const MAD_TO_Z: f64 = 0.6745;
/// Mean absolute deviation × √(π/2) estimates σ of a normal sample.
const MEAN_AD_TO_SIGMA: f64 = 1.253_314;

impl SeriesDetector {
    /// A fresh detector.
    pub fn new(config: DetectorConfig) -> Result<Self, AnomalyError> {
        config.validate()?;
        Ok(Self {
            config,
            seen: 0,
            window: VecDeque::with_capacity(config.window),
            mean: 0.0,
            var: 0.0,
            stat: 0.0,
            level: 0.0,
            trend: 0.0,
            err_scale: 0.0,
            members: if config.kind == DetectorKind::Vote {
                [
                    DetectorKind::RobustZScore,
                    DetectorKind::Ewma,
                    DetectorKind::Holt,
                ]
                .into_iter()
                .map(|kind| Self::new(DetectorConfig { kind, ..config }))
                .collect::<Result<_, _>>()?
            } else {
                Vec::new()
            },
        })
    }

    /// Judges `x` against what came before, then learns from it.
    pub fn observe(&mut self, x: f64) -> Verdict {
        let warm = self.seen >= self.config.warmup;
        let v = match self.config.kind {
            DetectorKind::RobustZScore => self.robust_z(x, warm),
            DetectorKind::Ewma => self.ewma(x, warm),
            DetectorKind::Holt => self.holt(x, warm),
            DetectorKind::Vote => {
                let verdicts: Vec<Verdict> =
                    self.members.iter_mut().map(|m| m.observe(x)).collect();
                let votes = verdicts.iter().filter(|v| v.anomalous).count();
                Verdict {
                    anomalous: votes >= 2,
                    score: votes as f64,
                    expected: verdicts[0].expected,
                }
            }
        };
        self.seen += 1;
        v
    }

    fn robust_z(&mut self, x: f64, warm: bool) -> Verdict {
        let verdict = if self.window.len() >= 3 {
            let mut w: Vec<f64> = self.window.iter().copied().collect();
            let med = median(&mut w);
            let mut dev: Vec<f64> = w.iter().map(|v| (v - med).abs()).collect();
            let mad = median(&mut dev);
            // A window of mostly equal values has MAD 0: fall back to the mean absolute
            // deviation (scaled to the same σ), and only then call any change infinite.
            let score = if mad > 0.0 {
                MAD_TO_Z * (x - med) / mad
            } else {
                let mean_ad = dev.iter().sum::<f64>() / dev.len() as f64;
                if mean_ad > 0.0 {
                    (x - med) / (MEAN_AD_TO_SIGMA * mean_ad)
                } else if x == med {
                    0.0
                } else {
                    f64::INFINITY.copysign(x - med)
                }
            };
            Verdict {
                anomalous: warm && score.abs() > self.config.mad_threshold,
                score,
                expected: med,
            }
        } else {
            quiet(x)
        };
        if self.window.len() == self.config.window {
            self.window.pop_front();
        }
        self.window.push_back(x);
        verdict
    }

    fn ewma(&mut self, x: f64, warm: bool) -> Verdict {
        let c = self.config;
        if self.seen == 0 {
            (self.mean, self.var, self.stat) = (x, 0.0, x);
            return quiet(x);
        }
        // Until warm, plain running moments (Welford) make a good start for the slow EWMA.
        let alpha = if warm {
            c.ewma_baseline_alpha
        } else {
            1.0 / (self.seen as f64 + 1.0)
        };
        self.stat = c.ewma_lambda * x + (1.0 - c.ewma_lambda) * self.stat;
        let sigma = self.var.sqrt();
        let limit = c.ewma_width * sigma * (c.ewma_lambda / (2.0 - c.ewma_lambda)).sqrt();
        let dev = self.stat - self.mean;
        let score = if limit > 0.0 {
            dev / limit * c.ewma_width
        } else {
            0.0
        };
        let anomalous = warm && limit > 0.0 && dev.abs() > limit;
        let expected = self.mean;
        // A flagged point enters the baseline clipped to the control band, so one spike
        // cannot inflate σ, while a lasting shift still moves the baseline over time.
        let band = c.ewma_width * sigma;
        let learn = if anomalous && band > 0.0 {
            x.clamp(self.mean - band, self.mean + band)
        } else {
            x
        };
        let d = learn - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        Verdict {
            anomalous,
            score,
            expected,
        }
    }

    fn holt(&mut self, x: f64, warm: bool) -> Verdict {
        let c = self.config;
        match self.seen {
            0 => {
                self.level = x;
                return quiet(x);
            }
            1 => {
                self.trend = x - self.level;
                self.level = x;
                return quiet(x);
            }
            _ => {}
        }
        let forecast = self.level + self.trend;
        let err = x - forecast;
        let sigma = MEAN_AD_TO_SIGMA * self.err_scale;
        let score = if sigma > 0.0 { err / sigma } else { 0.0 };
        let anomalous = warm && sigma > 0.0 && score.abs() > c.holt_threshold;
        // Huber-style update: a flagged point pulls the model only as far as the threshold,
        // so a spike barely moves it and a real level shift is absorbed over a few steps.
        let learn = if anomalous {
            forecast + (c.holt_threshold * sigma).copysign(err)
        } else {
            x
        };
        let prev_level = self.level;
        self.level = c.holt_alpha * learn + (1.0 - c.holt_alpha) * forecast;
        self.trend = c.holt_beta * (self.level - prev_level) + (1.0 - c.holt_beta) * self.trend;
        let scale_alpha = if warm { 0.05 } else { 1.0 / self.seen as f64 };
        self.err_scale += scale_alpha * ((learn - forecast).abs() - self.err_scale);
        Verdict {
            anomalous,
            score,
            expected: forecast,
        }
    }
}

/// Runs a fresh detector over `series` and returns the indexes of the flagged points.
pub fn detect_series(config: DetectorConfig, series: &[f64]) -> Result<Vec<usize>, AnomalyError> {
    let mut d = SeriesDetector::new(config)?;
    Ok(series
        .iter()
        .enumerate()
        .filter_map(|(i, &x)| d.observe(x).anomalous.then_some(i))
        .collect())
}

fn quiet(x: f64) -> Verdict {
    Verdict {
        anomalous: false,
        score: 0.0,
        expected: x,
    }
}

/// The median of `v` (reordered in place); `v` must be non-empty.
fn median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if v.len() % 2 == 1 {
        m
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + m) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A deterministic noisy series around 100: an LCG's uniforms, four summed, so close to
    /// normal with σ = 1.
    fn noise(n: usize) -> Vec<f64> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| 100.0 + ((0..4).map(|_| uniform()).sum::<f64>() - 2.0) * 3f64.sqrt())
            .collect()
    }

    #[test]
    fn every_detector_flags_a_spike_and_nothing_else() {
        for kind in [
            DetectorKind::RobustZScore,
            DetectorKind::Ewma,
            DetectorKind::Holt,
        ] {
            let mut s = noise(200);
            s[150] += 15.0;
            let flagged = detect_series(DetectorConfig::with_kind(kind), &s).expect("valid");
            assert!(flagged.contains(&150), "{kind:?}: {flagged:?}");
            assert!(
                flagged.iter().all(|&i| (150..160).contains(&i)),
                "{kind:?}: {flagged:?}"
            );
        }
    }

    #[test]
    fn every_detector_flags_a_level_shift() {
        for kind in [
            DetectorKind::RobustZScore,
            DetectorKind::Ewma,
            DetectorKind::Holt,
        ] {
            let mut s = noise(200);
            for v in &mut s[120..] {
                *v += 10.0;
            }
            let flagged = detect_series(DetectorConfig::with_kind(kind), &s).expect("valid");
            assert!(
                flagged.first().is_some_and(|&i| (120..125).contains(&i)),
                "{kind:?}: {flagged:?}"
            );
        }
    }

    #[test]
    fn median_and_mad_fallbacks() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        let mut flat = vec![5.0; 30];
        flat.push(6.0);
        let f = detect_series(DetectorConfig::with_kind(DetectorKind::RobustZScore), &flat)
            .expect("valid");
        assert_eq!(f, vec![30]);
        assert!(
            SeriesDetector::new(DetectorConfig {
                ewma_lambda: 0.0,
                ..DetectorConfig::default()
            })
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn shifting_and_scaling_the_series_changes_nothing(
            values in prop::collection::vec(-1e3f64..1e3, 30..120),
            shift in -1e4f64..1e4,
            scale in 0.5f64..20.0,
        ) {
            // The robust z-score is location- and scale-invariant.
            let moved: Vec<f64> = values.iter().map(|v| v * scale + shift).collect();
            let config = DetectorConfig::with_kind(DetectorKind::RobustZScore);
            let a = detect_series(config, &values).expect("valid");
            let b = detect_series(config, &moved).expect("valid");
            prop_assert_eq!(a, b);
        }
    }
}
