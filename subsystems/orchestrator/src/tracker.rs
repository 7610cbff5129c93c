//! Per-model performance tracking: call counters, a latency histogram, and an EWMA latency
//! model per input-size class that predicts whether a model will meet a deadline.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::histogram::LatencyHistogram;

/// Size classes: class `c` holds input sizes in `[2^(c-1), 2^c)`, class 0 the size 0.
const SIZE_CLASSES: usize = 65;

/// How the latency model learns and forgets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LatencyModel {
    /// EWMA weight of a new sample.
    pub(crate) alpha: f64,
    /// Standard deviations above the mean that a prediction adds (2 is about the 97th
    /// percentile of a normal latency).
    pub(crate) z: f64,
    /// Time constant of the relaxation of an idle model's estimate towards its floor.
    pub(crate) decay: Duration,
}

/// The counters and latency models of every registered model, by index.
#[derive(Debug)]
pub(crate) struct PerformanceTracker {
    models: Vec<Mutex<ModelPerf>>,
    latency_model: LatencyModel,
}

/// One timed call: its input size, latency, and the calls already running on the model
/// when it began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) input_size: usize,
    pub(crate) latency: Duration,
    pub(crate) in_flight: usize,
}

/// A snapshot of one model's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PerfSnapshot {
    pub(crate) calls: u64,
    pub(crate) successes: u64,
    pub(crate) errors: u64,
    pub(crate) deadline_misses: u64,
    pub(crate) fallbacks: u64,
    pub(crate) latency_p50: Duration,
    pub(crate) latency_p99: Duration,
}

#[derive(Debug)]
struct ModelPerf {
    calls: u64,
    successes: u64,
    errors: u64,
    deadline_misses: u64,
    fallbacks: u64,
    histogram: LatencyHistogram,
    classes: Vec<Option<Ewma>>,
}

/// Exponentially weighted mean and variance of latency (seconds) in one size class.
#[derive(Debug, Clone, Copy)]
struct Ewma {
    mean: f64,
    var: f64,
    /// The lowest mean seen: the uncongested service time an idle model relaxes towards.
    floor: f64,
    /// Mean number of other calls in flight on the model when the sampled calls began.
    in_flight: f64,
    last: Instant,
}

impl Ewma {
    fn new(x: f64, in_flight: f64, now: Instant) -> Self {
        Self {
            mean: x,
            var: 0.0,
            floor: x,
            in_flight,
            last: now,
        }
    }

    fn observe(&mut self, x: f64, in_flight: f64, alpha: f64, now: Instant) {
        let d = x - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        self.floor = self.floor.min(self.mean);
        self.in_flight += alpha * (in_flight - self.in_flight);
        self.last = now;
    }

    /// `mean + z sd`, relaxed towards the floor with time constant `decay` since the last
    /// sample: a model that was slow because it was loaded is not avoided forever, since
    /// nobody would send it the calls that show it has recovered.
    fn predict(&self, m: &LatencyModel, now: Instant) -> f64 {
        let q = self.mean + m.z * self.var.sqrt();
        let age = now.saturating_duration_since(self.last).as_secs_f64();
        let keep = (-age / m.decay.as_secs_f64().max(1e-9)).exp();
        self.floor + (q - self.floor) * keep
    }
}

impl PerformanceTracker {
    pub(crate) fn new(latency_model: LatencyModel) -> Self {
        Self {
            models: Vec::new(),
            latency_model,
        }
    }

    pub(crate) fn add_model(&mut self) {
        self.models.push(Mutex::new(ModelPerf {
            calls: 0,
            successes: 0,
            errors: 0,
            deadline_misses: 0,
            fallbacks: 0,
            histogram: LatencyHistogram::new(),
            classes: vec![None; SIZE_CLASSES],
        }));
    }

