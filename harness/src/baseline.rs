//! Named baselines: whole runs kept as human-diffable JSON in `baselines/<fingerprint>/<name>.json`.
//!
//! A baseline belongs to the runner that measured it: results from different runner
//! fingerprints are never compared, so [`BaselineStore::load`] refuses a name that exists
//! only for other runners and says which ones. Saving replaces a baseline of the same name
//! atomically (temporary file in the same folder, fsync, rename, fsync of the folder), so a
//! failed save leaves the previous one whole; a file that does not parse is reported with
//! its path and left as it is.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::atomic::write_file_atomically;
use crate::error::BaselineError;
use crate::schema::Run;

/// The folder of baselines, one subfolder per runner fingerprint.
#[derive(Debug, Clone)]
pub struct BaselineStore {
    dir: PathBuf,
}

/// One stored baseline, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineEntry {
    /// The runner fingerprint it belongs to.
    pub fingerprint: String,
    /// Its name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
}

impl BaselineStore {
    /// Baselines below `dir` (the workspace's `baselines/`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file of baseline `name` of runner `fingerprint`.
    pub fn path_of(&self, fingerprint: &str, name: &str) -> PathBuf {
        self.dir.join(fingerprint).join(format!("{name}.json"))
    }

    /// Saves `run` as baseline `name` of the runner that measured it, replacing an earlier
    /// baseline of that name atomically. Returns the file written.
    pub fn save(&self, name: &str, run: &Run) -> Result<PathBuf, BaselineError> {
        check_name(name)?;
        run.check().map_err(|reason| BaselineError::InvalidRun {
            id: run.id.clone(),
            reason,
        })?;
        let path = self.path_of(&run.runner.fingerprint, name);
        let folder = path.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&folder).map_err(io_error(&folder))?;
        let mut json = serde_json::to_vec_pretty(run).map_err(|e| BaselineError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        write_file_atomically(&path, &json).map_err(io_error(&path))?;
        Ok(path)
    }

    /// Loads baseline `name` of runner `fingerprint`. A name that exists only for other
    /// runners is refused with [`BaselineError::OtherRunner`].
    pub fn load(&self, fingerprint: &str, name: &str) -> Result<Run, BaselineError> {
        check_name(name)?;
        let path = self.path_of(fingerprint, name);
        if !path.exists() {
            let others: Vec<String> = self
                .list()?
                .into_iter()
                .filter(|e| e.name == name)
                .map(|e| e.fingerprint)
                .collect();
            return Err(if others.is_empty() {
                BaselineError::NotFound {
                    name: name.to_owned(),
                    fingerprint: fingerprint.to_owned(),
                    dir: self.dir.clone(),
                }
            } else {
                BaselineError::OtherRunner {
                    name: name.to_owned(),
                    fingerprint: fingerprint.to_owned(),
                    others,
                }
            });
        }
        let text = fs::read_to_string(&path).map_err(io_error(&path))?;
        let run: Run = serde_json::from_str(&text).map_err(|e| BaselineError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if run.runner.fingerprint != fingerprint {
            return Err(BaselineError::Parse {
                path,
                message: format!(
                    "field `runner.fingerprint` is {}, but the file is filed under {fingerprint}",
                    run.runner.fingerprint
                ),
            });
        }
        Ok(run)
    }

    /// Loads baseline `name` of runner `fingerprint` to compare a run of `suite` with: a
    /// baseline of another suite is refused with [`BaselineError::OtherSuite`].
    pub fn load_for_suite(
        &self,
        fingerprint: &str,
        name: &str,
        suite: &str,
    ) -> Result<Run, BaselineError> {
        let run = self.load(fingerprint, name)?;
        if run.suite != suite {
            return Err(BaselineError::OtherSuite {
                name: name.to_owned(),
                fingerprint: fingerprint.to_owned(),
                baseline_suite: run.suite,
                suite: suite.to_owned(),
            });
        }
        Ok(run)
    }

    /// Every baseline of every runner, sorted by fingerprint and name.
    pub fn list(&self) -> Result<Vec<BaselineEntry>, BaselineError> {
        let mut out = Vec::new();
        for runner in read_dir_or_empty(&self.dir)? {
            if !runner.is_dir() {
                continue;
            }
            let Some(fingerprint) = file_name(&runner) else {
                continue;
            };
            for file in read_dir_or_empty(&runner)? {
                if let Some(name) = file
                    .extension()
                    .is_some_and(|e| e == "json")
                    .then(|| file.file_stem().and_then(|s| s.to_str()))
                    .flatten()
                    .filter(|name| check_name(name).is_ok())
                {
                    out.push(BaselineEntry {
                        fingerprint: fingerprint.clone(),
                        name: name.to_owned(),
                        path: file.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.fingerprint, &a.name).cmp(&(&b.fingerprint, &b.name)));
        Ok(out)
    }

    /// Deletes baseline `name` of runner `fingerprint`; returns the file removed.
    pub fn delete(&self, fingerprint: &str, name: &str) -> Result<PathBuf, BaselineError> {
        check_name(name)?;
        let path = self.path_of(fingerprint, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BaselineError::NotFound {
                name: name.to_owned(),
                fingerprint: fingerprint.to_owned(),
                dir: self.dir.clone(),
            }),
            Err(e) => Err(io_error(&path)(e)),
        }
    }
}

/// A baseline name is a file name: letters, digits, `_`, `-` and `.`, not starting with `.`.
fn check_name(name: &str) -> Result<(), BaselineError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(BaselineError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn read_dir_or_empty(dir: &Path) -> Result<Vec<PathBuf>, BaselineError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()
            .map_err(io_error(dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(dir)(e)),
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().and_then(|s| s.to_str()).map(str::to_owned)
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BaselineError {
    let path = path.to_owned();
    move |source| BaselineError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{RunnerFacts, RunnerInfo};
    use crate::schema::{GitInfo, Measurement};

    fn runner(cpu: &str) -> RunnerInfo {
        RunnerInfo::from_facts(RunnerFacts {
            cpu_model: cpu.to_owned(),
            cpu_cores: 2,
            memory_gib: 24,
            os: "Linux".to_owned(),
            kernel: "6.1".to_owned(),
            rustc: "rustc 1.95.0".to_owned(),
            target: "x86_64-unknown-linux-gnu".to_owned(),
            gpu: None,
        })
    }

    fn run_on(cpu: &str, value: f64) -> Run {
        let mut run = Run::new("memory", runner(cpu), GitInfo::default());
        run.results.push(Measurement {
            scenario: "memory/pool_cycle/b64".to_owned(),
            subject: "perflab".to_owned(),
            metric: "wall_time".to_owned(),
            unit: "ns".to_owned(),
            direction: crate::schema::Direction::Lower,
            value,
            lower: Some(value),
            upper: Some(value),
            samples: vec![value],
        });
        run
    }

    #[test]
    fn save_then_load_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::new(dir.path());
        let first = run_on("cpu a", 5.0);
        let path = store.save("main", &first).unwrap();
        assert_eq!(path, store.path_of(&first.runner.fingerprint, "main"));
        assert_eq!(
            store.load(&first.runner.fingerprint, "main").unwrap(),
            first
        );

        let second = run_on("cpu a", 6.0);
        store.save("main", &second).unwrap();
        assert_eq!(
            store.load(&first.runner.fingerprint, "main").unwrap(),
            second
        );
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["main.json"]);
    }

    #[test]
    fn another_runners_baseline_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::new(dir.path());
        let theirs = run_on("cpu a", 5.0);
        store.save("main", &theirs).unwrap();
        let mine = runner("cpu b").fingerprint;
        let err = store.load(&mine, "main").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, BaselineError::OtherRunner { .. }), "{err:?}");
        assert!(message.contains(&mine), "{message}");
        assert!(message.contains(&theirs.runner.fingerprint), "{message}");
    }

