//! The static HTML report: an index of runs, a page per run and a page per scenario.
//!
//! Pages are rendered with minijinja from the templates in `harness/templates/`, which escape
//! every value (names of scenarios, branches, runners are shown as text, never as markup);
//! the only unescaped content is the SVG that plotters wrote, which escapes its own text. The
//! site needs no network: styles are inline and plots are inline SVG, so it works opened from
//! disk. It is written to a fresh folder that replaces the old one only when complete, so a
//! failed generation leaves the previous report whole.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::atomic::write_file_atomically;
use crate::baseline::BaselineStore;
use crate::compare::{HistoricalComparison, MetricComparison, MetricKey};
use crate::error::SiteError;
use crate::framework::BenchmarkingFramework;
use crate::history::{MetricHistory, read_histories, segment_all};
use crate::plot::{Figure, HistoryPlot, ReportPlots, history_svg};
use crate::report::format_value;
use crate::schema::{Run, short_commit};
use crate::stats::{ChangePointConfig, Verdict};
use crate::store::{RunSummary, scan_history};
use crate::suite::TargetStatus;

/// How many of the newest runs get a page by default.
pub const DEFAULT_MAX_RUNS: usize = 50;

/// Most base-vs-head distribution plots on one run page.
const MAX_DISTRIBUTIONS: usize = 60;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// The site's folder.
    pub dir: PathBuf,
    /// Its index page.
    pub index: PathBuf,
    /// The page of each run written, newest first: `(run id, page)`.
    pub runs: Vec<(String, PathBuf)>,
    /// Scenario pages written.
    pub scenarios: usize,
}

impl Site {
    /// The page of `run_id`, when the site has one.
    pub fn run_page(&self, run_id: &str) -> Option<&Path> {
        self.runs
            .iter()
            .find(|(id, _)| id == run_id)
            .map(|(_, p)| p.as_path())
    }
}

/// Writes the report of the newest `max_runs` runs of `framework`'s history (and of
/// `must_include`, when it is older) into `dir`, replacing what was there once complete.
pub fn write_site(
    framework: &BenchmarkingFramework,
    dir: &Path,
    max_runs: usize,
    must_include: Option<&str>,
) -> Result<Site, SiteError> {
    let db = framework.historical_data();
    let listing = db.list()?;
    let mut summaries: Vec<&RunSummary> = listing.runs.iter().rev().collect();
    let total = summaries.len();
    let keep = |s: &&RunSummary| must_include.is_some_and(|id| s.id == id || s.id.starts_with(id));
    let mut shown: Vec<&RunSummary> = summaries.drain(..max_runs.min(total)).collect();
    shown.extend(summaries.into_iter().filter(keep));
    if let Some(id) = must_include
        && !shown.iter().any(|s| s.id == id || s.id.starts_with(id))
    {
        return Err(SiteError::UnknownRun(id.to_owned()));
    }

    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_error(parent))?;
    let name = dir
        .file_name()
        .map_or_else(|| "site".into(), |n| n.to_string_lossy().into_owned());
    let staging = parent.join(format!(".{name}.new-{:08x}", rand::random::<u32>()));
    let result = render_all(framework, &staging, &shown, total - shown.len().min(total));
    let pages = match result {
        Ok(pages) => pages,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    swap_in(&staging, dir)?;
    Ok(Site {
        dir: dir.to_owned(),
        index: dir.join("index.html"),
        runs: pages
            .runs
            .into_iter()
            .map(|id| {
                let page = dir.join("runs").join(format!("{id}.html"));
                (id, page)
            })
            .collect(),
        scenarios: pages.scenarios,
    })
}

/// What `render_all` wrote, relative to the site folder.
struct Pages {
    runs: Vec<String>,
    scenarios: usize,
}

