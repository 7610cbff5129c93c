//! Change points in a series: penalized optimal partitioning (functional pruning), then checks.
//!
//! The steps, for a series `x` of n points:
//! 1. σ, the noise level, is estimated from the first differences (a step moves one
//!    difference only): MAD / √2, or with a zero MAD (mostly repeated values) the mean
//!    absolute difference · √π / 2; a constant series has no change point. After step 2, σ is
//!    raised to the standard deviation of the tamed series' differences / √2 when that is
//!    larger (the MAD alone underestimates σ too often on short series).
//! 2. Outliers are tamed: each point is winsorized to `rolling median ± c·s`, where the rolling
//!    median has a centered window of `2m − 1` points (m = minimum segment length) and s is
//!    the MAD-scaled spread of the residuals from it. A step that lasts m points moves the
//!    rolling median with it and survives; a lone spike does not.
//! 3. Optimal partitioning minimizes `Σ_segments Σ (yᵢ − ȳ_segment)² / σ² + β · (segments)`
//!    with `β = k · ln n` (k = `penalty_factor`, 5 by default: with BIC's 2 or MBIC's 3,
//!    1-2% of stationary series with 3% noise and outliers got a false change). The exact
//!    minimizer is found by dynamic programming with functional pruning (FPOP, Maidstone et
//!    al. 2017): each candidate last change keeps the set of segment means for which it can
//!    still be optimal and is dropped when that set is empty. Unlike PELT's inequality
//!    pruning, this also prunes on a series without changes, so the work is about linear in n.
//! 4. Segments shorter than m are merged into the neighbour with the closer mean.
//! 5. Each remaining change is checked on the raw observations: a two-sided Mann-Whitney U
//!    test between the two adjacent segments and a relative change of their medians of at
//!    least `min_relative_change`. The split point was chosen as the best of many, so the
//!    test's p is corrected for that selection before it is compared with `alpha`:
//!    `p · max(1, z² · ln((L − m) / m))`, L the length of the two segments together, the
//!    standard approximation of the tail of the maximum of a standardized two-sample
//!    statistic over the split positions (a Brownian bridge crossing). The weakest failing
//!    change is removed and its neighbours re-checked until every change passes.

use serde::{Deserialize, Serialize};

use super::{MAD_TO_SIGMA, check_finite, mann_whitney_u, median};
use crate::error::StatsError;

/// Settings of [`detect_change_points`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChangePointConfig {
    /// k in the penalty `β = k·σ²·ln n` per change: 5.
    pub penalty_factor: f64,
    /// Fewest observations in a segment, on each side of a change: 5.
    pub min_segment_len: usize,
    /// Significance level of the (selection-corrected) Mann-Whitney check of each change: 0.01.
    pub alpha: f64,
    /// Smallest relative change of the segment medians that is reported: 0.005 (0.5%).
    pub min_relative_change: f64,
    /// Winsorizing width c, in robust standard deviations around the rolling median: 3.
    pub winsorize_k: f64,
}

/// A detected change: a new segment starts at `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// 0-based index of the first observation of the new segment.
    pub index: usize,
    /// [`Segment::mean`] of the segment before.
    pub before_mean: f64,
    /// [`Segment::mean`] of the segment from `index` on.
    pub after_mean: f64,
    /// `(after_mean − before_mean) / |before_mean|`; `None` when `before_mean` is 0.
    pub relative_change: Option<f64>,
    /// Mann-Whitney p-value between the two segments, corrected for the choice of the split
    /// point (see the module documentation).
    pub p_value: f64,
}

/// A run of observations between changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// 0-based index of the first observation.
    pub start: usize,
    /// 0-based index one past the last observation.
    pub end: usize,
    /// Mean of the observations after outliers were tamed (winsorized, step 2 of the module
    /// documentation); the plain mean wherever nothing was clipped.
    pub mean: f64,
}

/// The result of [`detect_change_points`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segmentation {
    /// Number of observations.
    pub n: usize,
    /// The changes, in order.
    pub change_points: Vec<ChangePoint>,
    /// The segments, in order (one more than the changes).
    pub segments: Vec<Segment>,
    /// The estimated noise level σ (0 for a constant series).
    pub sigma: f64,
}

impl Default for ChangePointConfig {
    fn default() -> Self {
        Self {
            penalty_factor: 5.0,
            min_segment_len: 5,
            alpha: 0.01,
            min_relative_change: 0.005,
            winsorize_k: 3.0,
        }
    }
}

