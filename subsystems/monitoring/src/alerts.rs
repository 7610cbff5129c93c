//! Alert rules with Prometheus `for:` semantics (inactive, pending, firing) plus hysteresis.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::AlertError;
use crate::recorder::Labels;
use crate::store::{SeriesKey, SeriesStore, latest_at, millis, time_of};

/// Alert events kept for reports.
const HISTORY: usize = 10_000;

/// Which side of the threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    /// `metric > threshold`.
    Above,
    /// `metric < threshold`.
    Below,
}

/// An alerting rule over every series of one metric: `metric > threshold` (or `<`) that must
/// hold at every evaluation for `for_duration` before the alert fires, as a Prometheus
/// alerting rule with `for:`. With `clear_threshold`, a firing alert stays firing until the
/// value crosses back past it (hysteresis), so a value hovering at the threshold does not
/// flap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRule {
    /// The alert's name (`alertname`).
    pub name: String,
    /// The metric whose series are tested.
    pub metric: String,
    /// Which side of the threshold is bad.
    pub comparison: Comparison,
    /// The threshold.
    pub threshold: f64,
    /// Where a firing alert resolves; `None` resolves at `threshold`.
    pub clear_threshold: Option<f64>,
    /// How long the condition must hold before firing (Prometheus `for:`).
    pub for_duration: Duration,
    /// Labels added to every alert of the rule.
    pub labels: Labels,
}

impl AlertRule {
    /// A rule that fires at once when `metric` crosses `threshold` in direction `comparison`.
    pub fn new(
        name: impl Into<String>,
        metric: impl Into<String>,
        comparison: Comparison,
        threshold: f64,
    ) -> Self {
        Self {
            name: name.into(),
            metric: metric.into(),
            comparison,
            threshold,
            clear_threshold: None,
            for_duration: Duration::ZERO,
            labels: Vec::new(),
        }
    }

    /// Sets the `for:` duration.
    pub fn for_duration(mut self, d: Duration) -> Self {
        self.for_duration = d;
        self
    }

    /// Sets the resolve threshold (below `threshold` for `Above`, above it for `Below`).
    pub fn clear_at(mut self, clear: f64) -> Self {
        self.clear_threshold = Some(clear);
        self
    }

    /// Adds a label to the rule's alerts.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// The rule as one entry of a Prometheus rule file's `rules:` list (YAML, indented for a
    /// group). Hysteresis has no plain-PromQL equivalent and is left out.
    pub fn to_prometheus_yaml(&self) -> String {
        let op = match self.comparison {
            Comparison::Above => ">",
            Comparison::Below => "<",
        };
        let mut out = format!(
            "      - alert: {}\n        expr: {} {op} {}\n        for: {}s\n",
            self.name,
            self.metric,
            self.threshold,
            self.for_duration.as_secs()
        );
        if !self.labels.is_empty() {
            out.push_str("        labels:\n");
            for (k, v) in &self.labels {
                let _ = writeln!(out, "          {k}: {v:?}");
            }
        }
        out
    }

    fn validate(&self) -> Result<(), AlertError> {
        let bad = |reason: &str| {
            Err(AlertError::InvalidRule {
                rule: self.name.clone(),
                reason: reason.to_owned(),
            })
        };
        if self.name.is_empty() || self.metric.is_empty() {
            return bad("empty name or metric");
        }
        if !self.threshold.is_finite() {
            return bad("threshold is not finite");
        }
        if let Some(c) = self.clear_threshold {
            let ok = match self.comparison {
                Comparison::Above => c <= self.threshold,
                Comparison::Below => c >= self.threshold,
            };
            if !c.is_finite() || !ok {
                return bad("clear threshold must lie on the good side of the threshold");
            }
        }
        Ok(())
    }

    fn breached(&self, value: f64, firing: bool) -> bool {
        let limit = if firing {
            self.clear_threshold.unwrap_or(self.threshold)
        } else {
            self.threshold
        };
        match self.comparison {
            Comparison::Above => value > limit,
            Comparison::Below => value < limit,
        }
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlertState {
    /// The condition holds, for less than `for_duration` so far.
    Pending,
    /// The condition has held for `for_duration`.
    Firing,
    /// It was firing and the condition stopped holding at this evaluation.
    Resolved,
}

/// One alert instance: a rule on one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The rule's name.
    pub name: String,
    /// `alertname`, the series' labels and the rule's labels, sorted by name.
    pub labels: Labels,
    /// Where it stands.
    pub state: AlertState,
    /// The series' value at this evaluation (the last breaching value once resolved).
    pub value: f64,
    /// When the condition started holding.
    pub active_at: SystemTime,
    /// When it started firing.
    pub fired_at: Option<SystemTime>,
    /// When it resolved.
    pub resolved_at: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    active_at: i64,
    fired_at: Option<i64>,
    value: f64,
}

/// Evaluates rules against the series store and keeps each alert's state between
/// evaluations.
#[derive(Debug, Default)]
pub(crate) struct AlertManager {
    rules: Vec<AlertRule>,
    active: BTreeMap<(String, SeriesKey), Active>,
    history: VecDeque<Alert>,
}

impl AlertManager {
    pub(crate) fn add_rule(&mut self, rule: AlertRule) -> Result<(), AlertError> {
        rule.validate()?;
        if self.rules.iter().any(|r| r.name == rule.name) {
            return Err(AlertError::DuplicateRule(rule.name));
        }
        self.rules.push(rule);
        Ok(())
    }