fn render_all(
    framework: &BenchmarkingFramework,
    out: &Path,
    shown: &[&RunSummary],
    older: usize,
) -> Result<Pages, SiteError> {
    let env = environment()?;
    let db = framework.historical_data();
    let baselines = BaselineStore::new(framework.config().workspace_root.join("baselines"));
    for sub in ["runs", "scenarios"] {
        let d = out.join(sub);
        fs::create_dir_all(&d).map_err(io_error(&d))?;
    }

    let mut index_rows = Vec::with_capacity(shown.len());
    let mut runs = Vec::with_capacity(shown.len());
    for summary in shown {
        let run = db.load(&summary.id)?;
        let comparison = framework.compare_runs_blocking(&run, None)?;
        let count = |v: Verdict| comparison.entries.iter().filter(|e| e.verdict == v).count();
        index_rows.push(IndexRow {
            id: run.id.clone(),
            href: format!("runs/{}.html", run.id),
            timestamp: run.timestamp_rfc3339(),
            suite: run.suite.clone(),
            fingerprint: run.runner.fingerprint.clone(),
            runner_desc: run.runner.describe(),
            commit: short(run.git.commit.as_deref()),
            branch: run.git.branch.clone().unwrap_or_default(),
            results: run.results.len(),
            regressions: count(Verdict::Regression),
            improvements: count(Verdict::Improvement),
            failures: run.failures.len(),
            skipped: run.skipped.len(),
        });
        let page = run_page(framework, &run, &comparison)?;
        let html = env
            .get_template("run.html")
            .and_then(|t| {
                t.render(
                    context! { root => "../", version => VERSION, ..Value::from_serialize(&page) },
                )
            })
            .map_err(template_error("run.html"))?;
        write(&out.join("runs").join(format!("{}.html", run.id)), &html)?;
        runs.push(run.id.clone());
    }
    let html = env
        .get_template("index.html")
        .and_then(|t| {
            t.render(
                context! { root => "", version => VERSION, runs => index_rows, older => older },
            )
        })
        .map_err(template_error("index.html"))?;
    write(&out.join("index.html"), &html)?;

    // One page per scenario of the runs shown, over the whole history.
    let histories = match scan_history(db)? {
        Some(lf) => read_histories(lf, None).map_err(|e| SiteError::History(e.to_string()))?,
        None => Vec::new(),
    };
    let shown_runs: Vec<&str> = runs.iter().map(String::as_str).collect();
    let mut by_scenario: BTreeMap<String, Vec<MetricHistory>> = BTreeMap::new();
    for h in histories {
        if h.runs.iter().any(|r| shown_runs.contains(&r.id.as_str())) {
            by_scenario
                .entry(h.key.scenario.clone())
                .or_default()
                .push(h);
        }
    }
    let mut main_baselines: HashMap<String, Option<Run>> = HashMap::new();
    for (scenario, series) in &by_scenario {
        let page = scenario_page(scenario, series, &baselines, &mut main_baselines)?;
        let html = env
            .get_template("scenario.html")
            .and_then(|t| {
                t.render(
                    context! { root => "../", version => VERSION, ..Value::from_serialize(&page) },
                )
            })
            .map_err(template_error("scenario.html"))?;
        write(&out.join("scenarios").join(scenario_file(scenario)), &html)?;
    }
    Ok(Pages {
        runs,
        scenarios: by_scenario.len(),
    })
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn environment() -> Result<Environment<'static>, SiteError> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("index.html", include_str!("../templates/index.html")),
        ("run.html", include_str!("../templates/run.html")),
        ("scenario.html", include_str!("../templates/scenario.html")),
    ] {
        env.add_template(name, source)
            .map_err(template_error(name))?;
    }
    Ok(env)
}

#[derive(Debug, Serialize)]
struct IndexRow {
    id: String,
    href: String,
    timestamp: String,
    suite: String,
    fingerprint: String,
    runner_desc: String,
    commit: String,
    branch: String,
    results: usize,
    regressions: usize,
    improvements: usize,
    failures: usize,
    skipped: usize,
}