/// Finds the points where the mean of `series` shifts (see the module documentation for the
/// algorithm). A series shorter than twice the minimum segment length, or a constant one,
/// has one segment and no change point.
///
/// # Errors
/// [`StatsError::Empty`] for an empty series, [`StatsError::NonFinite`] on NaN or infinity,
/// [`StatsError::InvalidConfig`] for a setting out of range.
pub fn detect_change_points(
    series: &[f64],
    config: &ChangePointConfig,
) -> Result<Segmentation, StatsError> {
    check_finite("series", series)?;
    validate(config)?;
    let n = series.len();
    let m = config.min_segment_len.max(1);
    let tamed = winsorize(series, m, config.winsorize_k);
    let mut sigma = noise_sigma(series);
    let bounds = if n < 2 * m || sigma == 0.0 {
        vec![0, n]
    } else {
        sigma = sigma.max(diff_sd(&tamed));
        let center = median(&tamed);
        let y: Vec<f64> = tamed.iter().map(|v| (v - center) / sigma).collect();
        let beta = config.penalty_factor * (n as f64).ln();
        let bounds = optimal_partition(&y, beta);
        let bounds = merge_short(bounds, &tamed, m);
        check_changes(bounds, series, config)
    };
    Ok(describe(series, &tamed, &bounds, sigma, config))
}

fn validate(c: &ChangePointConfig) -> Result<(), StatsError> {
    let bad = |field, reason| Err(StatsError::InvalidConfig { field, reason });
    if !(c.penalty_factor.is_finite() && c.penalty_factor >= 0.0) {
        return bad("penalty_factor", "a finite number >= 0");
    }
    if !(c.alpha > 0.0 && c.alpha <= 1.0) {
        return bad("alpha", "in (0, 1]");
    }
    if !(c.min_relative_change.is_finite() && c.min_relative_change >= 0.0) {
        return bad("min_relative_change", "a finite number >= 0");
    }
    if !(c.winsorize_k.is_finite() && c.winsorize_k > 0.0) {
        return bad("winsorize_k", "a finite number > 0");
    }
    Ok(())
}

/// Robust σ of the noise: MAD of the first differences / √2, else the mean absolute
/// difference · √π / 2 (both estimate σ for Gaussian noise); 0 for a constant series.
fn noise_sigma(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let d: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let mad = super::robust_sigma(&d) / std::f64::consts::SQRT_2;
    if mad > 0.0 {
        return mad;
    }
    let mean_abs = d.iter().map(|v| v.abs()).sum::<f64>() / d.len() as f64;
    mean_abs * std::f64::consts::PI.sqrt() / 2.0
}

/// Standard deviation of the first differences / √2.
fn diff_sd(x: &[f64]) -> f64 {
    let d: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    (d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d.len() as f64 / 2.0).sqrt()
}

/// Clamps each point to its centered rolling median (window `2m − 1`) ± `k` robust standard
/// deviations of the residuals.
fn winsorize(x: &[f64], m: usize, k: f64) -> Vec<f64> {
    let half = m - 1;
    let mut window = Vec::with_capacity(2 * half + 1);
    let rolling: Vec<f64> = (0..x.len())
        .map(|i| {
            window.clear();
            window.extend_from_slice(&x[i.saturating_sub(half)..(i + half + 1).min(x.len())]);
            let mid = window.len() / 2;
            *window.select_nth_unstable_by(mid, f64::total_cmp).1
        })
        .collect();
    let residuals: Vec<f64> = x.iter().zip(&rolling).map(|(v, r)| v - r).collect();
    let width = k * MAD_TO_SIGMA * median(&residuals.iter().map(|r| r.abs()).collect::<Vec<_>>());
    rolling
        .iter()
        .zip(&residuals)
        .map(|(r, e)| r + e.clamp(-width, width))
        .collect()
}

/// A candidate for the start of the last segment, with the segment means for which it may
/// still be optimal (a union of closed intervals).
struct Candidate {
    tau: usize,
    /// Optimal cost of `y[..tau]` plus β.
    base: f64,
    region: Vec<(f64, f64)>,
}