    /// A call that returned in `latency` after it began with `in_flight` other calls
    /// running on the model: it feeds the histogram and the latency model.
    pub(crate) fn record_success(&self, model: usize, call: Sample) {
        let mut p = self.models[model].lock();
        p.calls += 1;
        p.successes += 1;
        p.histogram.record(call.latency);
        self.learn(&mut p, call);
    }

    /// A call that failed. Failed calls say nothing about the latency of a good answer, so
    /// the latency model is left alone.
    pub(crate) fn record_error(&self, model: usize) {
        let mut p = self.models[model].lock();
        p.calls += 1;
        p.errors += 1;
    }

    /// A call cut off by the deadline after `elapsed`. The elapsed time is a lower bound of
    /// the latency; it is learned as a sample, so that a model that keeps missing deadlines
    /// is predicted to miss them.
    pub(crate) fn record_deadline_miss(&self, model: usize, call: Sample) {
        let mut p = self.models[model].lock();
        p.calls += 1;
        p.deadline_misses += 1;
        p.histogram.record(call.latency);
        self.learn(&mut p, call);
    }

    /// A call made to `model` as a replacement for a failed one.
    pub(crate) fn record_fallback(&self, model: usize) {
        self.models[model].lock().fallbacks += 1;
    }

    /// The predicted latency of `model` at `input_size`, `None` before any sample. A size
    /// class without samples borrows the nearest class that has some, scaled linearly by
    /// the ratio of class sizes (compute grows with the input).
    pub(crate) fn predict(
        &self,
        model: usize,
        input_size: usize,
        now: Instant,
    ) -> Option<Duration> {
        self.predict_at(model, input_size, now, None)
    }

    /// `predict` for a call that would begin with `in_flight` calls running on the model:
    /// scaled by `(in_flight + 1) / (mean in-flight of the samples + 1)` when that is above
    /// 1, i.e. latency assumed to grow linearly with load beyond the load it was measured
    /// at. Without it every caller of one instant would see the same idle estimate and all
    /// pick the same model; with it the estimate learns what load a model takes in its
    /// stride, as samples at higher load come in.
    pub(crate) fn predict_under_load(
        &self,
        model: usize,
        input_size: usize,
        now: Instant,
        in_flight: usize,
    ) -> Option<Duration> {
        self.predict_at(model, input_size, now, Some(in_flight))
    }

    fn predict_at(
        &self,
        model: usize,
        input_size: usize,
        now: Instant,
        in_flight: Option<usize>,
    ) -> Option<Duration> {
        let p = self.models[model].lock();
        let want = size_class(input_size);
        let (class, ewma) = p
            .classes
            .iter()
            .enumerate()
            .filter_map(|(c, e)| e.map(|e| (c, e)))
            .min_by_key(|&(c, _)| c.abs_diff(want))?;
        let scale = 2f64.powi(want as i32 - class as i32);
        let load = in_flight.map_or(1.0, |n| {
            ((n as f64 + 1.0) / (ewma.in_flight + 1.0)).max(1.0)
        });
        let secs = ewma.predict(&self.latency_model, now) * scale * load;
        Some(Duration::from_secs_f64(secs.clamp(0.0, 1e9)))
    }

    pub(crate) fn snapshot(&self, model: usize) -> PerfSnapshot {
        let p = self.models[model].lock();
        PerfSnapshot {
            calls: p.calls,
            successes: p.successes,
            errors: p.errors,
            deadline_misses: p.deadline_misses,
            fallbacks: p.fallbacks,
            latency_p50: p.histogram.quantile(0.5),
            latency_p99: p.histogram.quantile(0.99),
        }
    }

    fn learn(&self, p: &mut ModelPerf, call: Sample) {
        let now = Instant::now();
        let x = call.latency.as_secs_f64();
        let n = call.in_flight as f64;
        match &mut p.classes[size_class(call.input_size)] {
            Some(e) => e.observe(x, n, self.latency_model.alpha, now),
            slot @ None => *slot = Some(Ewma::new(x, n, now)),
        }
    }
}