#[derive(Debug, Serialize)]
struct RunPage {
    run: RunHead,
    counts: BTreeMap<&'static str, usize>,
    base_id: Option<String>,
    base_href: Option<String>,
    verdicts: Vec<VerdictRow>,
    summary_svg: Option<String>,
    rows: Vec<ResultRow>,
    distributions: Vec<Figure>,
    change_points: Vec<ChangeRow>,
    targets: Vec<TargetRow>,
    failures: Vec<String>,
    skipped: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RunHead {
    id: String,
    suite: String,
    timestamp: String,
    fingerprint: String,
    runner_desc: String,
    software_adapter: bool,
    commit: String,
    branch: String,
}

#[derive(Debug, Serialize)]
struct VerdictRow {
    verdict: &'static str,
    scenario: String,
    scenario_href: String,
    subject: String,
    metric: String,
    base: String,
    head: String,
    change: String,
    p_adjusted: String,
    threshold: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct ResultRow {
    scenario: String,
    scenario_href: String,
    subject: String,
    metric: String,
    value: String,
    interval: String,
    change: String,
    verdict: &'static str,
    ratio: String,
    targets: String,
    target_class: &'static str,
}

#[derive(Debug, Serialize)]
struct ChangeRow {
    scenario: String,
    scenario_href: String,
    subject: String,
    metric: String,
    run_id: String,
    href: String,
    commit: String,
    before: String,
    after: String,
    step: String,
}

#[derive(Debug, Serialize)]
struct TargetRow {
    scenario: String,
    requirement: String,
    observed: String,
    status: String,
    class: &'static str,
    reason: String,
}

#[derive(Debug, Serialize)]
struct ScenarioPage {
    id: String,
    series: Vec<SeriesView>,
}

#[derive(Debug, Serialize)]
struct SeriesView {
    title: String,
    fingerprint: String,
    n: usize,
    svg: String,
    baseline: Option<String>,
    changes: Vec<ChangeRow>,
}

fn run_page(
    framework: &BenchmarkingFramework,
    run: &Run,
    comparison: &HistoricalComparison,
) -> Result<RunPage, SiteError> {
    let report = framework.performance_table(run)?;
    let entries = comparison.by_severity();
    let mut counts = BTreeMap::new();
    for v in [
        Verdict::Regression,
        Verdict::Improvement,
        Verdict::Unchanged,
        Verdict::Noisy,
        Verdict::Skipped,
    ] {
        counts.insert(
            v.as_str(),
            entries.iter().filter(|e| e.verdict == v).count(),
        );
    }
    let verdicts = entries
        .iter()
        .filter(|e| matches!(e.verdict, Verdict::Regression | Verdict::Improvement))
        .map(|e| VerdictRow {
            verdict: e.verdict.as_str(),
            scenario: e.key.scenario.clone(),
            scenario_href: format!("../scenarios/{}", scenario_file(&e.key.scenario)),
            subject: e.key.subject.clone(),
            metric: e.key.metric.clone(),
            base: e.value_text(e.baseline.as_ref()),
            head: e.value_text(e.current.as_ref()),
            change: e.change_text(),
            p_adjusted: e.p_adjusted_text(),
            threshold: e.threshold_text(),
            reason: e.evidence.reason.clone(),
        })
        .collect();
    let plots = ReportPlots::of(comparison, MAX_DISTRIBUTIONS)?;
    let by_key: HashMap<MetricKey, &MetricComparison> =
        entries.iter().map(|e| (e.key.clone(), *e)).collect();
    let rows = report
        .rows
        .iter()
        .map(|r| {
            let key = MetricKey {
                scenario: r.scenario.clone(),
                subject: r.subject.clone(),
                metric: r.metric.clone(),
            };
            let entry = by_key.get(&key);
            let measurement = run.measurement(&r.scenario, &r.subject, &r.metric);
            let interval = match measurement.map(|m| (m.lower, m.upper)) {
                Some((Some(lo), Some(hi))) => {
                    format!(
                        "{} – {}",
                        format_value(lo, &r.unit),
                        format_value(hi, &r.unit)
                    )
                }
                _ => "-".into(),
            };
            ResultRow {
                scenario: r.scenario.clone(),
                scenario_href: format!("../scenarios/{}", scenario_file(&r.scenario)),
                subject: r.subject.clone(),
                metric: r.metric.clone(),
                value: format_value(r.value, &r.unit),
                interval,
                change: entry.map_or_else(|| "-".into(), |e| e.change_text()),
                verdict: entry.map_or("skipped", |e| e.verdict.as_str()),
                ratio: r.ratio_text(),
                targets: r.targets_text(),
                target_class: target_class(
                    report
                        .targets
                        .iter()
                        .filter(|t| {
                            t.scenario.as_deref() == Some(r.scenario.as_str())
                                && t.subject == r.subject
                                && t.metric == r.metric
                        })
                        .map(|t| &t.status),
                ),
            }
        })
        .collect();
    let change_points = comparison
        .change_points
        .iter()
        .map(|c| {
            let unit = by_key.get(&c.key).map_or("", |e| e.unit());
            change_row(&c.key, &c.change, unit)
        })
        .collect();
    let targets = report
        .targets
        .iter()
        .map(|t| TargetRow {
            scenario: t.scenario.clone().unwrap_or_else(|| t.pattern.clone()),
            requirement: t.requirement.clone(),
            observed: t.observed.map_or_else(|| "-".into(), |x| format!("{x:.3}")),
            status: t.verdict().to_owned(),
            class: target_class(std::iter::once(&t.status)),
            reason: t.reason.clone().unwrap_or_default(),
        })
        .collect();
    Ok(RunPage {
        run: RunHead {
            id: run.id.clone(),
            suite: run.suite.clone(),
            timestamp: run.timestamp_rfc3339(),
            fingerprint: run.runner.fingerprint.clone(),
            runner_desc: run.runner.describe(),
            software_adapter: run.runner.gpu.as_ref().is_some_and(|g| g.is_software()),
            commit: run.git.commit.clone().unwrap_or_else(|| "-".into()),
            branch: run.git.branch.clone().unwrap_or_else(|| "-".into()),
        },
        counts,
        base_id: comparison.baseline_run_id.clone(),
        base_href: comparison
            .baseline_run_id
            .as_ref()
            .map(|id| format!("{id}.html")),
        verdicts,
        summary_svg: plots.summary,
        rows,
        distributions: plots.distributions,
        change_points,
        targets,
        failures: run
            .failures
            .iter()
            .map(|f| {
                format!(
                    "{}: {}",
                    f.scenario.as_deref().unwrap_or("(engine)"),
                    f.reason
                )
            })
            .collect(),
        skipped: run
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.scenario, s.reason))
            .collect(),
    })
}

