//! The scenario catalog printed by `perflab-scenarios list --json`, and the machine's capabilities.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::CatalogError;
use crate::fingerprint::GpuAdapter;
use crate::schema::{Engine, is_scenario_id, is_subject};

/// Every scenario the scenarios crate knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Catalog {
    /// One entry per scenario id.
    pub entries: Vec<CatalogEntry>,
}

/// One scenario of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Scenario id.
    pub id: String,
    /// The engine that measures it.
    pub engine: Engine,
    /// The cargo bench target (criterion, callgrind); `None` for load scenarios.
    pub bench: Option<String>,
    /// The cargo package of the bench target: `perflab-scenarios` unless the catalog says.
    #[serde(default = "scenarios_package")]
    pub package: String,
    /// `perflab` and the anchors measured beside it.
    pub subjects: Vec<String>,
    /// What the scenario needs to run.
    pub requires: Vec<Requirement>,
}

/// Something a scenario needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// A CPU (always there).
    Cpu,
    /// A GPU adapter.
    Gpu,
    /// A Redis server.
    Redis,
}

/// What this machine offers to scenarios; a missing one makes its scenarios skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The GPU adapter, when one was found (by the scenario runner).
    pub gpu: Option<GpuAdapter>,
    /// Where Redis is (a URL or `redis-server on PATH`), when it is.
    pub redis: Option<String>,
}

impl Catalog {
    /// Parses the JSON array `perflab-scenarios list --json` prints.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let catalog: Catalog = serde_json::from_str(text).map_err(|e| CatalogError::Invalid {
            reason: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        let mut seen = HashMap::new();
        for (i, e) in catalog.entries.iter().enumerate() {
            if !is_scenario_id(&e.id) {
                return Err(CatalogError::Invalid {
                    reason: format!("entry {i}: `{}` is not a scenario id", e.id),
                });
            }
            if let Some(first) = seen.insert(e.id.as_str(), i) {
                return Err(CatalogError::Invalid {
                    reason: format!("entries {first} and {i} both have id `{}`", e.id),
                });
            }
            if let Some(bad) = e.subjects.iter().find(|s| !is_subject(s)) {
                return Err(CatalogError::Invalid {
                    reason: format!("{}: `{bad}` is not a subject name", e.id),
                });
            }
            if e.engine != Engine::Load && e.bench.as_deref().is_none_or(str::is_empty) {
                return Err(CatalogError::Invalid {
                    reason: format!("{}: {} scenario without a bench target", e.id, e.engine),
                });
            }
        }
        Ok(catalog)
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.id == id)
    }
}

impl CatalogEntry {
    /// The cargo bench target to run: for callgrind scenarios always `<bench>_callgrind`.
    pub fn bench_target(&self) -> Option<String> {
        let bench = self.bench.as_deref()?;
        Some(match self.engine {
            Engine::Callgrind if !bench.ends_with("_callgrind") => format!("{bench}_callgrind"),
            _ => bench.to_owned(),
        })
    }
}

/// The package that holds the subsystem scenarios and the load command.
pub(crate) const SCENARIOS_PACKAGE: &str = "perflab-scenarios";

fn scenarios_package() -> String {
    SCENARIOS_PACKAGE.to_owned()
}

impl Requirement {
    /// `cpu`, `gpu` or `redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
            Self::Redis => "redis",
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Capabilities {
    /// Detects Redis (`REDIS_URL`, else `redis-server` on `PATH`); `gpu` comes from the caller.
    pub fn detect(gpu: Option<GpuAdapter>) -> Self {
        let redis = std::env::var("REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| on_path("redis-server").then(|| "redis-server on PATH".to_owned()));
        Self { gpu, redis }
    }

    /// `None` when `req` is met, else why not.
    pub fn missing(&self, req: Requirement) -> Option<String> {
        match req {
            Requirement::Cpu => None,
            Requirement::Gpu if self.gpu.is_some() => None,
            Requirement::Gpu => Some("requires gpu: no GPU adapter was found".to_owned()),
            Requirement::Redis if self.redis.is_some() => None,
            Requirement::Redis => {
                Some("requires redis: REDIS_URL is unset and no redis-server is on PATH".to_owned())
            }
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"[
      {"id": "memory/pool_cycle/kib1", "engine": "criterion", "bench": "memory",
       "subjects": ["perflab", "opool", "vec"], "requires": ["cpu"]},
      {"id": "memory/pool_cycle_ir/kib1", "engine": "callgrind", "bench": "memory",
       "subjects": ["perflab", "vec"], "requires": ["cpu"]},
      {"id": "cache/l2/get", "engine": "load", "bench": null,
       "subjects": ["perflab"], "requires": ["cpu", "redis"]}
    ]"#;

    #[test]
    fn parses_the_catalog() {
        let c = Catalog::parse(CATALOG).unwrap();
        assert_eq!(c.entries.len(), 3);
        let ir = c.get("memory/pool_cycle_ir/kib1").unwrap();
        assert_eq!(ir.bench_target().as_deref(), Some("memory_callgrind"));
        assert_eq!(
            c.get("cache/l2/get").unwrap().requires[1],
            Requirement::Redis
        );
    }

    #[test]
    fn rejects_bad_entries() {
        let e = Catalog::parse(
            r#"[{"id": "x", "engine": "load", "bench": null, "subjects": [], "requires": []}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a scenario id"), "{e}");
        let e = Catalog::parse(
            r#"[{"id": "a/b", "engine": "gpu", "bench": null, "subjects": [], "requires": []}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn capabilities_explain_what_is_missing() {
        let none = Capabilities::default();
        assert!(none.missing(Requirement::Cpu).is_none());
        assert!(none.missing(Requirement::Redis).unwrap().contains("redis"));
        assert!(none.missing(Requirement::Gpu).unwrap().contains("GPU"));
        let redis = Capabilities {
            gpu: None,
            redis: Some("redis://127.0.0.1:6379".into()),
        };
        assert!(redis.missing(Requirement::Redis).is_none());
    }
}
