//! The scenario catalog: every scenario this crate can run, with its engine, bench target and subjects.

use serde::Serialize;

pub mod accel;
pub mod balancer;
pub mod events;
pub mod monitoring;
pub mod orchestrator;
pub mod plugins;
pub mod quantization;
pub mod scheduler;
pub mod services;

/// The buffer sizes of the pool scenarios: `(param, bytes)`, spelled as the naming convention says.
pub const POOL_SIZES: [(&str, usize); 4] = [
    ("b64", 64),
    ("kib1", 1024),
    ("kib16", 16 * 1024),
    ("kib256", 256 * 1024),
];

/// Subjects of every pool scenario: `perflab` first, then the anchors.
pub const POOL_SUBJECTS: [&str; 5] = ["perflab", "opool", "object_pool", "sharded_slab", "vec"];

/// Subjects of the virtual memory manager read scenarios.
pub const VMM_SUBJECTS: [&str; 2] = ["perflab", "read"];

/// Params of `memory/vmm_random_read`.
pub const VMM_MODES: [&str; 2] = ["no_prefetch", "prefetch"];

/// The package of the subsystem scenarios' bench targets and load command: this crate.
pub const SCENARIOS_PACKAGE: &str = "perflab-scenarios";

/// The harness's own scenarios: `(id, bench target of the perflab package)`. Their sizes
/// (1,000 scenario-metrics x 1,000 runs; 100,000 points) are the ones its README promises.
pub const HARNESS_SCENARIOS: [(&str, &str); 2] = [
    ("harness/compare_with_historical/rows1m", "analysis"),
    ("harness/analyze/points100k", "analysis"),
];

/// One scenario as its subsystem declares it; `catalog` turns each into a [`Scenario`].
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// `<subsystem>/<scenario>[/<param>]`.
    pub id: &'static str,
    /// Which engine measures it.
    pub engine: Engine,
    /// The bench target of this crate (`None` for load scenarios).
    pub bench: Option<&'static str>,
    /// `perflab` first, then the anchors.
    pub subjects: &'static [&'static str],
    /// What the runner must provide.
    pub requires: &'static [Requirement],
}

impl Spec {
    /// Whether the scenario needs `r`.
    pub fn needs(&self, r: Requirement) -> bool {
        self.requires.contains(&r)
    }
}

const CPU: &[Requirement] = &[Requirement::Cpu];
const CPU_REDIS: &[Requirement] = &[Requirement::Cpu, Requirement::Redis];

/// The cache scenarios. `perflab` is the multi-level cache; `moka`, `foyer` and `redis` are
/// the raw anchors; `fixed_short` and `fixed_long` are the cache with fixed TTLs instead of
/// TTL prediction.
pub const CACHE_SCENARIOS: &[Spec] = &[
    Spec {
        id: "cache/l1_get/hit",
        engine: Engine::Criterion,
        bench: Some("cache"),
        subjects: &["perflab", "moka"],
        requires: CPU,
    },
    Spec {
        id: "cache/l2_get/hit",
        engine: Engine::Criterion,
        bench: Some("cache"),
        subjects: &["perflab", "redis"],
        requires: CPU_REDIS,
    },
    Spec {
        id: "cache/zipf_mix/l1_l3",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab", "moka", "foyer"],
        requires: CPU,
    },
    Spec {
        id: "cache/zipf_mix/l1_l2_l3",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab", "redis"],
        requires: CPU_REDIS,
    },
    Spec {
        id: "cache/write_policy/write_through",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab"],
        requires: CPU,
    },
    Spec {
        id: "cache/write_policy/l3_on_evict",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab"],
        requires: CPU,
    },
    Spec {
        id: "cache/ttl_prediction/hot_and_one_hit",
        engine: Engine::Load,
        bench: None,
        subjects: &["perflab", "fixed_short", "fixed_long"],
        requires: CPU,
    },
];

/// The declared scenarios of every subsystem past the memory one (whose ids are generated
/// from its sizes and modes).
const SPEC_TABLES: [&[Spec]; 10] = [
    CACHE_SCENARIOS,
    scheduler::SCENARIOS,
    services::SCENARIOS,
    events::SCENARIOS,
    balancer::SCENARIOS,
    monitoring::SCENARIOS,
    quantization::SCENARIOS,
    orchestrator::SCENARIOS,
    accel::SCENARIOS,
    plugins::SCENARIOS,
];

/// The measurement engine that runs a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Wall time through a criterion bench.
    Criterion,
    /// Instruction counts through a gungraun (callgrind) bench.
    Callgrind,
    /// Multi-metric load scenario run by the `perflab-scenarios load` command.
    Load,
}

/// An environment capability a scenario needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// Any CPU runner.
    Cpu,
    /// A wgpu adapter.
    Gpu,
    /// A reachable Redis server.
    Redis,
}

/// One catalog entry, serialized exactly as `perflab-scenarios list --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scenario {
    /// `<subsystem>/<scenario>[/<param>]`.
    pub id: String,
    /// Which engine measures it.
    pub engine: Engine,
    /// The cargo bench target (`None` for load scenarios).
    pub bench: Option<String>,
    /// The package whose bench target it is: this crate, or `perflab` for the harness's own
    /// benchmarks.
    pub package: String,
    /// Who is measured: `perflab` and the anchors.
    pub subjects: Vec<String>,
    /// What the runner must provide.
    pub requires: Vec<Requirement>,
}

