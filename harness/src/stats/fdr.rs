//! Benjamini-Hochberg control of the false discovery rate across a family of tests.

/// Benjamini-Hochberg adjusted p-values ("q-values"), in the order of `p_values`.
///
/// `adjusted(i) = min over j with p(j) ≥ p(i) of (m / rank(j)) · p(j)`, capped at 1, where m is
/// the family size and ranks are 1-based in ascending order of p. Rejecting every test whose
/// adjusted p is below α keeps the expected share of false discoveries at most α (for
/// independent or positively dependent tests). A NaN p-value counts as 1; values are clamped
/// to `[0, 1]`.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let clean: Vec<f64> = p_values
        .iter()
        .map(|&p| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| clean[a].total_cmp(&clean[b]));
    let mut adjusted = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank0, &i) in order.iter().enumerate().rev() {
        running = running.min(clean[i] * m as f64 / (rank0 + 1) as f64);
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.2), "BH")
        //    -> 0.025 0.050 0.050 0.025 0.200
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 0.2]);
        let want = [0.025, 0.05, 0.05, 0.025, 0.2];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn adjusted_values_are_monotone_and_capped() {
        let p = [0.9, 0.8, 0.001, 0.5, 0.95];
        let q = benjamini_hochberg(&p);
        assert!(q.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(q.iter().zip(&p).all(|(a, b)| a >= b));
        assert!((q[2] - 0.005).abs() < 1e-12);
        assert_eq!(q[4], 0.95);
    }

    #[test]
    fn edge_cases() {
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[0.3]), vec![0.3]);
        assert_eq!(benjamini_hochberg(&[f64::NAN, -1.0]), vec![1.0, 0.0]);
    }
}
