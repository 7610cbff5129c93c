//! perflab-scenarios: the scenario catalog, the load scenarios and their BMF output.
//!
//! The harness (crate `perflab`) never links this crate: it reads the catalog from
//! `perflab-scenarios list --json`, runs the benches with cargo, and reads the BMF that
//! `perflab-scenarios load` writes.

mod bmf;
mod catalog;
mod error;
mod load;
mod redis_server;

pub use bmf::{Bmf, Measure};
pub use catalog::{
    Engine, POOL_SIZES, POOL_SUBJECTS, Requirement, Scenario, VMM_MODES, VMM_SUBJECTS, catalog,
    is_valid_scenario_id, is_valid_subject,
};
pub use error::ScenarioError;
pub use load::{
    LatencySummary, LoadOptions, LoadOutcome, percentile_bounds, routing_workload, run_load,
};
pub use redis_server::RedisService;