/// Exact penalized optimal partitioning of `y` (noise scaled to σ = 1) with functional
/// pruning. Returns the segment bounds `0 = b₀ < b₁ < … < b_K = n`.
fn optimal_partition(y: &[f64], beta: f64) -> Vec<usize> {
    let n = y.len();
    let mut s1 = vec![0.0; n + 1];
    let mut s2 = vec![0.0; n + 1];
    for (i, v) in y.iter().enumerate() {
        s1[i + 1] = s1[i] + v;
        s2[i + 1] = s2[i] + v * v;
    }
    // The cost of y[tau..t] at mean μ is q + len·(μ − mean)², q = Σy² − (Σy)²/len.
    let moments = |tau: usize, t: usize| {
        let len = (t - tau) as f64;
        let sum = s1[t] - s1[tau];
        let mean = sum / len;
        let q = (s2[t] - s2[tau] - sum * mean).max(0.0);
        (len, mean, q)
    };
    // last[t]: where the last segment of the optimal partition of y[..t] starts.
    let mut last = Vec::with_capacity(n + 1);
    last.push(0);
    let mut candidates = vec![Candidate {
        tau: 0,
        base: 0.0,
        region: vec![(f64::NEG_INFINITY, f64::INFINITY)],
    }];
    let mut below: Vec<(f64, f64)> = Vec::new();
    for t in 1..=n {
        let (mut best, mut best_tau) = (f64::INFINITY, 0);
        for c in &candidates {
            let (len, mean, q) = moments(c.tau, t);
            for &(a, b) in &c.region {
                let mu = mean.clamp(a, b);
                let cost = c.base + q + len * (mu - mean) * (mu - mean);
                if cost < best {
                    best = cost;
                    best_tau = c.tau;
                }
            }
        }
        last.push(best_tau);
        // A new segment starting at t costs `best + β` whatever its mean: every candidate
        // keeps only the means where it is cheaper, and the new one gets the rest.
        let level = best + beta;
        below.clear();
        candidates.retain_mut(|c| {
            let (len, mean, q) = moments(c.tau, t);
            let room = level - c.base - q;
            if room < 0.0 {
                return false;
            }
            let h = (room / len).sqrt();
            let (lo, hi) = (mean - h, mean + h);
            below.push((lo, hi));
            c.region.retain_mut(|(a, b)| {
                *a = a.max(lo);
                *b = b.min(hi);
                a <= b
            });
            !c.region.is_empty()
        });
        if t < n {
            below.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            let mut region = Vec::new();
            let mut covered = f64::NEG_INFINITY;
            for &(lo, hi) in &below {
                if lo > covered {
                    region.push((covered, lo));
                }
                covered = covered.max(hi);
            }
            if covered < f64::INFINITY {
                region.push((covered, f64::INFINITY));
            }
            if !region.is_empty() {
                candidates.push(Candidate {
                    tau: t,
                    base: level,
                    region,
                });
            }
        }
    }
    let mut bounds = vec![n];
    let mut t = n;
    while t > 0 {
        t = last[t];
        bounds.push(t);
    }
    bounds.reverse();
    bounds
}

/// Merges every segment shorter than `m` into the neighbour whose mean (of `x`) is closer,
/// shortest first.
fn merge_short(mut bounds: Vec<usize>, x: &[f64], m: usize) -> Vec<usize> {
    let mean = |a: usize, b: usize| x[a..b].iter().sum::<f64>() / (b - a) as f64;
    loop {
        let segments = bounds.len() - 1;
        let shortest = (0..segments)
            .filter(|&i| bounds[i + 1] - bounds[i] < m)
            .min_by_key(|&i| bounds[i + 1] - bounds[i]);
        let Some(i) = shortest else {
            return bounds;
        };
        if segments == 1 {
            return bounds;
        }
        let own = mean(bounds[i], bounds[i + 1]);
        let merge_left = if i == 0 {
            false
        } else if i + 1 == segments {
            true
        } else {
            (own - mean(bounds[i - 1], bounds[i])).abs()
                <= (own - mean(bounds[i + 1], bounds[i + 2])).abs()
        };
        // Removing bound i joins segment i to its left neighbour; bound i + 1, to its right.
        bounds.remove(if merge_left { i } else { i + 1 });
    }
}

