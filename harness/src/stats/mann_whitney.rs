//! Mann-Whitney U test and the Hodges-Lehmann shift with its rank-based interval.

use serde::{Deserialize, Serialize};

use super::{check_finite, normal_sf, sorted};
use crate::error::StatsError;

/// Both samples at most this long and free of ties: the p-value comes from the exact null
/// distribution of U (counts up to C(40, 20) fit an `i64`).
const EXACT_MAX_N: usize = 20;

/// Two-sided 97.5% normal quantile: the intervals are 95% intervals.
const Z_975: f64 = 1.959_963_984_540_054;

/// Above this many pairwise differences, the Hodges-Lehmann estimate uses
/// [`THINNED_POINTS`] evenly spaced order statistics of each sample instead of all of them.
const MAX_PAIRS: usize = 1_000_000;

/// Order statistics kept per sample when thinning (see [`MAX_PAIRS`]).
const THINNED_POINTS: usize = 1000;

/// How the p-value of a [`MannWhitney`] test was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestMethod {
    /// Exact null distribution of U (no ties, both samples at most 20 long).
    Exact,
    /// Normal approximation with tie correction and continuity correction.
    Normal,
}

/// Result of a two-sided Mann-Whitney U test of `x` against `y`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U of `x`: the number of pairs `(xᵢ, yⱼ)` with `xᵢ > yⱼ`, ties counting one half.
    pub u: f64,
    /// Standardized U (tie- and continuity-corrected); positive when `x` tends to be larger.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// How `p_value` was computed.
    pub method: TestMethod,
}

/// Hodges-Lehmann estimate of the shift of `y` against `x`, with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShiftEstimate {
    /// Median of all pairwise differences `yⱼ - xᵢ`.
    pub shift: f64,
    /// Lower end of the 95% confidence interval of the shift.
    pub ci_low: f64,
    /// Upper end of the 95% confidence interval of the shift.
    pub ci_high: f64,
}

/// Two-sided Mann-Whitney U (Wilcoxon rank-sum) test: do `x` and `y` come from the same
/// distribution, against a location shift either way?
///
/// Ranks are mid-ranks for ties. Without ties and with both samples at most 20 long the
/// p-value is exact; otherwise it is the normal approximation with the tie-corrected variance
/// `n₁n₂/12 · (n + 1 − Σ(t³ − t) / (n(n − 1)))` and a continuity correction of 1/2. When every
/// observation is equal, `z = 0` and `p = 1`.
///
/// # Errors
/// [`StatsError::Empty`] when a sample is empty, [`StatsError::NonFinite`] on NaN or infinity.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Result<MannWhitney, StatsError> {
    check_finite("x", x)?;
    check_finite("y", y)?;
    let (n1, n2) = (x.len(), y.len());
    let n = n1 + n2;
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && all[j].0 == all[i].0 {
            j += 1;
        }
        // Positions i..j (0-based) share the mid-rank (i + 1 + j) / 2.
        let rank = (i + 1 + j) as f64 / 2.0;
        let in_x = all[i..j].iter().filter(|e| e.1).count();
        rank_sum_x += rank * in_x as f64;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let (f1, f2, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum_x - f1 * (f1 + 1.0) / 2.0;
    let mean = f1 * f2 / 2.0;
    let var = if n > 1 {
        f1 * f2 / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)))
    } else {
        0.0
    };
    let z = if var > 0.0 {
        let d = u - mean;
        (d.signum() * (d.abs() - 0.5).max(0.0)) / var.sqrt()
    } else {
        0.0
    };
    if tie_term == 0.0 && n1 <= EXACT_MAX_N && n2 <= EXACT_MAX_N {
        let counts = u_counts(n1, n2);
        let total: f64 = counts.iter().map(|&c| c as f64).sum();
        // U is symmetric about n₁n₂/2: P(U ≤ min(u, n₁n₂ − u)) is the smaller tail.
        let lower = u.min(f1 * f2 - u) as usize;
        let tail: f64 = counts[..=lower].iter().map(|&c| c as f64).sum();
        return Ok(MannWhitney {
            u,
            z,
            p_value: (2.0 * tail / total).min(1.0),
            method: TestMethod::Exact,
        });
    }
    let p_value = if var > 0.0 {
        (2.0 * normal_sf(z.abs())).min(1.0)
    } else {
        1.0
    };
    Ok(MannWhitney {
        u,
        z,
        p_value,
        method: TestMethod::Normal,
    })
}

