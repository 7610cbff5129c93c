//! SVG plots with plotters: a scenario-metric's history, base-vs-head samples, a suite summary.
//!
//! Every plot is a self-contained SVG string (plotters' SVG backend writes text as `<text>`
//! elements, escaped, so no font is needed to draw and the browser renders the labels). The
//! colours say the same thing everywhere: regressions red, improvements green, the rest grey;
//! the baseline blue; change points orange.

use plotters::coord::Shift;
use plotters::prelude::{
    BLACK, ChartBuilder, Circle, Color as _, DrawingArea, IntoDrawingArea, LineSeries, PathElement,
    RGBColor, Rectangle, SVGBackend, WHITE,
};

use serde::{Deserialize, Serialize};

use crate::compare::{HistoricalComparison, MetricKey};
use crate::error::PlotError;
use crate::report::format_value;
use crate::stats::Verdict;

/// Red of regressions.
pub const REGRESSION_COLOR: RGBColor = RGBColor(200, 40, 40);
/// Green of improvements.
pub const IMPROVEMENT_COLOR: RGBColor = RGBColor(30, 140, 60);
/// Grey of everything else.
const NEUTRAL_COLOR: RGBColor = RGBColor(120, 120, 120);
/// Blue of the baseline.
const BASELINE_COLOR: RGBColor = RGBColor(40, 90, 200);
/// Orange of change points and segment means.
const CHANGE_COLOR: RGBColor = RGBColor(230, 130, 0);

/// What [`history_svg`] draws: one scenario-metric over runs, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct HistoryPlot<'a> {
    /// Title (the scenario-metric).
    pub title: &'a str,
    /// Unit of the values.
    pub unit: &'a str,
    /// Point values, one per run.
    pub values: &'a [f64],
    /// 0-based indices where a new segment starts.
    pub change_points: &'a [usize],
    /// Mean of each segment, `(start, end, mean)` with `end` exclusive.
    pub segments: &'a [(usize, usize, f64)],
    /// The baseline's value, drawn as a horizontal line.
    pub baseline: Option<f64>,
}

/// One row of [`summary_svg`]: a scenario-metric's relative change and its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBar {
    /// Row label (scenario, subject, metric).
    pub label: String,
    /// Relative change (+0.1 = 10% higher).
    pub change: f64,
    /// 95% interval of the change, when a two-sample test gave one.
    pub interval: Option<(f64, f64)>,
    /// Its verdict, which picks the colour.
    pub verdict: Verdict,
}

/// The plots of a run's report: the summary of relative changes and the base-vs-head
/// samples of each tested scenario-metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportPlots {
    /// [`summary_svg`] of every tested scenario-metric, when one has a finite change.
    pub summary: Option<String>,
    /// [`distribution_svg`] of the scenario-metrics with at least two samples a side,
    /// regressions and improvements first.
    pub distributions: Vec<Figure>,
}

/// One plot and what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The scenario-metric.
    pub key: MetricKey,
    /// A caption: the key, its verdict and change.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

impl ReportPlots {
    /// The plots of `comparison`, with at most `max_distributions` box plots.
    pub fn of(
        comparison: &HistoricalComparison,
        max_distributions: usize,
    ) -> Result<Self, PlotError> {
        let entries = comparison.by_severity();
        let bars: Vec<ChangeBar> = entries
            .iter()
            .filter(|e| e.verdict != Verdict::Skipped)
            .filter_map(|e| {
                let change = e.evidence.relative_change.or(e.relative_change)?;
                Some(ChangeBar {
                    label: e.key.to_string(),
                    change,
                    interval: e.evidence.ci_low.zip(e.evidence.ci_high),
                    verdict: e.verdict,
                })
            })
            .filter(|b| b.change.is_finite())
            .collect();
        let summary = if bars.is_empty() {
            None
        } else {
            Some(summary_svg(&bars)?)
        };
        let mut distributions = Vec::new();
        for e in entries.iter().filter(|e| e.verdict != Verdict::Skipped) {
            if distributions.len() == max_distributions {
                break;
            }
            let (Some(base), Some(head)) = (&e.baseline, &e.current) else {
                continue;
            };
            if base.samples.len() < 2 || head.samples.len() < 2 {
                continue;
            }
            distributions.push(Figure {
                key: e.key.clone(),
                caption: format!("{}: {} ({})", e.key, e.verdict, e.change_text()),
                svg: distribution_svg(&e.key.to_string(), e.unit(), &base.samples, &head.samples)?,
            });
        }
        Ok(Self {
            summary,
            distributions,
        })
    }
}

