//! Bencher Metric Format: `{ "<scenario>[@<subject>]": { "<measure>": {"value", "lower_value"?, "upper_value"?} } }`.
//!
//! A name without `@` has subject `perflab`. Known measures get their unit and direction from
//! [`MetricSpec::known`]; an unknown measure gets unit `""`, direction lower, and a warning.
//! BMF carries no raw samples, so `samples = [value]`.

use std::path::Path;

use serde_json::Value;

use crate::error::IngestError;
use crate::ingest::json::{JsonFile, kind};
use crate::ingest::{Dedup, scenario_id, subject_name};
use crate::schema::{Direction, Measurement, MetricSpec, PERFLAB_SUBJECT};

/// Reads a BMF JSON file.
pub fn ingest_bmf(path: &Path) -> Result<Vec<Measurement>, IngestError> {
    let file = JsonFile::read(path)?;
    measurements(&file)
}

/// Parses BMF `text` as if read from `path` (used for output captured in memory).
pub fn parse_bmf(path: &Path, text: &str) -> Result<Vec<Measurement>, IngestError> {
    let file = JsonFile::parse(path, text)?;
    measurements(&file)
}

fn measurements(file: &JsonFile) -> Result<Vec<Measurement>, IngestError> {
    let benches = file.root.as_object().ok_or_else(|| {
        file.field_error(
            "(root)",
            format!(
                "expected an object of benchmarks, found {}",
                kind(&file.root)
            ),
        )
    })?;
    let mut dedup = Dedup::default();
    let mut out = Vec::new();
    for (name, measures) in benches {
        let (raw_scenario, raw_subject) = match name.rsplit_once('@') {
            Some((s, subj)) => (s, subj),
            None => (name.as_str(), PERFLAB_SUBJECT),
        };
        if raw_scenario.is_empty() || raw_subject.is_empty() {
            return Err(file.field_error(name, "benchmark name has an empty scenario or subject"));
        }
        let scenario = scenario_id(raw_scenario);
        let subject = subject_name(raw_subject);
        let measures = measures.as_object().ok_or_else(|| {
            file.field_error(
                name,
                format!("expected an object of measures, found {}", kind(measures)),
            )
        })?;
        if measures.is_empty() {
            return Err(file.field_error(name, "no measures"));
        }
        for (measure, body) in measures {
            let field = format!("{name}.{measure}");
            let m = measurement(file, &field, &scenario, &subject, measure, body)?;
            dedup.check(&m, &file.path, &field)?;
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err(IngestError::Empty {
            path: file.path.clone(),
            what: "benchmarks",
        });
    }
    Ok(out)
}

fn measurement(
    file: &JsonFile,
    field: &str,
    scenario: &str,
    subject: &str,
    measure: &str,
    body: &Value,
) -> Result<Measurement, IngestError> {
    let obj = body.as_object().ok_or_else(|| {
        file.field_error(field, format!("expected an object, found {}", kind(body)))
    })?;
    if let Some(unknown) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "value" | "lower_value" | "upper_value"))
    {
        return Err(file.field_error(
            &format!("{field}.{unknown}"),
            "unknown field (expected value, lower_value, upper_value)",
        ));
    }
    let value = file.as_f64(
        file.get_in(body, "value", &format!("{field}.value"))?,
        &format!("{field}.value"),
    )?;
    let bound = |key: &str| -> Result<Option<f64>, IngestError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => file.as_f64(v, &format!("{field}.{key}")).map(Some),
        }
    };
    let lower = bound("lower_value")?;
    let upper = bound("upper_value")?;
    if let (Some(l), Some(u)) = (lower, upper)
        && l > u
    {
        return Err(file.field_error(field, format!("lower_value {l} > upper_value {u}")));
    }
    let metric = subject_name(measure);
    let (unit, direction) = match MetricSpec::known(&metric) {
        Some(spec) => (spec.unit.to_owned(), spec.direction),
        None => {
            tracing::warn!(
                file = %file.path.display(),
                measure,
                "unknown BMF measure; unit \"\" and lower-is-better assumed"
            );
            (String::new(), Direction::Lower)
        }
    };
    Ok(Measurement {
        scenario: scenario.to_owned(),
        subject: subject.to_owned(),
        metric,
        unit,
        direction,
        value,
        lower,
        upper,
        samples: vec![value],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_names_measures_and_bounds() {
        let text = r#"{
          "cache/l1_get/hit@moka": {"throughput": {"value": 1.5e6, "lower_value": 1.4e6, "upper_value": 1.6e6}},
          "cache/l1_get/hit": {"latency_p99": {"value": 850.0}, "frobs": {"value": 3}}
        }"#;
        let ms = parse_bmf(Path::new("load.json"), text).unwrap();
        assert_eq!(ms.len(), 3);
        let moka = ms.iter().find(|m| m.subject == "moka").unwrap();
        assert_eq!(moka.scenario, "cache/l1_get/hit");
        assert_eq!(moka.unit, "ops/s");
        assert_eq!(moka.direction, Direction::Higher);
        assert_eq!((moka.lower, moka.upper), (Some(1.4e6), Some(1.6e6)));
        let p99 = ms.iter().find(|m| m.metric == "latency_p99").unwrap();
        assert_eq!(p99.subject, "perflab");
        assert_eq!(p99.samples, vec![850.0]);
        let frobs = ms.iter().find(|m| m.metric == "frobs").unwrap();
        assert_eq!(
            (frobs.unit.as_str(), frobs.direction),
            ("", Direction::Lower)
        );
    }

    #[test]
    fn malformed_values_name_the_field() {
        let e = parse_bmf(
            Path::new("b.json"),
            r#"{"a/b": {"latency": {"value": "fast"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "b.json: field `a/b.latency.value`: expected a number, found a string"
        );
        let e = parse_bmf(
            Path::new("b.json"),
            r#"{"a/b": {"latency": {"lower_value": 1}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "b.json: field `a/b.latency.value`: missing");
        let e = parse_bmf(Path::new("b.json"), r#"[1]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `(root)`"), "{e}");
    }
}