fn scenario_page(
    scenario: &str,
    series: &[MetricHistory],
    baselines: &BaselineStore,
    main_baselines: &mut HashMap<String, Option<Run>>,
) -> Result<ScenarioPage, SiteError> {
    let segmented = segment_all(series, &ChangePointConfig::default())
        .map_err(|e| SiteError::History(e.to_string()))?;
    let mut views = Vec::with_capacity(series.len());
    for (h, (segmentation, located)) in series.iter().zip(segmented) {
        let in_baseline = main_baselines
            .entry(h.fingerprint.clone())
            .or_insert_with(|| baselines.load(&h.fingerprint, "main").ok())
            .as_ref()
            .and_then(|r| r.measurement(&h.key.scenario, &h.key.subject, &h.key.metric));
        let baseline = in_baseline.map(|m| m.value);
        let unit =
            in_baseline.map_or_else(|| unit_of(&h.key.metric).to_owned(), |m| m.unit.clone());
        let values: Vec<f64> = h.values.iter().copied().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            continue;
        }
        let change_points: Vec<usize> =
            segmentation.change_points.iter().map(|c| c.index).collect();
        let segments: Vec<(usize, usize, f64)> = segmentation
            .segments
            .iter()
            .map(|s| (s.start, s.end, s.mean))
            .collect();
        let title = format!("{} {}", h.key.subject, h.key.metric);
        let svg = history_svg(&HistoryPlot {
            title: &title,
            unit: &unit,
            values: &values,
            change_points: &change_points,
            segments: &segments,
            baseline,
        })?;
        views.push(SeriesView {
            title,
            fingerprint: h.fingerprint.clone(),
            n: values.len(),
            svg,
            baseline: baseline.map(|b| format_value(b, &unit)),
            changes: located
                .iter()
                .map(|c| change_row(&h.key, c, &unit))
                .collect(),
        });
    }
    Ok(ScenarioPage {
        id: scenario.to_owned(),
        series: views,
    })
}