/// The history of one scenario-metric: the values as a line with points, the change points
/// as vertical lines, each segment's mean, and the baseline.
pub fn history_svg(plot: &HistoryPlot<'_>) -> Result<String, PlotError> {
    if plot.values.is_empty() || plot.values.iter().any(|v| !v.is_finite()) {
        return Err(PlotError::Data {
            plot: "history",
            reason: "needs at least one value, all finite".into(),
        });
    }
    let n = plot.values.len();
    let (lo, hi) = padded_range(plot.values.iter().copied().chain(plot.baseline));
    draw_svg((720, 320), "history", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(plot.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5).max(0.5), lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("run (oldest first)")
            .y_desc(plot.unit)
            .y_label_formatter(&|v| format_value(*v, plot.unit))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .draw()?;
        for &at in plot.change_points {
            let x = at as f64 - 0.5;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, lo), (x, hi)],
                CHANGE_COLOR.stroke_width(2),
            )))?;
        }
        for &(start, end, mean) in plot.segments {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(start as f64 - 0.5, mean), (end as f64 - 0.5, mean)],
                CHANGE_COLOR.stroke_width(1),
            )))?;
        }
        if let Some(base) = plot.baseline {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(-0.5, base), (n as f64 - 0.5, base)],
                    BASELINE_COLOR.stroke_width(1),
                )))?
                .label("baseline")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BASELINE_COLOR));
            chart
                .configure_series_labels()
                .background_style(WHITE)
                .border_style(NEUTRAL_COLOR)
                .draw()?;
        }
        let points = plot.values.iter().enumerate().map(|(i, v)| (i as f64, *v));
        chart.draw_series(LineSeries::new(points.clone(), BLACK.stroke_width(1)))?;
        chart.draw_series(points.map(|p| Circle::new(p, 2, BLACK.filled())))?;
        Ok(())
    })
}

/// Base and head samples side by side as box plots: the box spans the quartiles, the line in
/// it is the median, whiskers reach the furthest samples within 1.5 IQR, and samples beyond
/// are drawn as points.
pub fn distribution_svg(
    title: &str,
    unit: &str,
    base: &[f64],
    head: &[f64],
) -> Result<String, PlotError> {
    let sides = [("base", base, BASELINE_COLOR), ("head", head, BLACK)];
    if sides
        .iter()
        .any(|(_, xs, _)| xs.is_empty() || xs.iter().any(|v| !v.is_finite()))
    {
        return Err(PlotError::Data {
            plot: "distribution",
            reason: "needs samples on both sides, all finite".into(),
        });
    }
    let (lo, hi) = padded_range(base.iter().chain(head).copied());
    draw_svg((420, 320), "distribution", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 14))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..1.5, lo..hi)?;
        chart
            .configure_mesh()
            .y_desc(unit)
            .y_label_formatter(&|v| format_value(*v, unit))
            .x_labels(2)
            .x_label_formatter(&|x: &f64| match x.round() as i64 {
                0 => format!("base (n={})", base.len()),
                1 => format!("head (n={})", head.len()),
                _ => String::new(),
            })
            .disable_x_mesh()
            .light_line_style(WHITE)
            .draw()?;
        for (i, (_, xs, color)) in sides.iter().enumerate() {
            let b = BoxStats::of(xs);
            let x = i as f64;
            let style = color.stroke_width(2);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.25, b.q1), (x + 0.25, b.q3)],
                style,
            )))?;
            for (from, to) in [
                ((x - 0.25, b.median), (x + 0.25, b.median)),
                ((x, b.q3), (x, b.high)),
                ((x, b.q1), (x, b.low)),
                ((x - 0.1, b.high), (x + 0.1, b.high)),
                ((x - 0.1, b.low), (x + 0.1, b.low)),
            ] {
                chart.draw_series(std::iter::once(PathElement::new(vec![from, to], style)))?;
            }
            chart.draw_series(
                xs.iter()
                    .filter(|v| **v < b.low || **v > b.high)
                    .map(|v| Circle::new((x, *v), 2, color.filled())),
            )?;
        }
        Ok(())
    })
}

/// Relative changes of a suite's scenario-metrics, one row each with its interval:
/// regressions red, improvements green, the rest grey, and a line at zero.
pub fn summary_svg(bars: &[ChangeBar]) -> Result<String, PlotError> {
    if bars.is_empty() {
        return Err(PlotError::Data {
            plot: "summary",
            reason: "no change to draw".into(),
        });
    }
    if bars.iter().any(|b| {
        !b.change.is_finite()
            || b.interval
                .is_some_and(|(l, h)| !l.is_finite() || !h.is_finite())
    }) {
        return Err(PlotError::Data {
            plot: "summary",
            reason: "changes and intervals must be finite".into(),
        });
    }
    let extent = bars
        .iter()
        .flat_map(|b| {
            [
                b.change,
                b.interval.map_or(0.0, |i| i.0),
                b.interval.map_or(0.0, |i| i.1),
            ]
        })
        .fold(0.01_f64, |m, v| m.max(v.abs()))
        * 1.15;
    let rows = bars.len();
    let height = u32::try_from(rows * 22 + 90).unwrap_or(u32::MAX);
    let label_width = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(10, 70);
    let label_width = u32::try_from(label_width * 7 + 10).unwrap_or(500);
    draw_svg((720 + label_width, height), "summary", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("relative change vs base (95% interval)", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(label_width)
            .build_cartesian_2d(-extent..extent, -0.5..rows as f64 - 0.5)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| format!("{:+.1}%", v * 100.0))
            .y_labels(rows)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                bars.get(rows - 1 - i as usize)
                    .map_or_else(String::new, |b| b.label.clone())
            })
            .disable_y_mesh()
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, -0.5), (0.0, rows as f64 - 0.5)],
            NEUTRAL_COLOR.stroke_width(1),
        )))?;
        for (i, bar) in bars.iter().enumerate() {
            // The first bar at the top.
            let y = (rows - 1 - i) as f64;
            let color = verdict_color(bar.verdict);
            if let Some((low, high)) = bar.interval {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(low, y), (high, y)],
                    color.stroke_width(2),
                )))?;
            }
            chart.draw_series(std::iter::once(Circle::new(
                (bar.change, y),
                4,
                color.filled(),
            )))?;
        }
        Ok(())
    })
}