    #[test]
    fn a_baseline_serves_only_its_own_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::new(dir.path());
        let run = run_on("cpu", 1.0);
        store.save("main", &run).unwrap();
        let fp = &run.runner.fingerprint;
        assert_eq!(store.load_for_suite(fp, "main", &run.suite).unwrap(), run);
        let e = store.load_for_suite(fp, "main", "harness").unwrap_err();
        assert!(matches!(e, BaselineError::OtherSuite { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("a run of suite `{}`, not of `harness`", run.suite)),
            "{text}"
        );
    }

    #[test]
    fn list_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::new(dir.path());
        let a = run_on("cpu a", 5.0);
        let b = run_on("cpu b", 5.0);
        store.save("main", &a).unwrap();
        store.save("v1.2", &a).unwrap();
        store.save("main", &b).unwrap();
        let listed: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|e| (e.fingerprint, e.name))
            .collect();
        let mut expected = vec![
            (a.runner.fingerprint.clone(), "main".to_owned()),
            (a.runner.fingerprint.clone(), "v1.2".to_owned()),
            (b.runner.fingerprint.clone(), "main".to_owned()),
        ];
        expected.sort();
        assert_eq!(listed, expected);

        store.delete(&a.runner.fingerprint, "v1.2").unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
        assert!(matches!(
            store.delete(&a.runner.fingerprint, "v1.2"),
            Err(BaselineError::NotFound { .. })
        ));
    }

    #[test]
    fn bad_names_and_corrupt_files_are_errors_that_touch_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::new(dir.path());
        let run = run_on("cpu a", 5.0);
        for name in ["", ".hidden", "a/b", "../up"] {
            assert!(
                matches!(
                    store.save(name, &run),
                    Err(BaselineError::InvalidName { .. })
                ),
                "{name:?}"
            );
        }
        let path = store.path_of(&run.runner.fingerprint, "main");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"{ not json").unwrap();
        let err = store.load(&run.runner.fingerprint, "main").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"{ not json");
    }
}
