//! `scheduler/*` load scenarios: an open-loop mix of 90% low-priority 100 µs tasks and 10%
//! high-priority 10 µs tasks at 80% of two workers' capacity, measuring the queueing delay
//! (submit to start) of each class and the throughput, on the scheduler (with priorities)
//! and on rayon and tokio (which have none: the same stream, one queue).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot_free::Samples;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_scheduler::{Priority, SchedulerConfig, WorkStealingScheduler};

use super::stats::LatencySummary;
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

const WORKERS: usize = 2;
const LOW_SERVICE: Duration = Duration::from_micros(100);
const HIGH_SERVICE: Duration = Duration::from_micros(10);
const HIGH_SHARE: f64 = 0.1;
const LOAD: f64 = 0.8;
const SEED: u64 = 0x7363_6865_645f_7072;

/// Runs the `scheduler/*` load scenarios named in `ids`.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    if !ids.contains(&"scheduler/priority/mixed80") {
        return Ok(());
    }
    let id = "scheduler/priority/mixed80";
    let duration = if opts.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let arrivals = arrivals(duration);
    for subject in ["perflab", "rayon", "tokio"] {
        outcome.record(id, subject, mixed(subject, &arrivals));
    }
    Ok(())
}

/// One arrival: when (from the start), and whether it is a high-priority task.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    at: Duration,
    high: bool,
}

/// A Poisson stream at 80% of the workers' capacity for the mean service time.
fn arrivals(duration: Duration) -> Vec<Arrival> {
    let mean_service =
        HIGH_SHARE * HIGH_SERVICE.as_secs_f64() + (1.0 - HIGH_SHARE) * LOW_SERVICE.as_secs_f64();
    let rate = LOAD * WORKERS as f64 / mean_service;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let mut t = 0.0;
    let mut out = Vec::new();
    loop {
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        t += -u.ln() / rate;
        if t >= duration.as_secs_f64() {
            return out;
        }
        out.push(Arrival {
            at: Duration::from_secs_f64(t),
            high: rng.random_range(0.0..1.0) < HIGH_SHARE,
        });
    }
}

/// Spins for `d`: the tasks are CPU work, not sleeps.
fn busy(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// What every task records.
struct Record {
    high: Samples,
    low: Samples,
    done: AtomicU64,
    last_done_ns: AtomicU64,
}

fn task(record: &Record, origin: Instant, submitted: Instant, high: bool) {
    let delay = submitted.elapsed().as_nanos() as u64;
    if high {
        record.high.push(delay);
        busy(HIGH_SERVICE);
    } else {
        record.low.push(delay);
        busy(LOW_SERVICE);
    }
    record
        .last_done_ns
        .fetch_max(origin.elapsed().as_nanos() as u64, Ordering::Relaxed);
    record.done.fetch_add(1, Ordering::Release);
}

fn mixed(subject: &str, arrivals: &[Arrival]) -> Result<BTreeMap<String, Measure>, String> {
    let record = Arc::new(Record {
        high: Samples::default(),
        low: Samples::default(),
        done: AtomicU64::new(0),
        last_done_ns: AtomicU64::new(0),
    });
    type Submit = Box<dyn Fn(Box<dyn FnOnce() + Send>, bool) -> Result<(), String>>;
    let (submit, _keep): (Submit, Box<dyn std::any::Any>) = match subject {
        "perflab" => {
            let s = Arc::new(
                WorkStealingScheduler::new(SchedulerConfig::with_workers(WORKERS))
                    .map_err(|e| e.to_string())?,
            );
            let s2 = Arc::clone(&s);
            (
                Box::new(move |f, high| {
                    let prio = if high { Priority::High } else { Priority::Low };
                    s2.spawn_with_priority(f, prio)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }),
                Box::new(s),
            )
        }
        "rayon" => {
            let pool = Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(WORKERS)
                    .build()
                    .map_err(|e| e.to_string())?,
            );
            let p2 = Arc::clone(&pool);
            (
                Box::new(move |f, _| {
                    p2.spawn_fifo(f);
                    Ok(())
                }),
                Box::new(pool),
            )
        }
        "tokio" => {
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(WORKERS)
                    .build()
                    .map_err(|source| {
                        ScenarioError::Io {
                            path: PathBuf::from("<tokio runtime>"),
                            source,
                        }
                        .to_string()
                    })?,
            );
            let handle = rt.handle().clone();
            (
                Box::new(move |f, _| {
                    handle.spawn(async move { f() });
                    Ok(())
                }),
                Box::new(rt),
            )
        }
        other => return Err(format!("unknown subject {other}")),
    };
    let origin = Instant::now();
    for a in arrivals {
        let wait = a.at.saturating_sub(origin.elapsed());
        // Sleeping wakes late by tens of µs; the delay is measured from the actual submit.
        if wait > Duration::from_micros(200) {
            std::thread::sleep(wait);
        }
        let (record, high) = (Arc::clone(&record), a.high);
        let submitted = Instant::now();
        submit(
            Box::new(move || task(&record, origin, submitted, high)),
            high,
        )?;
    }
    let n = arrivals.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while record.done.load(Ordering::Acquire) < n {
        if Instant::now() > deadline {
            return Err("tasks did not finish within 60 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = Duration::from_nanos(record.last_done_ns.load(Ordering::Relaxed));
    let high =
        LatencySummary::from_samples(&mut record.high.take()).ok_or("no high-priority task ran")?;
    let low =
        LatencySummary::from_samples(&mut record.low.take()).ok_or("no low-priority task ran")?;
    let mut m = BTreeMap::new();
    m.insert(
        "throughput".to_owned(),
        Measure::point(n as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)),
    );
    m.insert(
        "queue_delay_p99_high".to_owned(),
        Measure::bounded(high.p99),
    );
    m.insert(
        "queue_delay_p50_high".to_owned(),
        Measure::bounded(high.p50),
    );
    m.insert("queue_delay_p99_low".to_owned(), Measure::bounded(low.p99));
    Ok(m)
}

/// Delay samples appended from the worker threads.
mod parking_lot_free {
    use std::sync::Mutex;

    /// A locked vector: one short critical section per task (tens of thousands per second).
    #[derive(Debug, Default)]
    pub(super) struct Samples(Mutex<Vec<u64>>);

    impl Samples {
        pub(super) fn push(&self, v: u64) {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(v);
        }

        pub(super) fn take(&self) -> Vec<u64> {
            std::mem::take(
                &mut *self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        }
    }
}