/// The colour of a verdict.
pub fn verdict_color(v: Verdict) -> RGBColor {
    match v {
        Verdict::Regression => REGRESSION_COLOR,
        Verdict::Improvement => IMPROVEMENT_COLOR,
        Verdict::Unchanged | Verdict::Noisy | Verdict::Skipped => NEUTRAL_COLOR,
    }
}

/// Quartiles and whisker ends of a sample.
struct BoxStats {
    q1: f64,
    median: f64,
    q3: f64,
    low: f64,
    high: f64,
}

impl BoxStats {
    fn of(xs: &[f64]) -> Self {
        let mut v = xs.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        let q = |p: f64| {
            let h = (v.len() - 1) as f64 * p;
            let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
            v[lo] + (h - lo as f64) * (v[hi] - v[lo])
        };
        let (q1, median, q3) = (q(0.25), q(0.5), q(0.75));
        let reach = 1.5 * (q3 - q1);
        let low = v.iter().copied().find(|x| *x >= q1 - reach).unwrap_or(q1);
        let high = v
            .iter()
            .rev()
            .copied()
            .find(|x| *x <= q3 + reach)
            .unwrap_or(q3);
        Self {
            q1,
            median,
            q3,
            low,
            high,
        }
    }
}

/// The range of `values` with 8% padding on each side (1 around a constant).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.08
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

/// Draws on a white SVG canvas of `size` and returns the document.
fn draw_svg<F>(size: (u32, u32), plot: &'static str, draw: F) -> Result<String, PlotError>
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), Box<dyn std::error::Error>>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let failed = |e: &dyn std::fmt::Display| PlotError::Draw {
            plot,
            message: e.to_string(),
        };
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        draw(&root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn history_marks_change_points_segments_and_baseline() {
        let values: Vec<f64> = (0..40)
            .map(|i| if i < 25 { 100.0 } else { 112.0 } + f64::from(i % 3))
            .collect();
        let svg = history_svg(&HistoryPlot {
            title: "memory/a perflab wall_time <b>",
            unit: "ns",
            values: &values,
            change_points: &[25],
            segments: &[(0, 25, 101.0), (25, 40, 113.0)],
            baseline: Some(101.0),
        })
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(
            svg.contains("memory/a perflab wall_time &lt;b&gt;"),
            "titles are escaped"
        );
        assert_eq!(count(&svg, "<circle"), 40, "a point per run");
        assert!(
            count(&svg, "#E68200") >= 3,
            "change line and two segment means"
        );
        assert!(
            svg.contains("#285AC8") && svg.contains("\nbaseline\n"),
            "{svg}"
        );
    }

    #[test]
    fn distributions_draw_two_boxes_and_the_outliers() {
        let base: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 5)).collect();
        let mut head: Vec<f64> = (0..30).map(|i| 110.0 + f64::from(i % 5)).collect();
        head.push(500.0);
        let svg = distribution_svg("kib1", "ns", &base, &head).unwrap();
        assert_eq!(
            count(&svg, "#285AC8"),
            6,
            "the base box: a rectangle and five lines"
        );
        assert_eq!(count(&svg, "<circle"), 1, "the one outlier");
        assert!(svg.contains("head (n=31)") && svg.contains("base (n=30)"));
        assert!(distribution_svg("x", "ns", &[], &head).is_err());
        assert!(distribution_svg("x", "ns", &base, &[f64::NAN]).is_err());
    }

    #[test]
    fn summary_colours_follow_the_verdicts() {
        let bars = vec![
            ChangeBar {
                label: "memory/a perflab wall_time".into(),
                change: 0.12,
                interval: Some((0.08, 0.16)),
                verdict: Verdict::Regression,
            },
            ChangeBar {
                label: "memory/b perflab wall_time".into(),
                change: -0.2,
                interval: Some((-0.25, -0.15)),
                verdict: Verdict::Improvement,
            },
            ChangeBar {
                label: "memory/c perflab instructions".into(),
                change: 0.001,
                interval: None,
                verdict: Verdict::Unchanged,
            },
        ];
        let svg = summary_svg(&bars).unwrap();
        assert_eq!(count(&svg, "<circle"), 3);
        assert_eq!(count(&svg, "#C82828"), 2, "red interval and point");
        assert_eq!(count(&svg, "#1E8C3C"), 2, "green interval and point");
        for b in &bars {
            assert!(svg.contains(&b.label), "{} labelled", b.label);
        }
        assert!(summary_svg(&[]).is_err());
    }
}