/// The check of one change between `x[a..b]` and `x[b..c]`: its selection-corrected p-value,
/// and whether it passes.
fn check(x: &[f64], a: usize, b: usize, c: usize, config: &ChangePointConfig) -> (f64, bool) {
    let (left, right) = (&x[a..b], &x[b..c]);
    let (p, z) = mann_whitney_u(left, right).map_or((1.0, 0.0), |r| (r.p_value, r.z));
    let before = median(left);
    let size = if before == 0.0 {
        f64::INFINITY
    } else {
        ((median(right) - before) / before).abs()
    };
    let m = config.min_segment_len.max(1) as f64;
    let span = ((c - a) as f64 - m) / m;
    let factor = (z * z * span.max(1.0).ln()).max(1.0);
    let adjusted = (p * factor).min(1.0);
    (
        adjusted,
        adjusted < config.alpha && size >= config.min_relative_change,
    )
}

/// Removes the weakest failing change until every change passes [`check`].
fn check_changes(mut bounds: Vec<usize>, x: &[f64], config: &ChangePointConfig) -> Vec<usize> {
    // checks[j] belongs to bound j + 1 (the inner bounds).
    let mut checks: Vec<(f64, bool)> = (1..bounds.len() - 1)
        .map(|j| check(x, bounds[j - 1], bounds[j], bounds[j + 1], config))
        .collect();
    loop {
        let weakest = checks
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.1)
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
            .map(|(j, _)| j);
        let Some(j) = weakest else {
            return bounds;
        };
        bounds.remove(j + 1);
        checks.remove(j);
        // The changes on either side now border the merged segment.
        for k in [j.wrapping_sub(1), j] {
            if k < checks.len() {
                checks[k] = check(x, bounds[k], bounds[k + 1], bounds[k + 2], config);
            }
        }
    }
}