/// Hodges-Lehmann shift of `y` against `x` (median of the pairwise differences `yⱼ − xᵢ`) and
/// its distribution-free 95% interval (Moses): the k-th smallest and k-th largest difference,
/// with `k = ⌊n₁n₂/2 − 1.96·√(n₁n₂(n₁+n₂+1)/12)⌋` (at least 1; tiny samples get the full range,
/// with less than 95% coverage). This is the interval that goes with the Mann-Whitney test: it
/// excludes 0 about when the test rejects at 5%.
///
/// With more than a million pairs, each sample is first reduced to 1000 evenly spaced order
/// statistics and `k` is mapped to the same quantile of the reduced differences.
///
/// # Errors
/// As [`mann_whitney_u`].
pub fn hodges_lehmann(x: &[f64], y: &[f64]) -> Result<ShiftEstimate, StatsError> {
    check_finite("x", x)?;
    check_finite("y", y)?;
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let pairs = n1 * n2;
    let half_width = Z_975 * (pairs * (n1 + n2 + 1.0) / 12.0).sqrt();
    let k = (pairs / 2.0 - half_width).floor().max(1.0);
    let (xs, ys) = (sorted(x), sorted(y));
    let (xs, ys) = if x.len() * y.len() > MAX_PAIRS {
        (thin(&xs), thin(&ys))
    } else {
        (xs, ys)
    };
    let mut diffs: Vec<f64> = ys
        .iter()
        .flat_map(|&b| xs.iter().map(move |&a| b - a))
        .collect();
    diffs.sort_unstable_by(f64::total_cmp);
    let last = diffs.len() - 1;
    // Position of the k-th smallest of `pairs` differences among the `last + 1` we hold.
    let low_at = if last as f64 + 1.0 == pairs {
        k as usize - 1
    } else {
        (((k - 1.0) / (pairs - 1.0)) * last as f64).round() as usize
    };
    Ok(ShiftEstimate {
        shift: super::quantile_sorted(&diffs, 0.5),
        ci_low: diffs[low_at.min(last)],
        ci_high: diffs[last - low_at.min(last)],
    })
}

/// Counts of each value `0..=n₁n₂` of U under the null hypothesis without ties: the
/// coefficients of the Gaussian binomial `[n₁+n₂ choose n₁]_q = Π_{i=1}^{n₁} (1 − q^{n₂+i}) / (1 − q^i)`.
fn u_counts(n1: usize, n2: usize) -> Vec<i64> {
    let max = n1 * n2;
    let mut c = vec![0i64; max + 1];
    c[0] = 1;
    for i in 1..=n1 {
        let s = n2 + i;
        for k in (s..=max).rev() {
            c[k] -= c[k - s];
        }
        for k in i..=max {
            c[k] += c[k - i];
        }
    }
    c
}

