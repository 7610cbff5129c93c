//! `DashboardData`: plot-ready series, downsampled with Largest-Triangle-Three-Buckets.

use serde::Serialize;

use crate::alerts::Alert;
use crate::error::DashboardError;
use crate::recorder::Labels;
use crate::store::SeriesStore;

/// One line of a panel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlotSeries {
    /// The series' labels (the legend).
    pub labels: Labels,
    /// `[unix seconds, value]`, in time order.
    pub points: Vec<[f64; 2]>,
}

/// One chart: every series of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Panel {
    /// The metric name.
    pub title: String,
    /// Its series.
    pub series: Vec<PlotSeries>,
}

/// What a dashboard front end draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardData {
    /// One panel per metric name, sorted by name.
    pub panels: Vec<Panel>,
    /// The alerts of the latest evaluation.
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DashboardRenderer {
    pub(crate) max_points: usize,
}

impl DashboardRenderer {
    pub(crate) fn render(
        &self,
        store: &SeriesStore,
        alerts: Vec<Alert>,
    ) -> Result<DashboardData, DashboardError> {
        if self.max_points < 3 {
            return Err(DashboardError::TooFewPoints(self.max_points));
        }
        let mut panels: Vec<Panel> = Vec::new();
        for (key, samples) in store.all() {
            let points: Vec<[f64; 2]> = samples
                .iter()
                .map(|&(t, v)| [t as f64 / 1000.0, v])
                .collect();
            let series = PlotSeries {
                labels: key.labels.clone(),
                points: lttb(&points, self.max_points),
            };
            match panels.last_mut() {
                Some(p) if p.title == key.name => p.series.push(series),
                _ => panels.push(Panel {
                    title: key.name.clone(),
                    series: vec![series],
                }),
            }
        }
        Ok(DashboardData { panels, alerts })
    }
}

/// Largest-Triangle-Three-Buckets (Steinarsson, 2013): keeps the first and last points and,
/// from each of `threshold - 2` equal buckets between them, the point forming the largest
/// triangle with the previously kept point and the next bucket's mean, so peaks survive
/// downsampling where averaging would flatten them.
pub(crate) fn lttb(points: &[[f64; 2]], threshold: usize) -> Vec<[f64; 2]> {
    let n = points.len();
    if threshold >= n || threshold < 3 {
        return points.to_vec();
    }
    let every = (n - 2) as f64 / (threshold - 2) as f64;
    let mut out = Vec::with_capacity(threshold);
    out.push(points[0]);
    let mut a = 0;
    for i in 0..threshold - 2 {
        let next_start = ((i + 1) as f64 * every) as usize + 1;
        let next_end = (((i + 2) as f64 * every) as usize + 1).min(n);
        let next = &points[next_start.min(n - 1)..next_end.max(next_start.min(n - 1) + 1)];
        let avg_x = next.iter().map(|p| p[0]).sum::<f64>() / next.len() as f64;
        let avg_y = next.iter().map(|p| p[1]).sum::<f64>() / next.len() as f64;
        let start = (i as f64 * every) as usize + 1;
        let end = (((i + 1) as f64 * every) as usize + 1).min(n - 1);
        let [ax, ay] = points[a];
        let mut best = start;
        let mut best_area = -1.0;
        for (j, p) in points.iter().enumerate().take(end).skip(start) {
            let area = ((ax - avg_x) * (p[1] - ay) - (ax - p[0]) * (avg_y - ay)).abs();
            if area > best_area {
                best_area = area;
                best = j;
            }
        }
        out.push(points[best]);
        a = best;
    }
    out.push(points[n - 1]);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keeps_a_lone_peak() {
        let mut pts: Vec<[f64; 2]> = (0..1000).map(|i| [i as f64, 0.0]).collect();
        pts[537][1] = 50.0;
        let out = lttb(&pts, 20);
        assert_eq!(out.len(), 20);
        assert!(out.contains(&[537.0, 50.0]));
    }

    proptest! {
        #[test]
        fn downsampled_points_are_ordered_originals(
            ys in prop::collection::vec(-1e6f64..1e6, 0..500),
            threshold in 3usize..100,
        ) {
            let pts: Vec<[f64; 2]> = ys.iter().enumerate().map(|(i, &y)| [i as f64, y]).collect();
            let out = lttb(&pts, threshold);
            prop_assert_eq!(out.len(), threshold.min(pts.len()));
            prop_assert!(out.windows(2).all(|w| w[0][0] < w[1][0]));
            prop_assert!(out.iter().all(|p| pts.contains(p)));
            if let (Some(f), Some(l)) = (pts.first(), pts.last()) {
                prop_assert_eq!(out.first(), Some(f));
                prop_assert_eq!(out.last(), Some(l));
            }
        }
    }
}
