//! The versioned result schema: a `Run` with its measurements, failures and skips.
//!
//! JSON is the interchange form (`perflab ... --json`, baselines); the history stores the
//! same data as Parquet (see `store.rs`). `schema_version` changes only when a field's
//! meaning changes; readers refuse versions newer than [`SCHEMA_VERSION`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fingerprint::RunnerInfo;

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The subject that is the system under test; every other subject is an anchor.
pub const PERFLAB_SUBJECT: &str = "perflab";

/// One benchmark run: what ran, where, and what came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Version of this schema the run was written with.
    pub schema_version: u32,
    /// Sortable id: UTC timestamp plus a short random suffix (see [`new_run_id`]).
    pub id: String,
    /// When the run started (UTC, millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The source revision that was measured.
    pub git: GitInfo,
    /// The machine that measured it.
    pub runner: RunnerInfo,
    /// The suite name (or the name given to an ingested run).
    pub suite: String,
    /// One entry per scenario, subject and metric.
    pub results: Vec<Measurement>,
    /// Engines or scenarios that failed; the run went on without them.
    pub failures: Vec<Failure>,
    /// Scenarios not run because a requirement was missing.
    pub skipped: Vec<Skipped>,
}

/// The source revision of a run; either part is absent outside a git checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitInfo {
    /// Full commit hash.
    pub commit: Option<String>,
    /// Branch name (`HEAD` when detached).
    pub branch: Option<String>,
}

/// Whether a smaller or a larger value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smaller is better (time, instructions, latency, errors).
    Lower,
    /// Larger is better (throughput, hit ratio).
    Higher,
}

/// The measurement engine that produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Wall time via criterion.
    Criterion,
    /// Instruction counts via gungraun (callgrind).
    Callgrind,
    /// Multi-metric load scenarios reported as BMF.
    Load,
}

/// One metric of one subject in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// Scenario id, `<subsystem>/<scenario>[/<param>]`.
    pub scenario: String,
    /// `perflab` or an anchor's name.
    pub subject: String,
    /// Metric name, e.g. `wall_time`, `instructions`, `latency_p99`.
    pub metric: String,
    /// Unit of `value`, `lower`, `upper` and `samples`.
    pub unit: String,
    /// Whether lower or higher is better.
    pub direction: Direction,
    /// Point estimate.
    pub value: f64,
    /// Lower bound of the estimate's interval, when the engine gives one.
    pub lower: Option<f64>,
    /// Upper bound of the estimate's interval, when the engine gives one.
    pub upper: Option<f64>,
    /// Raw samples (per-iteration values); `[value]` for one-shot engines.
    pub samples: Vec<f64>,
}

/// Something that failed during a run. At least one of `engine` and `scenario` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// The engine whose invocation failed.
    pub engine: Option<Engine>,
    /// The scenario that produced no result, when known.
    pub scenario: Option<String>,
    /// Why, in words (exit status, last lines of stderr, ingest error).
    pub reason: String,
}

/// A scenario that was not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// The scenario id.
    pub scenario: String,
    /// Why it was skipped (e.g. `requires redis: REDIS_URL unset and no redis-server on PATH`).
    pub reason: String,
}

/// Unit and direction of a known metric, per the interfaces of issue 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    /// The unit.
    pub unit: &'static str,
    /// Whether lower or higher is better.
    pub direction: Direction,
}

impl Run {
    /// A new, empty run of `suite` started now, with a fresh id.
    pub fn new(suite: impl Into<String>, runner: RunnerInfo, git: GitInfo) -> Self {
        let timestamp = now_millis();
        Self {
            schema_version: SCHEMA_VERSION,
            id: new_run_id(timestamp),
            timestamp,
            git,
            runner,
            suite: suite.into(),
            results: Vec::new(),
            failures: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// The measurement of `subject` for `metric` in `scenario`, if any.
    pub fn measurement(&self, scenario: &str, subject: &str, metric: &str) -> Option<&Measurement> {
        self.results
            .iter()
            .find(|m| m.scenario == scenario && m.subject == subject && m.metric == metric)
    }

    /// The run's timestamp as RFC 3339 text.
    pub fn timestamp_rfc3339(&self) -> String {
        format_timestamp(self.timestamp)
    }

    /// Checks the invariants a stored run must hold; returns the first violation in words.
    pub fn check(&self) -> Result<(), String> {
        if self.schema_version == 0 || self.schema_version > SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is not supported (this build reads 1..={SCHEMA_VERSION})",
                self.schema_version
            ));
        }
        if !is_run_id(&self.id) {
            return Err(format!("id `{}` is not a run id", self.id));
        }
        if self.suite.is_empty() {
            return Err("suite is empty".into());
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.results {
            if !is_scenario_id(&m.scenario) {
                return Err(format!("scenario `{}` is not a scenario id", m.scenario));
            }
            if !is_subject(&m.subject) {
                return Err(format!("subject `{}` is not a subject name", m.subject));
            }
            if m.metric.is_empty() {
                return Err(format!("{} {}: empty metric name", m.scenario, m.subject));
            }
            if !seen.insert((&m.scenario, &m.subject, &m.metric)) {
                return Err(format!(
                    "{} {} {}: measured twice",
                    m.scenario, m.subject, m.metric
                ));
            }
        }
        if let Some(f) = self
            .failures
            .iter()
            .find(|f| f.engine.is_none() && f.scenario.is_none())
        {
            return Err(format!(
                "failure `{}` names neither engine nor scenario",
                f.reason
            ));
        }
        Ok(())
    }
}