/// [`THINNED_POINTS`] evenly spaced order statistics of sorted data.
fn thin(sorted: &[f64]) -> Vec<f64> {
    if sorted.len() <= THINNED_POINTS {
        return sorted.to_vec();
    }
    let last = sorted.len() - 1;
    (0..THINNED_POINTS)
        .map(|i| sorted[i * last / (THINNED_POINTS - 1)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_distribution_matches_tables() {
        let c = u_counts(5, 5);
        assert_eq!(c.len(), 26);
        assert_eq!(c.iter().sum::<i64>(), 252);
        assert_eq!(&c[..4], &[1, 1, 2, 3]);
        // Symmetric.
        assert!(c.iter().zip(c.iter().rev()).all(|(a, b)| a == b));
        assert_eq!(u_counts(20, 20).iter().sum::<i64>(), 137_846_528_820);
        assert_eq!(u_counts(3, 0), vec![1]);
    }

    #[test]
    fn exact_p_value_of_full_separation() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [6.0, 7.0, 8.0, 9.0, 10.0];
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.method, TestMethod::Exact);
        assert_eq!(r.u, 0.0);
        assert!((r.p_value - 2.0 / 252.0).abs() < 1e-15);
        assert!(r.z < 0.0);
        // Swapping the samples mirrors U and keeps p.
        let s = mann_whitney_u(&y, &x).unwrap();
        assert_eq!(s.u, 25.0);
        assert_eq!(s.p_value, r.p_value);
    }

    #[test]
    fn exact_p_value_of_an_overlap() {
        // One pair (5.0 > 4.4) has x above y: U = 1 of 12.
        let x = [1.1, 3.3, 2.2, 5.0];
        let y = [4.4, 6.6, 7.7];
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.u, 1.0);
        // P(U <= 1) for n1 = 4, n2 = 3 is 2/35.
        assert!((r.p_value - 4.0 / 35.0).abs() < 1e-15);
    }

    #[test]
    fn normal_approximation_with_ties() {
        // Four tied pairs of values (2, 3, 4, 5): mid-ranks, U = 1 + 2 * 0.5 = 2.
        let x = [1.0, 2.0, 2.0, 3.0, 4.0];
        let y = [3.0, 4.0, 5.0, 5.0, 6.0];
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.method, TestMethod::Normal);
        assert_eq!(r.u, 2.0);
        // var = 25/12 * (11 - 4 * 6 / 90); z = -(10.5 - 0.5) / sqrt(var)
        let var = 25.0 / 12.0 * (11.0 - 24.0 / 90.0);
        let z = -10.0 / f64::sqrt(var);
        assert!((r.z - z).abs() < 1e-12);
        assert!((r.p_value - 2.0 * normal_sf(-z)).abs() < 1e-12);
        assert!((r.p_value - 0.0345).abs() < 1e-3, "{}", r.p_value);
    }

    #[test]
    fn large_samples_use_the_normal_approximation() {
        let x: Vec<f64> = (0..30).map(f64::from).collect();
        let y: Vec<f64> = (0..30).map(|i| f64::from(i) + 0.5).collect();
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.method, TestMethod::Normal);
        assert!(r.p_value > 0.5, "{}", r.p_value);
    }

    #[test]
    fn identical_samples_are_not_different() {
        let r = mann_whitney_u(&[2.0; 4], &[2.0; 6]).unwrap();
        assert_eq!((r.z, r.p_value), (0.0, 1.0));
        let one = mann_whitney_u(&[1.0], &[2.0]).unwrap();
        assert_eq!(one.p_value, 1.0);
    }

    #[test]
    fn malformed_samples_are_errors() {
        assert_eq!(
            mann_whitney_u(&[], &[1.0]),
            Err(StatsError::Empty { what: "x" })
        );
        assert!(matches!(
            mann_whitney_u(&[1.0], &[f64::NAN]),
            Err(StatsError::NonFinite {
                what: "y",
                index: 0,
                ..
            })
        ));
        assert!(hodges_lehmann(&[1.0], &[]).is_err());
    }

    #[test]
    fn hodges_lehmann_estimates_the_shift() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 10.0).collect();
        let h = hodges_lehmann(&x, &y).unwrap();
        assert_eq!(h.shift, 10.0);
        assert!(h.ci_low < 10.0 && h.ci_high > 10.0);
        // 400 pairs: k = floor(200 - 1.96 * sqrt(400 * 41 / 12)) = 127 -> the 127th
        // smallest difference.
        let mut d: Vec<f64> = y
            .iter()
            .flat_map(|b| x.iter().map(move |a| b - a))
            .collect();
        d.sort_unstable_by(f64::total_cmp);
        assert_eq!(h.ci_low, d[126]);
        assert_eq!(h.ci_high, d[399 - 126]);
        // Tiny samples: the full range.
        let t = hodges_lehmann(&[1.0], &[3.0, 5.0]).unwrap();
        assert_eq!((t.shift, t.ci_low, t.ci_high), (3.0, 2.0, 4.0));
    }

    #[test]
    fn hodges_lehmann_thins_huge_samples() {
        let x: Vec<f64> = (0..2000).map(|i| f64::from(i) / 2000.0).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 3.0).collect();
        let h = hodges_lehmann(&x, &y).unwrap();
        assert!((h.shift - 3.0).abs() < 1e-3, "{h:?}");
        assert!(h.ci_low <= h.shift && h.shift <= h.ci_high, "{h:?}");
        assert!(h.ci_high - h.ci_low < 0.05, "{h:?}");
    }
}