fn change_row(key: &MetricKey, c: &crate::history::LocatedChange, unit: &str) -> ChangeRow {
    let run_id = c.run_id.clone().unwrap_or_else(|| "?".into());
    ChangeRow {
        scenario: key.scenario.clone(),
        scenario_href: format!("../scenarios/{}", scenario_file(&key.scenario)),
        subject: key.subject.clone(),
        metric: key.metric.clone(),
        href: format!("../runs/{run_id}.html"),
        run_id,
        commit: short(c.commit.as_deref()),
        before: format_value(c.change.before_mean, unit),
        after: format_value(c.change.after_mean, unit),
        step: c
            .change
            .relative_change
            .map_or_else(|| "-".into(), |r| format!("{:+.2}%", r * 100.0)),
    }
}

/// The unit perflab's engines give `metric`, for series whose runs are all gone.
fn unit_of(metric: &str) -> &'static str {
    crate::schema::MetricSpec::known(metric).map_or("", |s| s.unit)
}

/// The CSS class of the targets bounding one row: `missed` when any is missed, else `met`
/// when any is met.
fn target_class<'a>(statuses: impl Iterator<Item = &'a TargetStatus>) -> &'static str {
    statuses.fold("", |class, status| match (class, status) {
        ("missed", _) | (_, TargetStatus::Missed) => "missed",
        (_, TargetStatus::Met) => "met",
        (class, _) => class,
    })
}
/// The file of a scenario's page: its id with `/` spelled `--` (ids have no other
/// character that a file name cannot hold).
pub fn scenario_file(id: &str) -> String {
    format!("{}.html", id.replace('/', "--"))
}

fn short(commit: Option<&str>) -> String {
    commit.map_or("-", short_commit).to_owned()
}

fn write(path: &Path, html: &str) -> Result<(), SiteError> {
    write_file_atomically(path, html.as_bytes()).map_err(io_error(path))
}

/// Replaces `dir` with the complete `staging` folder: the old site is moved aside first and
/// removed only once the new one is in place.
fn swap_in(staging: &Path, dir: &Path) -> Result<(), SiteError> {
    let old = staging.with_extension("old");
    let had_old = dir.exists();
    if had_old {
        fs::rename(dir, &old).map_err(io_error(dir))?;
    }
    if let Err(e) = fs::rename(staging, dir) {
        if had_old {
            let _ = fs::rename(&old, dir);
        }
        let _ = fs::remove_dir_all(staging);
        return Err(io_error(dir)(e));
    }
    if had_old {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SiteError {
    let path = path.to_owned();
    move |source| SiteError::Io { path, source }
}

fn template_error(name: &'static str) -> impl Fn(minijinja::Error) -> SiteError {
    move |e| SiteError::Template {
        template: name,
        message: format!("{e:#}"),
    }
}