/// Every scenario this crate provides.
pub fn catalog() -> Vec<Scenario> {
    let mut out = Vec::new();
    for (scenario, engine, bench) in [
        ("pool_cycle", Engine::Criterion, "memory"),
        ("pool_cycle_2t", Engine::Criterion, "memory"),
        ("pool_cycle_ir", Engine::Callgrind, "memory_callgrind"),
    ] {
        for (param, _) in POOL_SIZES {
            out.push(Scenario {
                id: format!("memory/{scenario}/{param}"),
                engine,
                bench: Some(bench.to_owned()),
                package: SCENARIOS_PACKAGE.to_owned(),
                subjects: strings(&POOL_SUBJECTS),
                requires: vec![Requirement::Cpu],
            });
        }
    }
    for mode in VMM_MODES {
        out.push(Scenario {
            id: format!("memory/vmm_random_read/{mode}"),
            engine: Engine::Load,
            bench: None,
            package: SCENARIOS_PACKAGE.to_owned(),
            subjects: strings(&VMM_SUBJECTS),
            requires: vec![Requirement::Cpu],
        });
    }
    for spec in SPEC_TABLES.into_iter().flatten() {
        out.push(Scenario {
            id: spec.id.to_owned(),
            engine: spec.engine,
            bench: spec.bench.map(str::to_owned),
            package: SCENARIOS_PACKAGE.to_owned(),
            subjects: strings(spec.subjects),
            requires: spec.requires.to_vec(),
        });
    }
    for (id, bench) in HARNESS_SCENARIOS {
        out.push(Scenario {
            id: id.to_owned(),
            engine: Engine::Criterion,
            bench: Some(bench.to_owned()),
            package: "perflab".to_owned(),
            subjects: strings(&["perflab"]),
            requires: vec![Requirement::Cpu],
        });
    }
    out
}

/// Whether `id` follows the naming convention: two or three non-empty `/`-separated segments
/// of `[a-z0-9_.-]`.
pub fn is_valid_scenario_id(id: &str) -> bool {
    let segments: Vec<&str> = id.split('/').collect();
    (2..=3).contains(&segments.len())
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
                })
        })
}

/// Whether `name` is a valid subject name (`[a-z0-9_]+`).
pub fn is_valid_subject(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let cat = catalog();
        let ids: BTreeSet<&str> = cat.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), cat.len(), "duplicate scenario ids");
        for s in &cat {
            assert!(is_valid_scenario_id(&s.id), "invalid id {}", s.id);
            assert!(!s.subjects.is_empty(), "{} has no subjects", s.id);
            assert!(s.subjects.iter().all(|x| is_valid_subject(x)), "{}", s.id);
            assert_eq!(s.subjects[0], "perflab", "{}: perflab comes first", s.id);
            assert_eq!(s.bench.is_none(), s.engine == Engine::Load, "{}", s.id);
        }
    }

    #[test]
    fn callgrind_benches_follow_the_naming_rule() {
        // The harness derives the subsystem from the bench name minus `_callgrind`.
        for s in catalog().iter().filter(|s| s.engine == Engine::Callgrind) {
            let bench = s.bench.as_deref().unwrap_or_default();
            let subsystem = bench.strip_suffix("_callgrind").unwrap_or("");
            assert!(s.id.starts_with(&format!("{subsystem}/")), "{}", s.id);
        }
    }

    #[test]
    fn id_validation_rejects_bad_ids() {
        assert!(is_valid_scenario_id("memory/pool_cycle/kib16"));
        assert!(is_valid_scenario_id("memory/vmm_random_read"));
        assert!(is_valid_scenario_id("a-b/c.d"));
        for bad in [
            "memory",
            "Memory/pool",
            "memory//kib1",
            "memory/pool/kib1/extra",
            "memory/pool cycle",
            "/memory/pool",
            "memory/pool/",
        ] {
            assert!(!is_valid_scenario_id(bad), "{bad} accepted");
        }
        assert!(is_valid_subject("sharded_slab"));
        assert!(!is_valid_subject("sharded-slab"));
        assert!(!is_valid_subject(""));
    }

    #[test]
    fn json_shape_matches_the_interface() {
        let s = catalog()
            .into_iter()
            .find(|s| s.id == "memory/vmm_random_read/prefetch")
            .expect("vmm scenario in catalog");
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({
                "id": "memory/vmm_random_read/prefetch",
                "engine": "load",
                "bench": null,
                "package": "perflab-scenarios",
                "subjects": ["perflab", "read"],
                "requires": ["cpu"],
            })
        );
    }

    /// The minimal view of a suite file this test needs: the ids of its tests.
    #[derive(serde::Deserialize)]
    struct SuiteIds {
        name: String,
        #[serde(default)]
        tests: Vec<TestId>,
    }

    #[derive(serde::Deserialize)]
    struct TestId {
        id: String,
    }

    #[test]
    fn every_suite_id_is_in_the_catalog() {
        let cat: BTreeSet<String> = catalog().into_iter().map(|s| s.id).collect();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
        let mut suites = 0;
        for entry in std::fs::read_dir(&dir).expect("suites dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("suite readable");
            let suite: SuiteIds =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                Some(suite.name.as_str()),
                path.file_stem().and_then(|s| s.to_str()),
                "{}: name must match the file name",
                path.display()
            );
            assert!(!suite.tests.is_empty(), "{} has no tests", path.display());
            for t in &suite.tests {
                assert!(
                    cat.contains(&t.id),
                    "{}: unknown id {}",
                    path.display(),
                    t.id
                );
            }
            suites += 1;
        }
        assert!(suites >= 1, "no suite files in {}", dir.display());
    }
}
