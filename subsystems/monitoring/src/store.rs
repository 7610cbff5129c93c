//! The in-memory time-series store: bounded samples per series, keyed by name and labels.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::recorder::Labels;

/// A series' identity: metric name and label pairs sorted by label name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SeriesKey {
    /// Metric name.
    pub name: String,
    /// Label pairs, sorted by label name.
    pub labels: Labels,
}

impl SeriesKey {
    /// A key with `labels` sorted.
    pub fn new(name: impl Into<String>, mut labels: Labels) -> Self {
        labels.sort();
        Self {
            name: name.into(),
            labels,
        }
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The `SystemTime` of `ms` milliseconds since the Unix epoch.
pub(crate) fn time_of(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Samples per series, oldest first, at most `retention` each.
#[derive(Debug)]
pub(crate) struct SeriesStore {
    series: BTreeMap<SeriesKey, VecDeque<(i64, f64)>>,
    retention: usize,
}

impl SeriesStore {
    pub(crate) fn new(retention: usize) -> Self {
        Self {
            series: BTreeMap::new(),
            retention: retention.max(1),
        }
    }

    /// Appends a sample; one at the same timestamp as the last replaces it, an older one is
    /// dropped (series are append-only, as in Prometheus).
    pub(crate) fn push(&mut self, key: SeriesKey, ts: i64, value: f64) {
        let samples = self.series.entry(key).or_default();
        match samples.back_mut() {
            Some(last) if last.0 == ts => last.1 = value,
            Some(last) if last.0 > ts => {}
            _ => {
                if samples.len() == self.retention {
                    samples.pop_front();
                }
                samples.push_back((ts, value));
            }
        }
    }

    /// Every series whose name is `name`.
    pub(crate) fn with_name<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a SeriesKey, &'a VecDeque<(i64, f64)>)> + 'a {
        self.series.iter().filter(move |(k, _)| k.name == name)
    }

    /// Every series.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&SeriesKey, &VecDeque<(i64, f64)>)> {
        self.series.iter()
    }

    /// The samples of `key`, oldest first.
    pub(crate) fn get(&self, key: &SeriesKey) -> Option<&VecDeque<(i64, f64)>> {
        self.series.get(key)
    }
}

/// The latest sample at or before `at`, if it is no older than `lookback` (Prometheus'
/// instant-vector selection, whose default lookback is 5 minutes).
pub(crate) fn latest_at(samples: &VecDeque<(i64, f64)>, at: i64, lookback: i64) -> Option<f64> {
    let idx = samples.partition_point(|&(t, _)| t <= at);
    let (t, v) = *samples.get(idx.checked_sub(1)?)?;
    (at - t <= lookback).then_some(v)
}

/// The samples in `[start, end]`.
pub(crate) fn in_range(
    samples: &VecDeque<(i64, f64)>,
    start: i64,
    end: i64,
) -> impl Iterator<Item = (i64, f64)> + '_ {
    let from = samples.partition_point(|&(t, _)| t < start);
    samples
        .range(from..)
        .take_while(move |&&(t, _)| t <= end)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_order_and_lookback() {
        let mut s = SeriesStore::new(3);
        let k = SeriesKey::new(
            "m",
            vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        );
        assert_eq!(k.labels[0].0, "a");
        for (t, v) in [
            (10, 1.0),
            (20, 2.0),
            (20, 2.5),
            (15, 9.0),
            (30, 3.0),
            (40, 4.0),
        ] {
            s.push(k.clone(), t, v);
        }
        let samples = s.get(&k).expect("series");
        assert_eq!(
            samples.iter().copied().collect::<Vec<_>>(),
            vec![(20, 2.5), (30, 3.0), (40, 4.0)]
        );
        assert_eq!(latest_at(samples, 35, 10), Some(3.0));
        assert_eq!(latest_at(samples, 55, 10), None);
        assert_eq!(latest_at(samples, 19, 10), None);
        assert_eq!(in_range(samples, 25, 40).count(), 2);
        assert_eq!(millis(time_of(-1500)), -1500);
    }
}
