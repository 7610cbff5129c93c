//! Load scenarios: multi-metric runs (throughput, latency percentiles) that emit BMF.

mod cache;
mod stats;
mod vmm;

use regex::Regex;

use crate::bmf::Bmf;
use crate::catalog::{Engine, catalog};
use crate::error::ScenarioError;

pub use stats::{LatencySummary, percentile_bounds};

/// Knobs of a load run.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Smaller data, fewer operations and a shorter time bound, for smoke runs.
    pub quick: bool,
}

/// What a load run produced: the BMF of everything that ran, and what did not run.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Measures of every (scenario, subject) that ran.
    pub bmf: Bmf,
    /// `(scenario id, reason)` of scenarios left out because a requirement is missing.
    pub skipped: Vec<(String, String)>,
    /// `(scenario id @ subject, reason)` of subjects that failed; the others still ran.
    pub failed: Vec<(String, String)>,
}

/// Runs every load scenario of the catalog whose id matches `filter` (all when `None`).
pub fn run_load(filter: Option<&Regex>, opts: LoadOptions) -> Result<LoadOutcome, ScenarioError> {
    let selected: Vec<String> = catalog()
        .into_iter()
        .filter(|s| s.engine == Engine::Load)
        .filter(|s| filter.is_none_or(|re| re.is_match(&s.id)))
        .map(|s| s.id)
        .collect();
    let mut outcome = LoadOutcome::default();
    let vmm_ids: Vec<&str> = selected
        .iter()
        .map(String::as_str)
        .filter(|id| id.starts_with("memory/vmm_random_read/"))
        .collect();
    if !vmm_ids.is_empty() {
        vmm::run(&vmm_ids, opts, &mut outcome)?;
    }
    let cache_ids: Vec<&str> = selected
        .iter()
        .map(String::as_str)
        .filter(|id| id.starts_with("cache/"))
        .collect();
    if !cache_ids.is_empty() {
        cache::run(&cache_ids, opts, &mut outcome)?;
    }
    Ok(outcome)
}
