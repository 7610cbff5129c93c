//! Bencher Metric Format (BMF) output of the load scenarios, written atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::ScenarioError;

/// One measure of one benchmark: a point value with optional bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measure {
    /// The point value.
    pub value: f64,
    /// Lower bound, when the scenario knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_value: Option<f64>,
    /// Upper bound, when the scenario knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_value: Option<f64>,
}

impl Measure {
    /// A measure without bounds.
    pub fn point(value: f64) -> Self {
        Self {
            value,
            lower_value: None,
            upper_value: None,
        }
    }

    /// A measure with its interval: `(value, lower, upper)`, as `LatencySummary` gives them.
    pub fn bounded((value, lower, upper): (f64, f64, f64)) -> Self {
        Self {
            value,
            lower_value: Some(lower),
            upper_value: Some(upper),
        }
    }
}

/// A BMF document: `"<scenario id>@<subject>" -> measure name -> measure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Bmf(pub BTreeMap<String, BTreeMap<String, Measure>>);

impl Bmf {
    /// Records the measures of `subject` in scenario `id`.
    pub fn insert(&mut self, id: &str, subject: &str, measures: BTreeMap<String, Measure>) {
        self.0.insert(format!("{id}@{subject}"), measures);
    }

    /// Writes the document to `path` atomically: a temporary file in the same folder, fsync,
    /// rename, so a reader never sees a half-written file.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ScenarioError> {
        let io = |source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).map_err(ScenarioError::Json)?;
        tmp.write_all(&json).map_err(io)?;
        tmp.write_all(b"\n").map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_bmf_shape_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("load.json");
        let mut bmf = Bmf::default();
        let mut m = BTreeMap::new();
        m.insert("throughput".to_owned(), Measure::point(1000.0));
        m.insert(
            "latency_p99".to_owned(),
            Measure {
                value: 5.0,
                lower_value: Some(4.0),
                upper_value: Some(6.0),
            },
        );
        bmf.insert("memory/vmm_random_read/prefetch", "read", m);
        bmf.write_atomic(&path).expect("written");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "memory/vmm_random_read/prefetch@read": {
                    "latency_p99": {"value": 5.0, "lower_value": 4.0, "upper_value": 6.0},
                    "throughput": {"value": 1000.0},
                }
            })
        );
        // Only the target file is left in the folder: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
