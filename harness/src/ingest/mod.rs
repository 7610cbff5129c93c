//! Ingest: turn the output of criterion, gungraun and BMF-emitting tools into measurements.
//!
//! Every function reads files only; malformed input is an [`IngestError`] that names the file
//! and the field (or line and column for JSON syntax errors). Names that do not follow the
//! scenario-id grammar (`[a-z0-9_/.-]`, at least two segments) or the subject grammar
//! (`[a-z0-9_]+`) are normalised (lowercased, other characters become `_`) with a warning,
//! so output of foreign tools can be ingested; two names that normalise to the same
//! measurement are an error.

mod bmf;
mod criterion;
mod gungraun;
mod json;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use bmf::{ingest_bmf, parse_bmf};
pub use criterion::ingest_criterion;
pub use gungraun::ingest_gungraun;

use crate::error::IngestError;
use crate::schema::{Measurement, is_scenario_id, is_subject};

/// Files named `name` anywhere below `dir`, sorted by path.
pub(crate) fn find_files(dir: &Path, name: &str) -> Result<Vec<PathBuf>, IngestError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| IngestError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| IngestError::Io {
                path: d.clone(),
                source,
            })?;
            let path = entry.path();
            let ty = entry.file_type().map_err(|source| IngestError::Io {
                path: path.clone(),
                source,
            })?;
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() && entry.file_name() == name {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A scenario id in the grammar, normalising a foreign name (with a warning).
pub(crate) fn scenario_id(raw: &str) -> String {
    if is_scenario_id(raw) {
        return raw.to_owned();
    }
    let mut s: String = raw
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if matches!(c, 'a'..='z' | '0'..='9' | '_' | '/' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Empty segments (`a//b`, leading or trailing `/`) become `_`.
    s = s
        .split('/')
        .map(|seg| if seg.is_empty() { "_" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    if !s.contains('/') {
        s = format!("external/{s}");
    }
    tracing::warn!(raw, normalised = %s, "name is not a scenario id; normalised");
    s
}

/// A subject name in the grammar, normalising a foreign name (with a warning).
pub(crate) fn subject_name(raw: &str) -> String {
    if is_subject(raw) {
        return raw.to_owned();
    }
    let s: String = raw
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if matches!(c, 'a'..='z' | '0'..='9' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = if s.is_empty() { "_".to_owned() } else { s };
    tracing::warn!(raw, normalised = %s, "name is not a subject name; normalised");
    s
}

/// Tracks measurement keys so that a duplicate is reported with the file and field it came from.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    seen: HashMap<(String, String, String), (PathBuf, String)>,
}

impl Dedup {
    /// Records `m` from `path`/`field`; a second measurement with the same key is an error.
    pub(crate) fn check(
        &mut self,
        m: &Measurement,
        path: &Path,
        field: &str,
    ) -> Result<(), IngestError> {
        let key = (m.scenario.clone(), m.subject.clone(), m.metric.clone());
        if let Some((first_path, first_field)) = self.seen.get(&key) {
            return Err(IngestError::Field {
                path: path.to_owned(),
                field: field.to_owned(),
                reason: format!(
                    "{} {} {} is also given by {} (field `{first_field}`)",
                    m.scenario,
                    m.subject,
                    m.metric,
                    first_path.display()
                ),
            });
        }
        self.seen.insert(key, (path.to_owned(), field.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_foreign_names() {
        assert_eq!(
            scenario_id("memory/pool_cycle/kib1"),
            "memory/pool_cycle/kib1"
        );
        assert_eq!(scenario_id("Fib 20"), "external/fib_20");
        assert_eq!(scenario_id("Group/Fn Name/"), "group/fn_name/_");
        assert_eq!(subject_name("object-pool"), "object_pool");
        assert_eq!(subject_name("opool"), "opool");
        assert!(is_scenario_id(&scenario_id("a::b")));
    }
}
