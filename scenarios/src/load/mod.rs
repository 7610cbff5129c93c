//! Load scenarios: multi-metric runs (throughput, latency percentiles) that emit BMF.

#[cfg(feature = "accel")]
mod accel;
mod balancer;
mod cache;
mod events;
mod monitoring;
#[cfg(feature = "orchestrator")]
mod orchestrator;
#[cfg(feature = "plugins")]
mod plugins;
#[cfg(feature = "quantization")]
mod quantization;
mod scheduler;
mod services;
mod stats;
mod vmm;

use std::collections::BTreeMap;
use std::path::PathBuf;

use regex::Regex;

use crate::bmf::{Bmf, Measure};
use crate::catalog::{Engine, catalog};
use crate::error::ScenarioError;

pub use events::routing_workload;
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

impl LoadOutcome {
    /// Keeps the measures of `subject` in scenario `id` (and prints them on stderr), or its
    /// failure.
    pub(crate) fn record(
        &mut self,
        id: &str,
        subject: &str,
        res: Result<BTreeMap<String, Measure>, String>,
    ) {
        match res {
            Ok(m) => {
                let shown: Vec<String> = m
                    .iter()
                    .map(|(name, v)| format!("{name} {:.3}", v.value))
                    .collect();
                eprintln!("{id}@{subject}: {}", shown.join(", "));
                self.bmf.insert(id, subject, m);
            }
            Err(e) => self.failed.push((format!("{id}@{subject}"), e)),
        }
    }
}

/// A multi-threaded tokio runtime of `threads` workers, for the scenarios of async subjects.
fn tokio_runtime(threads: usize) -> Result<tokio::runtime::Runtime, ScenarioError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|source| ScenarioError::Io {
            path: PathBuf::from("<tokio runtime>"),
            source,
        })
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
    type Runner = fn(&[&str], LoadOptions, &mut LoadOutcome) -> Result<(), ScenarioError>;
    let runners: &[(&str, Runner)] = &[
        ("memory/vmm_random_read/", vmm::run),
        ("cache/", cache::run),
        ("scheduler/", scheduler::run),
        ("services/", services::run),
        ("events/", events::run),
        ("balancer/", balancer::run),
        ("monitoring/", monitoring::run),
        #[cfg(feature = "quantization")]
        ("quantization/", quantization::run),
        #[cfg(feature = "orchestrator")]
        ("orchestrator/", orchestrator::run),
        #[cfg(feature = "accel")]
        ("accel/", accel::run),
        #[cfg(feature = "plugins")]
        ("plugins/", plugins::run),
    ];
    for &(prefix, run) in runners {
        let ids: Vec<&str> = selected
            .iter()
            .map(String::as_str)
            .filter(|id| id.starts_with(prefix))
            .collect();
        if !ids.is_empty() {
            run(&ids, opts, &mut outcome)?;
        }
    }
    Ok(outcome)
}