impl Direction {
    /// `lower` or `higher`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Higher => "higher",
        }
    }

    /// Whether `a` is better than `b` in this direction.
    pub fn is_better(self, a: f64, b: f64) -> bool {
        match self {
            Self::Lower => a < b,
            Self::Higher => a > b,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lower" => Ok(Self::Lower),
            "higher" => Ok(Self::Higher),
            other => Err(format!("`{other}` is neither `lower` nor `higher`")),
        }
    }
}

impl Engine {
    /// Every engine, in the order a run executes them.
    pub const ALL: [Engine; 3] = [Engine::Criterion, Engine::Callgrind, Engine::Load];

    /// `criterion`, `callgrind` or `load`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Criterion => "criterion",
            Self::Callgrind => "callgrind",
            Self::Load => "load",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "criterion" => Ok(Self::Criterion),
            "callgrind" => Ok(Self::Callgrind),
            "load" => Ok(Self::Load),
            other => Err(format!(
                "`{other}` is not an engine (criterion, callgrind, load)"
            )),
        }
    }
}

impl MetricSpec {
    /// Unit and direction of a metric perflab knows, or `None` for a foreign one.
    pub fn known(metric: &str) -> Option<Self> {
        let (unit, direction) = match metric {
            "wall_time"
            | "latency"
            | "latency_p50"
            | "latency_p99"
            | "latency_p999"
            | "queue_delay_p50_high"
            | "queue_delay_p99_high"
            | "queue_delay_p99_low"
            | "backend_p99_slowest"
            | "recovery_time"
            | "kernel_time"
            | "upload_time"
            | "download_time"
            | "verify_time"
            | "resolve_time"
            | "check_time"
            | "compile_time"
            | "commit_time" => ("ns", Direction::Lower),
            "stop_ticks" | "stop_ticks_mean" => ("epoch ticks", Direction::Lower),
            "instructions" => ("instructions", Direction::Lower),
            "estimated_cycles" => ("cycles", Direction::Lower),
            "throughput" => ("ops/s", Direction::Higher),
            "hit_ratio"
            | "hit_ratio_l1"
            | "hit_ratio_l2"
            | "hit_ratio_l3"
            | "precision"
            | "recall"
            | "f1"
            | "deadline_met_ratio"
            | "quality_weighted_success"
            | "output_cosine" => ("ratio", Direction::Higher),
            "retry_amplification" => ("calls/task", Direction::Lower),
            "output_relative_error" | "layer_relative_error" | "weight_relative_rmse" => {
                ("ratio", Direction::Lower)
            }
            "weight_rmse" => ("weight units", Direction::Lower),
            "bits_per_weight" => ("bits", Direction::Lower),
            "gflops" => ("GFLOP/s", Direction::Higher),
            "bandwidth" => ("bytes/s", Direction::Higher),
            "detection_delay" => ("points", Direction::Lower),
            // An endpoint's share of the traffic: informational, read as "more went there".
            m if m.starts_with("share_ep") => ("ratio", Direction::Higher),
            "errors" | "dropped" | "services_initialized" => ("count", Direction::Lower),
            "disk_bytes_written" | "memory_bytes" => ("bytes", Direction::Lower),
            _ => return None,
        };
        Some(Self { unit, direction })
    }
}

/// A sortable run id for a run started at `timestamp`: `YYYYMMDDTHHMMSS.mmmZ-xxxxxx`,
/// UTC, with six random hex digits so two runs in the same millisecond differ.
pub fn new_run_id(timestamp: OffsetDateTime) -> String {
    let t = timestamp.to_offset(time::UtcOffset::UTC);
    let suffix: u32 = rand::random::<u32>() & 0x00ff_ffff;
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{suffix:06x}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond(),
    )
}

/// Whether `s` has the form [`new_run_id`] produces.
pub fn is_run_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'.'
        && b[16..19].iter().all(u8::is_ascii_digit)
        && b[19] == b'Z'
        && b[20] == b'-'
        && b[21..]
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// Whether `s` is a scenario id: `<subsystem>/<scenario>[/<param>]` over `[a-z0-9_/.-]`.
pub fn is_scenario_id(s: &str) -> bool {
    let segments: Vec<&str> = s.split('/').collect();
    segments.len() >= 2
        && segments.iter().all(|seg| !seg.is_empty())
        && s.bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'/' | b'.' | b'-'))
}

