//! Seeded Gaussian and Student-t samples for weights and calibration inputs.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// How the weights of a seeded model are distributed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightDistribution {
    /// Normal weights, the usual initialization.
    Gaussian,
    /// Student-t weights with `dof` degrees of freedom (at least 3, so the variance is
    /// finite): heavy tails like trained transformer weights, where a few outliers
    /// stretch a block's scale and cost the small weights their resolution.
    StudentT {
        /// Degrees of freedom.
        dof: u32,
    },
}

/// A seeded source of standard normal and Student-t samples.
#[derive(Debug)]
pub(crate) struct Sampler {
    rng: Xoshiro256PlusPlus,
    spare: Option<f64>,
}

impl Sampler {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            spare: None,
        }
    }

    /// One N(0, 1) sample (Box-Muller; the second value of each pair is kept for the next call).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    /// One sample of a Student-t with `dof` degrees of freedom: Z / sqrt(chi2(dof) / dof),
    /// the chi-square drawn as a sum of `dof` squared normals.
    pub(crate) fn student_t(&mut self, dof: u32) -> f64 {
        let z = self.normal();
        let chi2: f64 = (0..dof).map(|_| self.normal().powi(2)).sum();
        z / (chi2 / f64::from(dof)).sqrt()
    }

    /// `n` samples of `dist` scaled to standard deviation `std`.
    pub(crate) fn weights(&mut self, dist: WeightDistribution, n: usize, std: f64) -> Vec<f32> {
        match dist {
            WeightDistribution::Gaussian => (0..n).map(|_| (self.normal() * std) as f32).collect(),
            WeightDistribution::StudentT { dof } => {
                // A t variable has variance dof / (dof - 2): rescale to unit variance.
                let unit = ((f64::from(dof) - 2.0) / f64::from(dof)).sqrt();
                (0..n)
                    .map(|_| (self.student_t(dof) * unit * std) as f32)
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f32]) -> (f64, f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let kurt = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(4))
            .sum::<f64>()
            / n
            / var.powi(2);
        (mean, var, kurt)
    }

    #[test]
    fn gaussian_has_the_requested_moments() {
        let xs = Sampler::new(1).weights(WeightDistribution::Gaussian, 200_000, 0.5);
        let (mean, var, kurt) = moments(&xs);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 0.25).abs() < 0.01, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.1, "kurtosis {kurt}");
    }

    #[test]
    fn student_t_has_unit_variance_and_heavy_tails() {
        let xs = Sampler::new(2).weights(WeightDistribution::StudentT { dof: 5 }, 200_000, 1.0);
        let (mean, var, kurt) = moments(&xs);
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.08, "variance {var}");
        // The excess kurtosis of t(5) is 6: far above the Gaussian's 0.
        assert!(kurt > 5.0, "kurtosis {kurt}");
    }

    #[test]
    fn same_seed_same_samples() {
        let a = Sampler::new(7).weights(WeightDistribution::Gaussian, 64, 1.0);
        let b = Sampler::new(7).weights(WeightDistribution::Gaussian, 64, 1.0);
        let c = Sampler::new(8).weights(WeightDistribution::Gaussian, 64, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
