//! `FastRecorder`: a `metrics::Recorder` with striped atomic counters and log-linear histograms.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use parking_lot::RwLock;
use serde::Serialize;

use crate::histogram::LogLinearHistogram;

/// Label pairs of a series, in the order they were given.
pub type Labels = Vec<(String, String)>;

/// Stripes per counter and histogram: threads take them round-robin, so up to this many
/// recording threads never share a cache line.
pub(crate) const STRIPES: usize = 4;

/// One counter's value at snapshot time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterSample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: Labels,
    /// Total so far.
    pub value: u64,
}

/// One gauge's value at snapshot time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GaugeSample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: Labels,
    /// Current value.
    pub value: f64,
}

/// One histogram's summary at snapshot time (quantiles within 3.2% relative error).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramSample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: Labels,
    /// Observations.
    pub count: u64,
    /// Sum of the observations.
    pub sum: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Everything recorded through the `metrics` facade, as of one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplicationMetrics {
    /// Counters, sorted by name then labels.
    pub counters: Vec<CounterSample>,
    /// Gauges, sorted by name then labels.
    pub gauges: Vec<GaugeSample>,
    /// Histograms, sorted by name then labels.
    pub histograms: Vec<HistogramSample>,
}

/// A `metrics::Recorder` built for a low recording cost: a counter is one relaxed
/// `fetch_add` on the calling thread's stripe (no cache line shared with another recording
/// thread), a histogram observation one `fetch_add` in a log-linear bucket of that stripe.
/// Stripes are summed only when read. Cloning shares the same metrics.
#[derive(Debug, Clone, Default)]
pub struct FastRecorder {
    inner: Arc<Registry>,
}

impl FastRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs a clone of this recorder as the process-wide `metrics` recorder.
    pub fn install(&self) -> Result<(), crate::MonitoringError> {
        metrics::set_global_recorder(self.clone())
            .map_err(|_| crate::MonitoringError::RecorderInstalled)
    }

    /// Reads every metric: stripes summed, histograms summarised.
    pub fn snapshot(&self) -> ApplicationMetrics {
        let r = &self.inner;
        let mut out = ApplicationMetrics {
            counters: r
                .counters
                .read()
                .iter()
                .map(|(k, c)| CounterSample {
                    name: k.name().to_owned(),
                    labels: labels_of(k),
                    value: c.value(),
                })
                .collect(),
            gauges: r
                .gauges
                .read()
                .iter()
                .map(|(k, g)| GaugeSample {
                    name: k.name().to_owned(),
                    labels: labels_of(k),
                    value: g.value(),
                })
                .collect(),
            histograms: r
                .histograms
                .read()
                .iter()
                .map(|(k, h)| {
                    let merged = h.merged();
                    HistogramSample {
                        name: k.name().to_owned(),
                        labels: labels_of(k),
                        count: merged.count(),
                        sum: h.sum(),
                        p50: merged.quantile(0.5),
                        p90: merged.quantile(0.9),
                        p99: merged.quantile(0.99),
                    }
                })
                .collect(),
        };
        out.counters
            .sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        out.gauges
            .sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        out.histograms
            .sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        out
    }

    /// The description given with `describe_*!` for `name`, if any: `(unit, help)`.
    pub fn description(&self, name: &str) -> Option<(Option<Unit>, String)> {
        self.inner.descriptions.read().get(name).cloned()
    }
}

