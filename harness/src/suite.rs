//! Suite files (`scenarios/suites/<suite>.toml`): parsing, validation, and target evaluation.
//!
//! Parsing denies unknown fields and reports every problem as `file:line:column` (from the
//! TOML span). Validation against the scenario catalog reports an unknown scenario id at the
//! position of the id. [`PerformanceTargets::evaluate`] decides, for a run, which targets are
//! met: absolute targets bound a subject's value; relative targets bound the ratio
//! `value(subject) / value(anchor)`, where the anchor is named or is the best anchor of the
//! scenario (smallest value for lower-is-better metrics, largest for higher-is-better).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::Catalog;
use crate::error::SuiteError;
use crate::schema::{Direction, PERFLAB_SUBJECT, Run, is_subject};

/// A suite: the scenarios to run together, what they need, and the targets they must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkSuite {
    /// Suite name (equals the file stem).
    pub name: String,
    /// One line saying what the suite covers.
    pub description: String,
    /// The scenarios, in file order.
    pub tests: Vec<BenchmarkTest>,
    /// What the suite's scenarios need from the machine.
    pub environment_requirements: EnvironmentRequirements,
    /// Absolute and relative targets.
    pub performance_targets: PerformanceTargets,
    /// The file the suite was read from.
    pub path: PathBuf,
}

/// One scenario of a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkTest {
    /// Scenario id.
    pub id: String,
    /// Whether `--quick` runs include it.
    pub quick: bool,
    /// Where the id is written in the suite file.
    pub location: Location,
}

/// `[requirements]` of a suite file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRequirements {
    /// Needs a CPU (default true).
    #[serde(default = "yes")]
    pub cpu: bool,
    /// Needs a GPU adapter.
    #[serde(default)]
    pub gpu: bool,
    /// Needs a Redis server.
    #[serde(default)]
    pub redis: bool,
}

/// The targets of a suite (`[[targets]]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerformanceTargets {
    /// In file order.
    pub targets: Vec<PerformanceTarget>,
}

/// One `[[targets]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceTarget {
    /// Which scenarios it applies to.
    pub scenario: ScenarioGlob,
    /// Whose value is bounded (default `perflab`).
    pub subject: String,
    /// Which metric.
    pub metric: String,
    /// `None`: the bounds apply to the value; otherwise to the ratio to this anchor.
    pub ratio_vs: Option<AnchorRef>,
    /// Upper bound (inclusive).
    pub max: Option<f64>,
    /// Lower bound (inclusive).
    pub min: Option<f64>,
    /// Where the target is written in the suite file.
    pub location: Location,
}

/// The anchor a relative target compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorRef {
    /// The best anchor of each scenario (direction-aware).
    Best,
    /// A named anchor subject.
    Named(String),
}

/// A glob over scenario ids: `*` matches within a segment, `**` across segments, `?` one
/// character other than `/`.
#[derive(Debug, Clone)]
pub struct ScenarioGlob {
    pattern: String,
    regex: Regex,
}

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

/// Whether one target is met for one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetOutcome {
    /// Index of the target in the suite file.
    pub target: usize,
    /// The target's scenario pattern.
    pub pattern: String,
    /// The scenario evaluated (`None` when the pattern matched nothing in the run).
    pub scenario: Option<String>,
    /// The subject whose value is bounded.
    pub subject: String,
    /// The metric.
    pub metric: String,
    /// The anchor compared with (resolved when `best_anchor`).
    pub anchor: Option<String>,
    /// The value or ratio compared with the bounds.
    pub observed: Option<f64>,
    /// The requirement in words, e.g. `perflab/best anchor <= 1`.
    pub requirement: String,
    /// The verdict.
    pub status: TargetStatus,
    /// Why there is no verdict (skipped, no data).
    pub reason: Option<String>,
}

/// The verdict of a target for one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// Within bounds.
    Met,
    /// Out of bounds.
    Missed,
    /// The scenario was skipped (missing requirement).
    Skipped,
    /// The scenario ran but the value or anchor is missing (e.g. its engine failed).
    NoData,
    /// No scenario of the run matches the target's pattern (e.g. filtered out).
    NotRun,
}