/// `ceil(log2(size + 1))`: 0 for 0, 1 for 1, 2 for 2..=3, 3 for 4..=7, ...
fn size_class(size: usize) -> usize {
    (usize::BITS - size.leading_zeros()) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(input_size: usize, ms: u64, in_flight: usize) -> Sample {
        Sample {
            input_size,
            latency: Duration::from_millis(ms),
            in_flight,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn load_beyond_the_measured_load_scales_the_prediction() {
        let t = tracker();
        for _ in 0..30 {
            t.record_success(0, sample(1, 10, 1));
        }
        let now = Instant::now();
        let ms = |n| {
            t.predict_under_load(0, 1, now, n)
                .expect("samples")
                .as_secs_f64()
                * 1e3
        };
        assert!(
            (ms(0) - 10.0).abs() < 1e-6,
            "never below the measured latency"
        );
        assert!((ms(1) - 10.0).abs() < 1e-6);
        assert!((ms(3) - 20.0).abs() < 1e-6, "{}", ms(3));
        // Samples at higher load with the same latency: the model takes that load in its stride.
        for _ in 0..60 {
            t.record_success(0, sample(1, 10, 3));
        }
        assert!(ms(3) < 10.1, "{}", ms(3));
    }

    fn tracker() -> PerformanceTracker {
        let mut t = PerformanceTracker::new(LatencyModel {
            alpha: 0.2,
            z: 2.0,
            decay: Duration::from_secs(1),
        });
        t.add_model();
        t
    }

    #[tokio::test(start_paused = true)]
    async fn prediction_follows_observed_latency_and_decays_when_idle() {
        let t = tracker();
        assert_eq!(t.predict(0, 4, Instant::now()), None);
        for _ in 0..50 {
            t.record_success(0, sample(4, 10, 0));
        }
        let steady = t.predict(0, 4, Instant::now()).expect("samples");
        assert!((steady.as_secs_f64() - 0.010).abs() < 1e-6, "{steady:?}");
        // Congestion: latency triples; the estimate follows and adds the spread.
        for _ in 0..20 {
            t.record_success(0, sample(4, 30, 0));
        }
        let loaded = t.predict(0, 4, Instant::now()).expect("samples");
        assert!(loaded > Duration::from_millis(29), "{loaded:?}");
        // Idle for five time constants: back within 1% of the spread above the floor.
        tokio::time::advance(Duration::from_secs(5)).await;
        let rested = t.predict(0, 4, Instant::now()).expect("samples");
        assert!(rested < Duration::from_micros(10_300), "{rested:?}");
        assert!(rested >= Duration::from_millis(10), "{rested:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn unseen_size_classes_scale_from_the_nearest() {
        let t = tracker();
        for _ in 0..10 {
            t.record_success(0, sample(8, 8, 0));
        }
        let now = Instant::now();
        assert_eq!(size_class(8), 4);
        let bigger = t.predict(0, 32, now).expect("borrowed");
        let smaller = t.predict(0, 2, now).expect("borrowed");
        assert!(bigger.abs_diff(Duration::from_millis(32)) < Duration::from_micros(1));
        assert!(smaller.abs_diff(Duration::from_millis(2)) < Duration::from_micros(1));
    }

    #[tokio::test(start_paused = true)]
    async fn counters_and_quantiles() {
        let t = tracker();
        for ms in 1..=100 {
            t.record_success(0, sample(1, ms, 0));
        }
        t.record_error(0);
        t.record_deadline_miss(0, sample(1, 200, 0));
        t.record_fallback(0);
        let s = t.snapshot(0);
        assert_eq!((s.calls, s.successes, s.errors), (102, 100, 1));
        assert_eq!((s.deadline_misses, s.fallbacks), (1, 1));
        let p50 = s.latency_p50.as_secs_f64();
        assert!((p50 / 0.051 - 1.0).abs() < 1.0 / 32.0, "{p50}");
        assert!(
            s.latency_p99 >= Duration::from_millis(97),
            "{:?}",
            s.latency_p99
        );
    }
}
