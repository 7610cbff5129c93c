//! Criterion: `<dir>/**/new/{benchmark,estimates,sample}.json` to `wall_time` measurements.
//!
//! Naming (interfaces of issue 2): `group_id` is the scenario id, `function_id` the subject,
//! `value_str` (when a bench uses a parameter) is appended to the scenario as a last segment.
//! value = median time per iteration (ns); lower/upper = the confidence interval of the
//! median; samples = `times[i] / iters[i]` from `sample.json`.

use std::path::Path;

use crate::error::IngestError;
use crate::ingest::json::JsonFile;
use crate::ingest::{Dedup, find_files, scenario_id, subject_name};
use crate::schema::{Direction, Measurement, PERFLAB_SUBJECT};

/// Reads every benchmark below criterion's output folder `dir` (what `CRITERION_HOME` names).
pub fn ingest_criterion(dir: &Path) -> Result<Vec<Measurement>, IngestError> {
    let files: Vec<_> = find_files(dir, "benchmark.json")?
        .into_iter()
        .filter(|p| p.parent().and_then(Path::file_name) == Some("new".as_ref()))
        .collect();
    if files.is_empty() {
        return Err(IngestError::Empty {
            path: dir.to_owned(),
            what: "criterion results (*/new/benchmark.json)",
        });
    }
    let mut dedup = Dedup::default();
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let m = read_one(&file)?;
        dedup.check(&m, &file, "group_id")?;
        out.push(m);
    }
    Ok(out)
}

fn read_one(benchmark_json: &Path) -> Result<Measurement, IngestError> {
    let dir = benchmark_json.parent().unwrap_or(Path::new("."));
    let bench = JsonFile::read(benchmark_json)?;
    let group = bench.str("group_id")?;
    if group.is_empty() {
        return Err(bench.field_error("group_id", "empty"));
    }
    let function = bench.opt_str("function_id")?;
    let value_str = bench.opt_str("value_str")?;
    let raw_scenario = match value_str {
        Some(v) => format!("{group}/{v}"),
        None => group.to_owned(),
    };
    let scenario = scenario_id(&raw_scenario);
    let subject = subject_name(function.unwrap_or(PERFLAB_SUBJECT));

    let estimates = JsonFile::read(&dir.join("estimates.json"))?;
    let value = estimates.f64("median.point_estimate")?;
    let lower = estimates.f64("median.confidence_interval.lower_bound")?;
    let upper = estimates.f64("median.confidence_interval.upper_bound")?;
    if lower > upper {
        return Err(estimates.field_error(
            "median.confidence_interval",
            format!("lower_bound {lower} > upper_bound {upper}"),
        ));
    }

    let sample = JsonFile::read(&dir.join("sample.json"))?;
    let iters = sample.f64_array("iters")?;
    let times = sample.f64_array("times")?;
    if iters.len() != times.len() {
        return Err(sample.field_error(
            "times",
            format!("{} times for {} iters", times.len(), iters.len()),
        ));
    }
    if iters.is_empty() {
        return Err(sample.field_error("iters", "empty"));
    }
    let mut samples = Vec::with_capacity(iters.len());
    for (i, (n, t)) in iters.iter().zip(&times).enumerate() {
        if *n <= 0.0 {
            return Err(sample.field_error(&format!("iters[{i}]"), format!("{n} is not positive")));
        }
        samples.push(t / n);
    }
    Ok(Measurement {
        scenario,
        subject,
        metric: "wall_time".into(),
        unit: "ns".into(),
        direction: Direction::Lower,
        value,
        lower: Some(lower),
        upper: Some(upper),
        samples,
    })
}