impl Recorder for FastRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(get_or_insert(&self.inner.counters, key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(get_or_insert(&self.inner.gauges, key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(get_or_insert(&self.inner.histograms, key))
    }
}

impl FastRecorder {
    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .descriptions
            .write()
            .insert(key.as_str().to_owned(), (unit, description.into_owned()));
    }
}

/// `metrics::Key` hashes itself once at construction and writes only that `u64`; this hasher
/// passes it through instead of hashing it again.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if `Key`'s `Hash` ever writes bytes; fold them in (FNV-1a) to stay correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map<T> = RwLock<HashMap<Key, Arc<T>, BuildHasherDefault<KeyHasher>>>;

#[derive(Debug, Default)]
struct Registry {
    counters: Map<StripedCounter>,
    gauges: Map<AtomicGauge>,
    histograms: Map<StripedHistogram>,
    descriptions: RwLock<HashMap<String, (Option<Unit>, String)>>,
}

fn get_or_insert<T: Default>(map: &Map<T>, key: &Key) -> Arc<T> {
    if let Some(v) = map.read().get(key) {
        return Arc::clone(v);
    }
    Arc::clone(map.write().entry(key.clone()).or_default())
}

fn labels_of(key: &Key) -> Labels {
    key.labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// The stripe of the calling thread: assigned round-robin on first use.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// Aligned to 128 bytes: adjacent-line prefetch pairs 64-byte lines on x86.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

#[derive(Debug, Default)]
struct StripedCounter {
    stripes: [Padded<AtomicU64>; STRIPES],
}

impl StripedCounter {
    fn value(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl CounterFn for StripedCounter {
    fn increment(&self, value: u64) {
        self.stripes[stripe()].0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        // Raise the total to `value` (never lower it, as the facade documents); a concurrent
        // increment between the read and the add is kept on top.
        let current = self.value();
        if value > current {
            self.increment(value - current);
        }
    }
}

#[derive(Debug, Default)]
struct AtomicGauge(AtomicU64);

impl AtomicGauge {
    fn value(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = f(f64::from_bits(cur)).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

impl GaugeFn for AtomicGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct HistogramStripe {
    buckets: LogLinearHistogram,
    /// f64 bits; only this stripe's threads add to it, so the CAS rarely retries.
    sum: AtomicU64,
}

#[derive(Debug, Default)]
struct StripedHistogram {
    stripes: [Padded<HistogramStripe>; STRIPES],
}

impl StripedHistogram {
    fn merged(&self) -> LogLinearHistogram {
        let out = LogLinearHistogram::default();
        for s in &self.stripes {
            out.merge_from(&s.0.buckets);
        }
        out
    }

    fn sum(&self) -> f64 {
        self.stripes
            .iter()
            .map(|s| f64::from_bits(s.0.sum.load(Ordering::Relaxed)))
            .sum()
    }
}

impl HistogramFn for StripedHistogram {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        let s = &self.stripes[stripe()].0;
        s.buckets.record_n(value, count as u64);
        let add = value * count as f64;
        let mut cur = s.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + add).to_bits();
            match s
                .sum
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_from_many_threads_add_up() {
        let rec = FastRecorder::new();
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    metrics::with_local_recorder(&rec, || {
                        for _ in 0..10_000 {
                            metrics::counter!("requests_total", "route" => "/a").increment(1);
                        }
                        metrics::histogram!("latency_seconds").record(0.25);
                    });
                });
            }
        });
        let snap = rec.snapshot();
        assert_eq!(snap.counters.len(), 1);
        assert_eq!(snap.counters[0].value, 60_000);
        assert_eq!(
            snap.counters[0].labels,
            vec![("route".to_owned(), "/a".to_owned())]
        );
        let h = &snap.histograms[0];
        assert_eq!(h.count, 6);
        assert!((h.sum - 1.5).abs() < 1e-12);
        assert!((h.p50 - 0.25).abs() / 0.25 < 0.04, "{}", h.p50);
    }

    #[test]
    fn gauges_and_absolute_counters() {
        let rec = FastRecorder::new();
        metrics::with_local_recorder(&rec, || {
            metrics::describe_gauge!("queue_depth", Unit::Count, "jobs waiting");
            let g = metrics::gauge!("queue_depth");
            g.set(10.0);
            g.increment(2.5);
            g.decrement(0.5);
            let c = metrics::counter!("bytes_total");
            c.absolute(100);
            c.absolute(40);
            c.increment(1);
        });
        let snap = rec.snapshot();
        assert_eq!(snap.gauges[0].value, 12.0);
        assert_eq!(snap.counters[0].value, 101);
        assert_eq!(
            rec.description("queue_depth"),
            Some((Some(Unit::Count), "jobs waiting".to_owned()))
        );
    }
}