impl BenchmarkSuite {
    /// Reads and parses the suite file at `path`.
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SuiteError::NotFound {
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: path.to_owned(),
                }
            } else {
                SuiteError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the suite file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SuiteError> {
        let err = |span: Option<Range<usize>>, message: String| {
            let loc = span.map_or(Location { line: 1, column: 1 }, |s| {
                Location::of_offset(text, s.start)
            });
            SuiteError::Parse {
                path: path.to_owned(),
                line: loc.line,
                column: loc.column,
                message,
            }
        };
        let raw: RawSuite =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().trim().to_owned()))?;

        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if stem.as_deref() != Some(raw.name.get_ref().as_str()) {
            return Err(err(
                Some(raw.name.span()),
                format!(
                    "suite name `{}` does not match the file name `{}`",
                    raw.name.get_ref(),
                    stem.unwrap_or_default()
                ),
            ));
        }

        let mut seen = HashSet::new();
        let mut tests = Vec::with_capacity(raw.tests.len());
        for t in raw.tests {
            let span = t.id.span();
            let id = t.id.into_inner();
            if !seen.insert(id.clone()) {
                return Err(err(Some(span), format!("scenario `{id}` is listed twice")));
            }
            tests.push(BenchmarkTest {
                id,
                quick: t.quick,
                location: Location::of_offset(text, span.start),
            });
        }
        if tests.is_empty() {
            return Err(err(None, "the suite has no [[tests]]".to_owned()));
        }

        let mut targets = Vec::with_capacity(raw.targets.len());
        for t in raw.targets {
            let span = t.span();
            let t = t.into_inner();
            let pattern_span = t.scenario.span();
            let scenario = ScenarioGlob::new(t.scenario.get_ref())
                .map_err(|m| err(Some(pattern_span.clone()), m))?;
            let subject = t.subject.unwrap_or_else(|| PERFLAB_SUBJECT.to_owned());
            if !is_subject(&subject) {
                return Err(err(
                    Some(span),
                    format!("subject `{subject}` is not a subject name ([a-z0-9_]+)"),
                ));
            }
            let ratio_vs = match t.ratio_vs.as_deref() {
                None => None,
                Some("best_anchor") => Some(AnchorRef::Best),
                Some(name) if is_subject(name) && name != subject => {
                    Some(AnchorRef::Named(name.to_owned()))
                }
                Some(name) => {
                    return Err(err(
                        Some(span),
                        format!(
                            "ratio_vs `{name}` must be `best_anchor` or an anchor other than `{subject}`"
                        ),
                    ));
                }
            };
            match (t.min, t.max) {
                (None, None) => {
                    return Err(err(
                        Some(span),
                        "a target needs `max`, `min` or both".into(),
                    ));
                }
                (Some(lo), Some(hi)) if lo > hi => {
                    return Err(err(
                        Some(span),
                        format!("min {lo} is greater than max {hi}"),
                    ));
                }
                (lo, hi) if lo.into_iter().chain(hi).any(|b| !b.is_finite()) => {
                    return Err(err(Some(span), "bounds must be finite numbers".into()));
                }
                _ => {}
            }
            if t.metric.is_empty() {
                return Err(err(Some(span), "metric is empty".into()));
            }
            targets.push(PerformanceTarget {
                scenario,
                subject,
                metric: t.metric,
                ratio_vs,
                max: t.max,
                min: t.min,
                location: Location::of_offset(text, pattern_span.start),
            });
        }

        Ok(Self {
            name: raw.name.into_inner(),
            description: raw.description,
            tests,
            environment_requirements: raw.requirements,
            performance_targets: PerformanceTargets { targets },
            path: path.to_owned(),
        })
    }

    /// The suite file `<dir>/<name>.toml`.
    pub fn path_in(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.toml"))
    }

    /// Checks every id against `catalog`, and that each target matches a scenario of the suite
    /// whose catalog entry measures the target's subject and named anchor.
    pub fn validate(&self, catalog: &Catalog) -> Result<(), SuiteError> {
        let at = |loc: Location, message: String| SuiteError::Parse {
            path: self.path.clone(),
            line: loc.line,
            column: loc.column,
            message,
        };
        for t in &self.tests {
            let Some(entry) = catalog.get(&t.id) else {
                return Err(SuiteError::UnknownScenario {
                    path: self.path.clone(),
                    line: t.location.line,
                    column: t.location.column,
                    id: t.id.clone(),
                });
            };
            for req in &entry.requires {
                let declared = match req {
                    crate::catalog::Requirement::Cpu => self.environment_requirements.cpu,
                    crate::catalog::Requirement::Gpu => self.environment_requirements.gpu,
                    crate::catalog::Requirement::Redis => self.environment_requirements.redis,
                };
                if !declared {
                    tracing::warn!(
                        suite = %self.name,
                        scenario = %t.id,
                        requirement = %req,
                        "scenario requires what the suite's [requirements] do not declare"
                    );
                }
            }
        }
        for target in &self.performance_targets.targets {
            let matched: Vec<_> = self
                .tests
                .iter()
                .filter(|t| target.scenario.matches(&t.id))
                .filter_map(|t| catalog.get(&t.id))
                .collect();
            if matched.is_empty() {
                return Err(at(
                    target.location,
                    format!(
                        "target scenario `{}` matches no scenario of the suite",
                        target.scenario
                    ),
                ));
            }
            if !matched.iter().any(|e| e.subjects.contains(&target.subject)) {
                return Err(at(
                    target.location,
                    format!(
                        "no scenario matching `{}` measures subject `{}`",
                        target.scenario, target.subject
                    ),
                ));
            }
            if let Some(AnchorRef::Named(anchor)) = &target.ratio_vs
                && !matched.iter().any(|e| e.subjects.contains(anchor))
            {
                return Err(at(
                    target.location,
                    format!(
                        "no scenario matching `{}` measures anchor `{anchor}`",
                        target.scenario
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The tests a run executes: those whose id matches `filter`, without `quick = false`
    /// ones when `quick`.
    pub fn selected_tests(&self, filter: Option<&Regex>, quick: bool) -> Vec<&BenchmarkTest> {
        self.tests
            .iter()
            .filter(|t| filter.is_none_or(|re| re.is_match(&t.id)))
            .filter(|t| !quick || t.quick)
            .collect()
    }
}

impl PerformanceTargets {
    /// Evaluates every target against `run`: one outcome per target and matching scenario,
    /// or one `not_run` outcome for a target no scenario of the run matches.
    pub fn evaluate(&self, run: &Run) -> Vec<TargetOutcome> {
        let mut scenarios: Vec<&str> = run
            .results
            .iter()
            .map(|m| m.scenario.as_str())
            .chain(run.skipped.iter().map(|s| s.scenario.as_str()))
            .chain(run.failures.iter().filter_map(|f| f.scenario.as_deref()))
            .collect();
        scenarios.sort_unstable();
        scenarios.dedup();

        let mut out = Vec::new();
        for (index, target) in self.targets.iter().enumerate() {
            let matching: Vec<&str> = scenarios
                .iter()
                .copied()
                .filter(|s| target.scenario.matches(s))
                .collect();
            if matching.is_empty() {
                out.push(target.outcome(index, None, TargetStatus::NotRun, None, None, None));
                continue;
            }
            for scenario in matching {
                out.push(target.evaluate_one(index, scenario, run));
            }
        }
        out
    }
}

impl PerformanceTarget {
    /// The requirement in words.
    pub fn requirement(&self) -> String {
        let bounds = match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("in [{lo}, {hi}]"),
            (Some(lo), None) => format!(">= {lo}"),
            (None, Some(hi)) => format!("<= {hi}"),
            (None, None) => "unbounded".to_owned(),
        };
        match &self.ratio_vs {
            None => format!("{} {} {bounds}", self.subject, self.metric),
            Some(AnchorRef::Best) => {
                format!(
                    "{} {}: {}/best anchor {bounds}",
                    self.subject, self.metric, self.subject
                )
            }
            Some(AnchorRef::Named(a)) => {
                format!(
                    "{} {}: {}/{a} {bounds}",
                    self.subject, self.metric, self.subject
                )
            }
        }
    }

    fn within(&self, x: f64) -> bool {
        self.max.is_none_or(|hi| x <= hi) && self.min.is_none_or(|lo| x >= lo)
    }

    fn outcome(
        &self,
        index: usize,
        scenario: Option<&str>,
        status: TargetStatus,
        anchor: Option<String>,
        observed: Option<f64>,
        reason: Option<String>,
    ) -> TargetOutcome {
        TargetOutcome {
            target: index,
            pattern: self.scenario.to_string(),
            scenario: scenario.map(str::to_owned),
            subject: self.subject.clone(),
            metric: self.metric.clone(),
            anchor,
            observed,
            requirement: self.requirement(),
            status,
            reason,
        }
    }

    fn evaluate_one(&self, index: usize, scenario: &str, run: &Run) -> TargetOutcome {
        let no_data = |reason: String| {
            self.outcome(
                index,
                Some(scenario),
                TargetStatus::NoData,
                None,
                None,
                Some(reason),
            )
        };
        if let Some(s) = run.skipped.iter().find(|s| s.scenario == scenario) {
            return self.outcome(
                index,
                Some(scenario),
                TargetStatus::Skipped,
                None,
                None,
                Some(s.reason.clone()),
            );
        }
        let Some(mine) = run.measurement(scenario, &self.subject, &self.metric) else {
            let why = run
                .failures
                .iter()
                .find(|f| f.scenario.as_deref() == Some(scenario))
                .map_or_else(
                    || format!("no {} measurement of {}", self.metric, self.subject),
                    |f| format!("failed: {}", summary_line(&f.reason)),
                );
            return no_data(why);
        };
        let (observed, anchor) = match &self.ratio_vs {
            None => (mine.value, None),
            Some(anchor_ref) => {
                let anchor = match anchor_ref {
                    AnchorRef::Named(name) => run.measurement(scenario, name, &self.metric),
                    AnchorRef::Best => best_anchor(run, scenario, &self.subject, &self.metric),
                };
                let Some(anchor) = anchor else {
                    return no_data(match anchor_ref {
                        AnchorRef::Named(name) => {
                            format!("no {} measurement of anchor {name}", self.metric)
                        }
                        AnchorRef::Best => format!("no anchor measured {}", self.metric),
                    });
                };
                if anchor.value == 0.0 {
                    return no_data(format!("anchor {} measured 0", anchor.subject));
                }
                (mine.value / anchor.value, Some(anchor.subject.clone()))
            }
        };
        let status = if !observed.is_finite() {
            return no_data(format!("{observed} is not a finite number"));
        } else if self.within(observed) {
            TargetStatus::Met
        } else {
            TargetStatus::Missed
        };
        self.outcome(index, Some(scenario), status, anchor, Some(observed), None)
    }
}

/// The best anchor of `scenario` for `metric`: any subject other than `perflab` and `subject`,
/// best by the metric's direction.
pub fn best_anchor<'a>(
    run: &'a Run,
    scenario: &str,
    subject: &str,
    metric: &str,
) -> Option<&'a crate::schema::Measurement> {
    run.results
        .iter()
        .filter(|m| {
            m.scenario == scenario
                && m.metric == metric
                && m.subject != subject
                && m.subject != PERFLAB_SUBJECT
        })
        .fold(
            None,
            |best: Option<&crate::schema::Measurement>, m| match best {
                Some(b) if !better(m.direction, m.value, b.value) => Some(b),
                _ => Some(m),
            },
        )
}

/// The first line of a (possibly long, multi-line) failure reason, shortened.
fn summary_line(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or_default();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

fn better(direction: Direction, a: f64, b: f64) -> bool {
    direction.is_better(a, b)
}

impl TargetOutcome {
    /// A short verdict for tables: `met`, `MISSED`, `skipped`, `no data`, `not run`.
    pub fn verdict(&self) -> &'static str {
        match self.status {
            TargetStatus::Met => "met",
            TargetStatus::Missed => "MISSED",
            TargetStatus::Skipped => "skipped",
            TargetStatus::NoData => "no data",
            TargetStatus::NotRun => "not run",
        }
    }
}

impl ScenarioGlob {
    /// Compiles `pattern`; it may use the scenario-id characters, `*` and `?`.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("scenario pattern is empty".into());
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '/' | '.' | '-' | '*' | '?'))
        {
            return Err(format!(
                "scenario pattern `{pattern}` has `{c}` (allowed: a-z 0-9 _ / . - * ?)"
            ));
        }
        let mut re = String::from("^");
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    re.push_str(".*");
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| format!("scenario pattern `{pattern}`: {e}"))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// Whether `scenario` matches.
    pub fn matches(&self, scenario: &str) -> bool {
        self.regex.is_match(scenario)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl PartialEq for ScenarioGlob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl fmt::Display for ScenarioGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl Location {
    /// The line and column of byte `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn yes() -> bool {
    true
}

fn quick_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    requirements: EnvironmentRequirements,
    #[serde(default)]
    tests: Vec<RawTest>,
    #[serde(default)]
    targets: Vec<Spanned<RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    id: Spanned<String>,
    #[serde(default = "quick_default")]
    quick: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    scenario: Spanned<String>,
    subject: Option<String>,
    metric: String,
    ratio_vs: Option<String>,
    max: Option<f64>,
    min: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{RunnerFacts, RunnerInfo};
    use crate::schema::{GitInfo, Measurement, Skipped};

    const SUITE: &str = r#"name = "memory"
description = "Memory pool"

[requirements]
cpu = true

[[tests]]
id = "memory/pool_cycle/kib1"

[[tests]]
id = "memory/pool_cycle/kib256"
quick = false

[[targets]]
scenario = "memory/pool_cycle/*"
metric = "wall_time"
ratio_vs = "best_anchor"
max = 1.0

[[targets]]
scenario = "memory/**"
metric = "wall_time"
max = 50.0
"#;

    fn parse(text: &str) -> Result<BenchmarkSuite, SuiteError> {
        BenchmarkSuite::parse(Path::new("suites/memory.toml"), text)
    }

    fn m(scenario: &str, subject: &str, value: f64, direction: Direction) -> Measurement {
        Measurement {
            scenario: scenario.into(),
            subject: subject.into(),
            metric: "wall_time".into(),
            unit: "ns".into(),
            direction,
            value,
            lower: None,
            upper: None,
            samples: vec![value],
        }
    }

    fn run() -> Run {
        let runner = RunnerInfo::from_facts(RunnerFacts {
            cpu_model: "cpu".into(),
            cpu_cores: 1,
            memory_gib: 1,
            os: "os".into(),
            kernel: "k".into(),
            rustc: "rustc 1".into(),
            target: "t".into(),
            gpu: None,
        });
        Run::new("memory", runner, GitInfo::default())
    }

    #[test]
    fn parses_a_suite() {
        let s = parse(SUITE).unwrap();
        assert_eq!(s.name, "memory");
        assert_eq!(s.tests.len(), 2);
        assert!(!s.tests[1].quick);
        assert_eq!(s.tests[0].location, Location { line: 8, column: 6 });
        assert_eq!(
            s.performance_targets.targets[0].ratio_vs,
            Some(AnchorRef::Best)
        );
        assert_eq!(s.performance_targets.targets[1].subject, "perflab");
        assert!(s.environment_requirements.cpu && !s.environment_requirements.gpu);
        assert_eq!(s.selected_tests(None, true).len(), 1);
        let re = Regex::new("kib256").unwrap();
        assert_eq!(
            s.selected_tests(Some(&re), false)[0].id,
            "memory/pool_cycle/kib256"
        );
    }

    #[test]
    fn unknown_fields_are_errors_with_positions() {
        let text = SUITE.replace("quick = false", "quick = false\nspeed = 3");
        let e = parse(&text).unwrap_err();
        match &e {
            SuiteError::Parse {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((*line, *column), (13, 1), "{e}");
                assert!(message.contains("speed"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
        assert!(
            e.to_string().starts_with("suites/memory.toml:13:1: "),
            "{e}"
        );
    }

    #[test]
    fn type_errors_and_syntax_errors_have_positions() {
        let e = parse(&SUITE.replace("max = 1.0", "max = \"one\"")).unwrap_err();
        assert!(
            e.to_string().starts_with("suites/memory.toml:18:7: "),
            "{e}"
        );
        let e = parse("name = \"memory\"\n[[tests]\nid = 1").unwrap_err();
        assert!(e.to_string().starts_with("suites/memory.toml:2:"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_entry() {
        let e = parse(&SUITE.replace("name = \"memory\"", "name = \"cache\"")).unwrap_err();
        assert!(e.to_string().contains("1:8: suite name `cache`"), "{e}");
        let e = parse(&SUITE.replace("max = 50.0", "")).unwrap_err();
        assert!(e.to_string().contains("needs `max`, `min`"), "{e}");
        let e = parse(&SUITE.replace("memory/**", "memory/[ab]")).unwrap_err();
        assert!(e.to_string().contains("21:12: scenario pattern"), "{e}");
        let e = parse(&SUITE.replace("kib256", "kib1")).unwrap_err();
        assert!(
            e.to_string()
                .contains("11:6: scenario `memory/pool_cycle/kib1` is listed twice"),
            "{e}"
        );
    }

    #[test]
    fn globs() {
        let g = ScenarioGlob::new("memory/pool_cycle/*").unwrap();
        assert!(g.matches("memory/pool_cycle/kib1"));
        assert!(!g.matches("memory/pool_cycle/kib1/x"));
        assert!(!g.matches("memory/pool_cycle"));
        let g = ScenarioGlob::new("memory/**").unwrap();
        assert!(g.matches("memory/pool_cycle/kib1"));
        let g = ScenarioGlob::new("*/pool_cycle/kib?").unwrap();
        assert!(g.matches("memory/pool_cycle/kib1"));
        assert!(!g.matches("memory/pool_cycle/kib16"));
        let g = ScenarioGlob::new("a.b/c").unwrap();
        assert!(!g.matches("axb/c"));
    }

    #[test]
    fn evaluates_relative_and_absolute_targets() {
        let s = parse(SUITE).unwrap();
        let mut r = run();
        let kib1 = "memory/pool_cycle/kib1";
        r.results.push(m(kib1, "perflab", 40.0, Direction::Lower));
        r.results.push(m(kib1, "opool", 50.0, Direction::Lower));
        r.results.push(m(kib1, "vec", 30.0, Direction::Lower));
        r.skipped.push(Skipped {
            scenario: "memory/pool_cycle/kib256".into(),
            reason: "requires gpu".into(),
        });
        let out = s.performance_targets.evaluate(&r);
        assert_eq!(out.len(), 4, "{out:#?}");
        let rel = out
            .iter()
            .find(|o| o.target == 0 && o.scenario.as_deref() == Some(kib1))
            .unwrap();
        assert_eq!(rel.anchor.as_deref(), Some("vec"));
        assert_eq!(rel.observed, Some(40.0 / 30.0));
        assert_eq!(rel.status, TargetStatus::Missed);
        let abs = out
            .iter()
            .find(|o| o.target == 1 && o.scenario.as_deref() == Some(kib1))
            .unwrap();
        assert_eq!((abs.status, abs.observed), (TargetStatus::Met, Some(40.0)));
        assert!(
            out.iter()
                .filter(|o| o.scenario.as_deref() != Some(kib1))
                .all(|o| o.status == TargetStatus::Skipped)
        );
    }

    #[test]
    fn best_anchor_is_direction_aware() {
        let text = SUITE
            .replace(
                "metric = \"wall_time\"\nratio_vs",
                "metric = \"throughput\"\nratio_vs",
            )
            .replace("max = 1.0", "min = 0.9");
        let s = parse(&text).unwrap();
        let mut r = run();
        let kib1 = "memory/pool_cycle/kib1";
        for (subject, v) in [("perflab", 95.0), ("opool", 100.0), ("vec", 80.0)] {
            let mut x = m(kib1, subject, v, Direction::Higher);
            x.metric = "throughput".into();
            r.results.push(x);
        }
        let out = s.performance_targets.evaluate(&r);
        let rel = out.iter().find(|o| o.target == 0).unwrap();
        assert_eq!(rel.anchor.as_deref(), Some("opool"));
        assert_eq!(rel.status, TargetStatus::Met);
        // The absolute wall_time target finds no wall_time value: no data, never "met".
        let abs = out.iter().find(|o| o.target == 1).unwrap();
        assert_eq!(abs.status, TargetStatus::NoData);
    }

    #[test]
    fn a_target_matching_nothing_is_not_run() {
        let s = parse(SUITE).unwrap();
        let out = s.performance_targets.evaluate(&run());
        assert!(out.iter().all(|o| o.status == TargetStatus::NotRun));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn locations_count_characters() {
        let text = "é = 1\nab";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 2),
            Location { line: 1, column: 2 }
        );
        assert_eq!(
            Location::of_offset(text, 3),
            Location { line: 1, column: 3 }
        );
        assert_eq!(
            Location::of_offset(text, 8),
            Location { line: 2, column: 2 }
        );
    }
}
