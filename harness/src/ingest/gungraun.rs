//! Gungraun (callgrind): `<home>/**/summary.json` (format version 7) to instruction counts.
//!
//! Mapping: subsystem = first segment of `module_path` (the bench file stem) without the
//! `_callgrind` suffix; scenario id = `<subsystem>/<group>/<id>` (`<subsystem>/<group>` for
//! a bench without an id); subject = `function_name`. Metrics come from the Callgrind
//! profile's `data.total.metrics` (the sum over all parts): `Ir.values.new` ->
//! `instructions` (required) and `EstimatedCycles.values.new` -> `estimated_cycles` (when
//! callgrind's cache simulation produced it). One-shot values, so `samples = [value]`.

use std::path::Path;

use serde_json::Value;

use crate::error::IngestError;
use crate::ingest::json::{JsonFile, kind};
use crate::ingest::{Dedup, find_files, scenario_id, subject_name};
use crate::schema::{Direction, Measurement};

/// The summary format versions this ingest understands.
const KNOWN_VERSIONS: [&str; 2] = ["6", "7"];

/// Reads every `summary.json` below a gungraun home folder.
pub fn ingest_gungraun(dir: &Path) -> Result<Vec<Measurement>, IngestError> {
    let files = find_files(dir, "summary.json")?;
    if files.is_empty() {
        return Err(IngestError::Empty {
            path: dir.to_owned(),
            what: "gungraun summaries (**/summary.json; run with GUNGRAUN_SAVE_SUMMARY=json)",
        });
    }
    let mut dedup = Dedup::default();
    let mut out = Vec::new();
    for file in files {
        for m in read_one(&file)? {
            dedup.check(&m, &file, "module_path")?;
            out.push(m);
        }
    }
    Ok(out)
}

fn read_one(path: &Path) -> Result<Vec<Measurement>, IngestError> {
    let file = JsonFile::read(path)?;
    let version = file.str("version")?;
    if !KNOWN_VERSIONS.contains(&version) {
        tracing::warn!(
            file = %path.display(),
            version,
            "gungraun summary version not tested with this ingest"
        );
    }
    let module_path = file.str("module_path")?;
    let bench_file = module_path
        .split("::")
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| file.field_error("module_path", "empty"))?;
    let subsystem = bench_file.strip_suffix("_callgrind").unwrap_or(bench_file);
    let group = file.str("group")?;
    let function = file.str("function_name")?;
    let raw_scenario = match file.opt_str("id")? {
        Some(id) => format!("{subsystem}/{group}/{id}"),
        None => format!("{subsystem}/{group}"),
    };
    let scenario = scenario_id(&raw_scenario);
    let subject = subject_name(function);

    let profiles = file.get("profiles")?;
    let profiles = profiles.as_array().ok_or_else(|| {
        file.field_error(
            "profiles",
            format!("expected an array, found {}", kind(profiles)),
        )
    })?;
    let mut callgrind = None;
    for (i, p) in profiles.iter().enumerate() {
        let tool = file.get_in(p, "tool", &format!("profiles[{i}].tool"))?;
        if file.as_str(tool, &format!("profiles[{i}].tool"))? == "Callgrind" {
            callgrind = Some((i, p));
            break;
        }
    }
    let (i, profile) =
        callgrind.ok_or_else(|| file.field_error("profiles", "no Callgrind profile"))?;
    let metrics_field = format!("profiles[{i}].data.total.metrics");
    let metrics = file.get_in(profile, "data.total.metrics", &metrics_field)?;

    let mut out = Vec::with_capacity(2);
    let ir = metric_value(&file, metrics, &metrics_field, "Ir")?
        .ok_or_else(|| file.field_error(&format!("{metrics_field}.Ir"), "missing"))?;
    out.push(measurement(
        &scenario,
        &subject,
        "instructions",
        "instructions",
        ir,
    ));
    if let Some(cycles) = metric_value(&file, metrics, &metrics_field, "EstimatedCycles")? {
        out.push(measurement(
            &scenario,
            &subject,
            "estimated_cycles",
            "cycles",
            cycles,
        ));
    }
    Ok(out)
}

/// `metrics.<event>.values.new`, or `None` when the event is absent.
fn metric_value(
    file: &JsonFile,
    metrics: &Value,
    metrics_field: &str,
    event: &str,
) -> Result<Option<f64>, IngestError> {
    let map = metrics.as_object().ok_or_else(|| {
        file.field_error(
            metrics_field,
            format!("expected an object, found {}", kind(metrics)),
        )
    })?;
    let Some(entry) = map.get(event) else {
        return Ok(None);
    };
    let field = format!("{metrics_field}.{event}.values.new");
    let v = file.get_in(entry, "values.new", &field)?;
    let x = file.as_f64(v, &field)?;
    if x < 0.0 {
        return Err(file.field_error(&field, format!("{x} is negative")));
    }
    Ok(Some(x))
}

fn measurement(scenario: &str, subject: &str, metric: &str, unit: &str, value: f64) -> Measurement {
    Measurement {
        scenario: scenario.to_owned(),
        subject: subject.to_owned(),
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        direction: Direction::Lower,
        value,
        lower: None,
        upper: None,
        samples: vec![value],
    }
}