/// Segments with the means of the tamed series, changes with the checks on the raw one.
fn describe(
    x: &[f64],
    tamed: &[f64],
    bounds: &[usize],
    sigma: f64,
    config: &ChangePointConfig,
) -> Segmentation {
    let segments: Vec<Segment> = bounds
        .windows(2)
        .map(|w| Segment {
            start: w[0],
            end: w[1],
            mean: tamed[w[0]..w[1]].iter().sum::<f64>() / (w[1] - w[0]) as f64,
        })
        .collect();
    let change_points = segments
        .windows(2)
        .map(|s| {
            let (before, after) = (&s[0], &s[1]);
            let (p_value, _) = check(x, before.start, before.end, after.end, config);
            ChangePoint {
                index: after.start,
                before_mean: before.mean,
                after_mean: after.mean,
                relative_change: (before.mean != 0.0)
                    .then(|| (after.mean - before.mean) / before.mean.abs()),
                p_value,
            }
        })
        .collect();
    Segmentation {
        n: x.len(),
        change_points,
        segments,
        sigma,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive optimal partitioning (no pruning) for comparison.
    fn brute_force(y: &[f64], beta: f64) -> Vec<usize> {
        let n = y.len();
        let cost = |a: usize, b: usize| {
            let s = &y[a..b];
            let mean = s.iter().sum::<f64>() / s.len() as f64;
            s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
        };
        let mut f = vec![f64::INFINITY; n + 1];
        let mut last = vec![0; n + 1];
        f[0] = -beta;
        for t in 1..=n {
            for tau in 0..t {
                let c = f[tau] + cost(tau, t) + beta;
                if c < f[t] {
                    f[t] = c;
                    last[t] = tau;
                }
            }
        }
        let mut bounds = vec![n];
        let mut t = n;
        while t > 0 {
            t = last[t];
            bounds.push(t);
        }
        bounds.reverse();
        bounds
    }

    /// A deterministic pseudo-random sequence in [-1, 1) (no rand needed for unit tests).
    fn jitter(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn functional_pruning_is_exact() {
        for seed in 0..30 {
            let n = 20 + (seed as usize * 7) % 60;
            let y: Vec<f64> = jitter(n, seed)
                .iter()
                .enumerate()
                .map(|(i, e)| e * 1.5 + if (i / 13) % 2 == 0 { 0.0 } else { 2.5 })
                .collect();
            for beta in [1.0, 4.0, 12.0] {
                assert_eq!(
                    optimal_partition(&y, beta),
                    brute_force(&y, beta),
                    "seed {seed} beta {beta}"
                );
            }
        }
    }

    #[test]
    fn clean_step_is_found_exactly() {
        let mut x = vec![100.0; 30];
        x.extend(vec![110.0; 30]);
        let s = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        assert_eq!(s.change_points.len(), 1, "{s:?}");
        let c = &s.change_points[0];
        assert_eq!(c.index, 30);
        assert_eq!((c.before_mean, c.after_mean), (100.0, 110.0));
        assert!((c.relative_change.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(
            s.segments,
            vec![
                Segment {
                    start: 0,
                    end: 30,
                    mean: 100.0
                },
                Segment {
                    start: 30,
                    end: 60,
                    mean: 110.0
                }
            ]
        );
    }

    #[test]
    fn lone_spikes_are_not_changes() {
        let mut x: Vec<f64> = jitter(200, 3).iter().map(|e| 100.0 + e).collect();
        x[50] = 400.0;
        x[51] = 380.0;
        x[120] = -50.0;
        let s = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        assert!(s.change_points.is_empty(), "{s:?}");
        assert_eq!(s.segments.len(), 1);
    }

    #[test]
    fn short_and_constant_series_have_one_segment() {
        let cfg = ChangePointConfig::default();
        for x in [
            vec![1.0],
            vec![1.0, 5.0],
            vec![1.0, 1.0, 1.0, 9.0, 9.0, 9.0],
            vec![4.0; 50],
        ] {
            let s = detect_change_points(&x, &cfg).unwrap();
            assert!(s.change_points.is_empty(), "{x:?}");
            assert_eq!(s.segments.len(), 1);
            assert_eq!((s.segments[0].start, s.segments[0].end), (0, x.len()));
        }
        assert_eq!(detect_change_points(&[4.0; 50], &cfg).unwrap().sigma, 0.0);
    }

    #[test]
    fn steps_in_repeated_values_are_found() {
        // Instruction counts: the same value run after run, then a 1% step.
        let mut x = vec![1_000_000.0; 12];
        x.extend(vec![1_010_000.0; 9]);
        let s = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        assert_eq!(
            s.change_points.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![12]
        );
    }

    #[test]
    fn small_steps_are_dropped() {
        let mut x = vec![1000.0; 30];
        x.extend(vec![1001.0; 30]);
        let s = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        assert!(
            s.change_points.is_empty(),
            "0.1% is below min_relative_change: {s:?}"
        );
    }

    #[test]
    fn zero_means_have_no_relative_change() {
        let mut x = vec![0.0; 20];
        x.extend(vec![5.0; 20]);
        let s = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        assert_eq!(s.change_points.len(), 1);
        assert_eq!(s.change_points[0].relative_change, None);
    }

    #[test]
    fn bad_input_and_settings_are_errors() {
        let cfg = ChangePointConfig::default();
        assert_eq!(
            detect_change_points(&[], &cfg),
            Err(StatsError::Empty { what: "series" })
        );
        assert!(matches!(
            detect_change_points(&[1.0, f64::NEG_INFINITY], &cfg),
            Err(StatsError::NonFinite { index: 1, .. })
        ));
        for bad in [
            ChangePointConfig { alpha: 0.0, ..cfg },
            ChangePointConfig {
                penalty_factor: f64::NAN,
                ..cfg
            },
            ChangePointConfig {
                min_relative_change: -1.0,
                ..cfg
            },
            ChangePointConfig {
                winsorize_k: 0.0,
                ..cfg
            },
        ] {
            assert!(matches!(
                detect_change_points(&[1.0, 2.0], &bad),
                Err(StatsError::InvalidConfig { .. })
            ));
        }
    }

    #[test]
    fn merge_short_joins_the_closer_neighbour() {
        let x = [0.0, 0.0, 0.0, 5.0, 9.0, 9.0, 9.0];
        // Segments [0,3) mean 0, [3,4) mean 5, [4,7) mean 9: 5 is closer to 9.
        assert_eq!(merge_short(vec![0, 3, 4, 7], &x, 2), vec![0, 3, 7]);
        assert_eq!(merge_short(vec![0, 1, 7], &x, 2), vec![0, 7]);
        assert_eq!(merge_short(vec![0, 6, 7], &x, 2), vec![0, 7]);
    }

    #[test]
    fn winsorize_keeps_steps_and_clips_spikes() {
        let mut x: Vec<f64> = jitter(40, 9).iter().map(|e| 10.0 + 0.1 * e).collect();
        for v in &mut x[20..] {
            *v += 5.0;
        }
        x[10] = 100.0;
        let w = winsorize(&x, 5, 3.0);
        assert!(w[10] < 10.5, "{}", w[10]);
        assert!(w[19] < 10.5 && w[20] > 14.5);
        assert_eq!(w[5], x[5]);
    }
}
