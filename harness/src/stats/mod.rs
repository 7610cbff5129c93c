//! Statistics Polars lacks: two-sample tests, FDR, noise thresholds, verdicts, change points.
//!
//! Everything here is plain Rust over `f64` slices (Polars lacks these statistics); the
//! callers feed it from Polars frames. See the crate README, "How a verdict is decided".

mod changepoint;
mod fdr;
mod mann_whitney;
mod noise;
mod verdict;

pub use changepoint::{
    ChangePoint, ChangePointConfig, Segment, Segmentation, detect_change_points,
};
pub use fdr::benjamini_hochberg;
pub use mann_whitney::{MannWhitney, ShiftEstimate, TestMethod, hodges_lehmann, mann_whitney_u};
pub use noise::{MIN_HISTORY_DELTAS, MetricKind, NoiseThreshold, ThresholdSource, noise_threshold};
pub use verdict::{AbSamples, AbVerdict, Evidence, Verdict, VerdictConfig, ab_verdicts};

use crate::error::StatsError;

/// `1 / Φ⁻¹(3/4)`: scales a median absolute deviation to a normal standard deviation.
const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Fails on an empty input or on the first NaN or infinite observation.
fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), StatsError> {
    if xs.is_empty() {
        return Err(StatsError::Empty { what });
    }
    match xs.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(StatsError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}

/// A sorted copy of `xs` (total order; callers have rejected NaN).
fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Quantile `q` in `[0, 1]` of sorted, non-empty data, linearly interpolated (Hyndman-Fan
/// type 7, the default of R and NumPy).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Median of non-empty data.
fn median(xs: &[f64]) -> f64 {
    quantile_sorted(&sorted(xs), 0.5)
}

/// Median absolute deviation from the median, scaled to a normal standard deviation.
fn robust_sigma(xs: &[f64]) -> f64 {
    let m = median(xs);
    let dev: Vec<f64> = xs.iter().map(|v| (v - m).abs()).collect();
    MAD_TO_SIGMA * median(&dev)
}

/// Upper tail `P(Z > z)` of the standard normal distribution.
fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function, Chebyshev fit of Numerical Recipes (`erfcc`): relative error
/// below 1.2e-7 everywhere, so tail p-values keep their precision.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_963_985) - 0.025).abs() < 1e-8);
        assert!((normal_sf(-1.644_853_627) - 0.95).abs() < 1e-8);
        // Relative precision far in the tail: P(Z > 6) = 9.8659e-10.
        assert!((normal_sf(6.0) / 9.865_876_450e-10 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&s, 0.5), 2.5);
        assert_eq!(quantile_sorted(&s, 0.75), 3.25);
        assert_eq!(quantile_sorted(&[7.0], 0.3), 7.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn robust_sigma_ignores_outliers() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 1000.0];
        // median 3.5, absolute deviations 2.5 1.5 .5 .5 1.5 996.5 -> MAD 1.5
        assert!((robust_sigma(&xs) - 1.5 * MAD_TO_SIGMA).abs() < 1e-12);
    }

    #[test]
    fn check_finite_names_the_bad_observation() {
        assert_eq!(check_finite("x", &[]), Err(StatsError::Empty { what: "x" }));
        let e = check_finite("x", &[1.0, f64::INFINITY]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x: observation 1 is inf, not a finite number"
        );
        assert!(check_finite("x", &[1.0]).is_ok());
    }
}