    /// One evaluation at `at`: every rule against the latest sample (within `lookback`) of
    /// each series of its metric. Returns the pending and firing alerts and those resolved
    /// by this evaluation.
    pub(crate) fn evaluate(
        &mut self,
        store: &SeriesStore,
        at: SystemTime,
        lookback: Duration,
    ) -> Vec<Alert> {
        let now = millis(at);
        let lookback = i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        let mut still = BTreeMap::new();
        let mut fired = Vec::new();
        for rule in &self.rules {
            let hold = i64::try_from(rule.for_duration.as_millis()).unwrap_or(i64::MAX);
            for (key, samples) in store.with_name(&rule.metric) {
                let id = (rule.name.clone(), key.clone());
                let prev = self.active.get(&id).copied();
                let Some(value) = latest_at(samples, now, lookback) else {
                    continue;
                };
                if !rule.breached(value, prev.is_some_and(|p| p.fired_at.is_some())) {
                    continue;
                }
                let active_at = prev.map_or(now, |p| p.active_at);
                let fired_at = prev
                    .and_then(|p| p.fired_at)
                    .or_else(|| (now - active_at >= hold).then_some(now));
                let state = Active {
                    active_at,
                    fired_at,
                    value,
                };
                let alert = alert_of(rule, key, state, None);
                if prev.is_none_or(|p| p.fired_at.is_none()) && fired_at.is_some() {
                    fired.push(alert.clone());
                }
                out.push(alert);
                still.insert(id, state);
            }
        }
        // Alerts not renewed above stopped breaching (or their series went stale).
        let ended = std::mem::replace(&mut self.active, still);
        for ((name, key), state) in ended {
            if self.active.contains_key(&(name.clone(), key.clone())) || state.fired_at.is_none() {
                continue;
            }
            if let Some(rule) = self.rules.iter().find(|r| r.name == name) {
                let resolved = alert_of(rule, &key, state, Some(now));
                self.remember(resolved.clone());
                out.push(resolved);
            }
        }
        for a in fired {
            self.remember(a);
        }
        out
    }

    /// Firing and resolved events with a timestamp in `[start, end]`.
    pub(crate) fn history(&self, start: SystemTime, end: SystemTime) -> Vec<Alert> {
        self.history
            .iter()
            .filter(|a| {
                let t = a.resolved_at.or(a.fired_at).unwrap_or(a.active_at);
                t >= start && t <= end
            })
            .cloned()
            .collect()
    }

    fn remember(&mut self, alert: Alert) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(alert);
    }
}

fn alert_of(rule: &AlertRule, key: &SeriesKey, a: Active, resolved: Option<i64>) -> Alert {
    let mut labels = key.labels.clone();
    labels.extend(rule.labels.iter().cloned());
    labels.push(("alertname".to_owned(), rule.name.clone()));
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    Alert {
        name: rule.name.clone(),
        labels,
        state: match (resolved, a.fired_at) {
            (Some(_), _) => AlertState::Resolved,
            (None, Some(_)) => AlertState::Firing,
            (None, None) => AlertState::Pending,
        },
        value: a.value,
        active_at: time_of(a.active_at),
        fired_at: a.fired_at.map(time_of),
        resolved_at: resolved.map(time_of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn states(m: &mut AlertManager, store: &SeriesStore, t: u64) -> Vec<AlertState> {
        m.evaluate(store, at(t), Duration::from_secs(300))
            .iter()
            .map(|a| a.state)
            .collect()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut m = AlertManager::default();
        m.add_rule(
            AlertRule::new("HighCpu", "cpu", Comparison::Above, 90.0)
                .for_duration(Duration::from_secs(120)),
        )
        .expect("rule");
        let mut store = SeriesStore::new(100);
        let key = SeriesKey::new("cpu", vec![]);
        let values = [50.0, 95.0, 95.0, 95.0, 95.0, 80.0];
        let mut seen = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            store.push(key.clone(), i as i64 * 60_000, v);
            seen.push(states(&mut m, &store, i as u64 * 60));
        }
        use AlertState::*;
        assert_eq!(
            seen,
            vec![
                vec![],
                vec![Pending],
                vec![Pending],
                vec![Firing],
                vec![Firing],
                vec![Resolved]
            ]
        );
        assert_eq!(m.history(at(0), at(1000)).len(), 2);
    }

    #[test]
    fn hysteresis_keeps_a_hovering_alert_firing() {
        let mut m = AlertManager::default();
        m.add_rule(AlertRule::new("Mem", "mem", Comparison::Above, 90.0).clear_at(80.0))
            .expect("rule");
        let mut store = SeriesStore::new(100);
        let key = SeriesKey::new("mem", vec![]);
        let mut seen = Vec::new();
        for (i, v) in [91.0, 89.0, 85.0, 91.0, 79.0, 85.0].into_iter().enumerate() {
            store.push(key.clone(), i as i64 * 1000, v);
            seen.push(states(&mut m, &store, i as u64));
        }
        use AlertState::*;
        assert_eq!(
            seen,
            vec![
                vec![Firing],
                vec![Firing],
                vec![Firing],
                vec![Firing],
                vec![Resolved],
                vec![]
            ]
        );
    }

    #[test]
    fn invalid_rules_are_refused() {
        let mut m = AlertManager::default();
        assert!(
            m.add_rule(AlertRule::new("a", "x", Comparison::Above, 1.0).clear_at(2.0))
                .is_err()
        );
        assert!(
            m.add_rule(AlertRule::new("a", "x", Comparison::Below, f64::NAN))
                .is_err()
        );
        m.add_rule(AlertRule::new("a", "x", Comparison::Below, 1.0))
            .expect("rule");
        assert!(matches!(
            m.add_rule(AlertRule::new("a", "y", Comparison::Below, 1.0)),
            Err(AlertError::DuplicateRule(_))
        ));
    }
}