/// Whether `s` is a subject name: `[a-z0-9_]+`.
pub fn is_subject(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// The first 10 characters of a commit id, as reports show it (whole when shorter; cut at a
/// character boundary, so a foreign non-hex id cannot split a character).
pub fn short_commit(commit: &str) -> &str {
    commit
        .char_indices()
        .nth(10)
        .map_or(commit, |(end, _)| &commit[..end])
}

/// Formats a timestamp as RFC 3339 (UTC).
pub fn format_timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 timestamp.
pub fn parse_timestamp(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

fn now_millis() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let millis = now.millisecond();
    now.replace_nanosecond(u32::from(millis) * 1_000_000)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_commits_cut_at_characters() {
        assert_eq!(short_commit("0123456789abcdef"), "0123456789");
        assert_eq!(short_commit("abc"), "abc");
        assert_eq!(short_commit("ééééééééééé"), "éééééééééé");
    }
    use crate::fingerprint::{RunnerFacts, RunnerInfo};

    fn runner() -> RunnerInfo {
        RunnerInfo::from_facts(RunnerFacts {
            cpu_model: "Test CPU".into(),
            cpu_cores: 4,
            memory_gib: 16,
            os: "Linux".into(),
            kernel: "6.1".into(),
            rustc: "rustc 1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            gpu: None,
        })
    }

    #[test]
    fn run_ids_are_sortable_and_well_formed() {
        let early = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let late = OffsetDateTime::from_unix_timestamp(1_700_000_001).unwrap();
        let a = new_run_id(early);
        let b = new_run_id(late);
        assert!(is_run_id(&a), "{a}");
        assert!(a < b, "{a} < {b}");
        assert!(a.starts_with("20231114T221320.000Z-"), "{a}");
        assert!(!is_run_id("20231114T221320.000Z-ABCDEF"));
        assert!(!is_run_id("latest"));
    }

    #[test]
    fn run_round_trips_through_json() {
        let mut run = Run::new("memory", runner(), GitInfo::default());
        run.results.push(Measurement {
            scenario: "memory/pool_cycle/kib1".into(),
            subject: "perflab".into(),
            metric: "wall_time".into(),
            unit: "ns".into(),
            direction: Direction::Lower,
            value: 12.5,
            lower: Some(12.0),
            upper: Some(13.0),
            samples: vec![12.0, 12.5, 13.0],
        });
        run.failures.push(Failure {
            engine: Some(Engine::Load),
            scenario: None,
            reason: "exit status 1".into(),
        });
        run.skipped.push(Skipped {
            scenario: "cache/l2/redis".into(),
            reason: "requires redis".into(),
        });
        let json = serde_json::to_string(&run).unwrap();
        assert!(json.contains("\"direction\":\"lower\""), "{json}");
        assert!(json.contains("\"schema_version\":1"), "{json}");
        let back: Run = serde_json::from_str(&json).unwrap();
        assert_eq!(back, run);
        assert_eq!(back.check(), Ok(()));
    }

    #[test]
    fn check_rejects_duplicates_and_bad_ids() {
        let mut run = Run::new("memory", runner(), GitInfo::default());
        let m = Measurement {
            scenario: "memory/x".into(),
            subject: "perflab".into(),
            metric: "wall_time".into(),
            unit: "ns".into(),
            direction: Direction::Lower,
            value: 1.0,
            lower: None,
            upper: None,
            samples: vec![1.0],
        };
        run.results.push(m.clone());
        run.results.push(m.clone());
        assert!(run.check().unwrap_err().contains("measured twice"));
        run.results.truncate(1);
        run.results[0].scenario = "Memory X".into();
        assert!(run.check().unwrap_err().contains("not a scenario id"));
    }

    #[test]
    fn known_metrics_have_units_and_directions() {
        assert_eq!(
            MetricSpec::known("throughput").unwrap().direction,
            Direction::Higher
        );
        assert_eq!(MetricSpec::known("latency_p99").unwrap().unit, "ns");
        assert_eq!(
            MetricSpec::known("estimated_cycles").unwrap().unit,
            "cycles"
        );
        assert!(MetricSpec::known("frobs").is_none());
        assert!(Direction::Higher.is_better(2.0, 1.0));
        assert!(Direction::Lower.is_better(1.0, 2.0));
    }

    #[test]
    fn scenario_ids_and_subjects() {
        assert!(is_scenario_id("memory/pool_cycle/kib16"));
        assert!(is_scenario_id("cache/l1.get-hit"));
        assert!(!is_scenario_id("memory"));
        assert!(!is_scenario_id("memory//x"));
        assert!(!is_scenario_id("Memory/x"));
        assert!(is_subject("object_pool"));
        assert!(!is_subject("object-pool"));
        assert!(!is_subject(""));
    }
}
