//! `events/*` load scenarios: event fan-out through the bus against a tokio broadcast channel and per-subscriber flume channels, and the segmented queue alone against flume and crossbeam.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_events::{
    AdvancedEventBus, Backpressure, BusConfig, EventEnvelope, EventPayload, Pattern,
    SegmentedQueue, SubscriptionOptions, Topic,
};

use super::stats::LatencySummary;
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

const SEED: u64 = 0x6576_656e_7473_5f31;
const SUBSCRIBERS: usize = 16;
/// Queue capacity per subscriber, for every subject (perflab: 16 segments of 256).
const CAPACITY: usize = 4096;
const SEGMENT: usize = 256;
/// One delivery in this many (by event sequence) has its latency sampled.
const SAMPLE_EVERY: u64 = 8;
/// Longest a run may take before it counts as failed.
const TIME_LIMIT: Duration = Duration::from_secs(60);

const KINDS: [&str; 8] = ["build", "edit", "lsp", "test", "git", "ai", "fs", "term"];
const MODULES: usize = 25;
const FILES: usize = 50;

/// Runs the selected `events/*` scenarios.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let messages = if opts.quick { 100_000 } else { 1_000_000 };
    let items = if opts.quick { 1_000_000 } else { 10_000_000 };
    let mut fanout = None;
    for &id in ids {
        let Some(spec) = crate::catalog::events::SCENARIOS
            .iter()
            .find(|s| s.id == id)
        else {
            continue;
        };
        for &subject in spec.subjects {
            let res = if let Some(batch) = id.strip_prefix("events/fanout/batch") {
                let batch: usize = batch.parse().unwrap_or(1);
                let w = fanout.get_or_insert_with(|| Workload::new(messages));
                fanout_run(subject, w, batch)
            } else {
                spsc_run(subject, items)
            };
            outcome.record(id, subject, res);
        }
    }
    Ok(())
}

/// The subjects and patterns of the `events/*` scenarios, the same in every run (seeded):
/// 10,000 subjects `ide.<kind>.<module>.<file>` and 64 patterns, 8 `ide.<kind>.>` (every
/// subject matches one), 16 `ide.*.<module>.>`, 20 `ide.<kind>.<module>.*` and 20
/// `ide.<kind>.*.<file>`: about 1.8 matches a subject.
pub fn routing_workload() -> (Vec<String>, Vec<Pattern>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let mut subjects = Vec::with_capacity(KINDS.len() * MODULES * FILES);
    for kind in KINDS {
        for m in 0..MODULES {
            for f in 0..FILES {
                subjects.push(format!("ide.{kind}.m{m:02}.f{f:02}"));
            }
        }
    }
    let mut texts: Vec<String> = KINDS.iter().map(|k| format!("ide.{k}.>")).collect();
    texts.extend((0..16).map(|m| format!("ide.*.m{m:02}.>")));
    for _ in 0..20 {
        let k = KINDS[rng.random_range(0..KINDS.len())];
        texts.push(format!("ide.{k}.m{:02}.*", rng.random_range(0..MODULES)));
    }
    for _ in 0..20 {
        let k = KINDS[rng.random_range(0..KINDS.len())];
        texts.push(format!("ide.{k}.*.f{:02}", rng.random_range(0..FILES)));
    }
    let patterns = texts
        .iter()
        .map(|t| Pattern::new(t).expect("generated patterns are valid"))
        .collect();
    (subjects, patterns)
}

/// The fan-out workload: 10,000 subjects `ide.<kind>.<module>.<file>`, 64 patterns (four
/// per subscriber), and a seeded uniform sequence of subjects to publish.
struct Workload {
    subjects: Vec<String>,
    patterns: Vec<Pattern>,
    /// Per subject: the subscriber of every matching pattern (one entry per pattern).
    routes: Vec<Vec<u8>>,
    /// Subject index of each message.
    sequence: Vec<u32>,
    /// Deliveries each subscriber must receive.
    expected: [u64; SUBSCRIBERS],
}

impl Workload {
    fn new(messages: usize) -> Self {
        let (subjects, patterns) = routing_workload();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED ^ 1);
        let routes: Vec<Vec<u8>> = subjects
            .iter()
            .map(|s| {
                (0..patterns.len())
                    .filter(|&p| patterns[p].matches(s))
                    .map(|p| (p % SUBSCRIBERS) as u8)
                    .collect()
            })
            .collect();
        let sequence: Vec<u32> = (0..messages)
            .map(|_| rng.random_range(0..subjects.len() as u32))
            .collect();
        let mut expected = [0u64; SUBSCRIBERS];
        for &s in &sequence {
            for &sub in &routes[s as usize] {
                expected[sub as usize] += 1;
            }
        }
        Self {
            subjects,
            patterns,
            routes,
            sequence,
            expected,
        }
    }

    fn deliveries(&self) -> u64 {
        self.expected.iter().sum()
    }

    /// The envelopes to publish, built before the clock starts, cut into batches.
    fn batches(&self, batch: usize) -> Vec<Vec<(u32, EventEnvelope)>> {
        let all: Vec<(u32, EventEnvelope)> = self
            .sequence
            .iter()
            .map(|&s| {
                let e = EventEnvelope::new("ide.event", EventPayload::Empty)
                    .with_routing_key(self.subjects[s as usize].clone());
                (s, e)
            })
            .collect();
        let mut out = Vec::with_capacity(all.len() / batch + 1);
        let mut it = all.into_iter().peekable();
        while it.peek().is_some() {
            out.push(it.by_ref().take(batch).collect());
        }
        out
    }
}

/// Numbers and timestamps a batch the way the bus does on publish, for the anchors that
/// have no bus: `sequence` continues from the previous batch.
fn stamp(
    batch: Vec<(u32, EventEnvelope)>,
    sequence: &mut u64,
) -> impl Iterator<Item = (u32, Arc<EventEnvelope>)> + '_ {
    let now = Instant::now();
    batch.into_iter().map(move |(s, mut e)| {
        *sequence += 1;
        e.metadata.sequence = *sequence;
        e.metadata.published_at = Some(now);
        (s, Arc::new(e))
    })
}

/// What one subscriber received, and when everybody was done.
struct Sink {
    count: AtomicU64,
    expected: u64,
    latencies: Mutex<Vec<u64>>,
}

struct Finish {
    remaining: AtomicUsize,
    at: Mutex<Option<Instant>>,
}

impl Sink {
    fn deliver(&self, e: &EventEnvelope, finish: &Finish) {
        if e.metadata.sequence.is_multiple_of(SAMPLE_EVERY)
            && let Some(at) = e.metadata.published_at
        {
            let ns = u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ns);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == self.expected
            && finish.remaining.fetch_sub(1, Ordering::AcqRel) == 1
        {
            *finish.at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }
}

fn sinks(w: &Workload) -> (Vec<Arc<Sink>>, Arc<Finish>) {
    let sinks: Vec<Arc<Sink>> = w
        .expected
        .iter()
        .map(|&expected| {
            Arc::new(Sink {
                count: AtomicU64::new(0),
                expected,
                latencies: Mutex::new(Vec::with_capacity((expected / SAMPLE_EVERY) as usize + 16)),
            })
        })
        .collect();
    let finish = Arc::new(Finish {
        remaining: AtomicUsize::new(w.expected.iter().filter(|&&e| e > 0).count()),
        at: Mutex::new(None),
    });
    (sinks, finish)
}

/// Waits for the last expected delivery; its time.
fn wait_finish(finish: &Finish, start: Instant) -> Result<Instant, String> {
    loop {
        if let Some(at) = *finish.at.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(at);
        }
        if start.elapsed() > TIME_LIMIT {
            return Err(format!(
                "{} subscribers still short after {TIME_LIMIT:?}",
                finish.remaining.load(Ordering::Acquire)
            ));
        }
        thread::sleep(Duration::from_micros(200));
    }
}

fn measures(
    delivered: u64,
    elapsed: Duration,
    sinks: &[Arc<Sink>],
    dropped: u64,
) -> Result<BTreeMap<String, Measure>, String> {
    let mut samples: Vec<u64> = sinks
        .iter()
        .flat_map(|s| std::mem::take(&mut *s.latencies.lock().unwrap_or_else(|p| p.into_inner())))
        .collect();
    let lat = LatencySummary::from_samples(&mut samples).ok_or("no delivery sampled")?;
    let mut m = BTreeMap::new();
    m.insert(
        "throughput".to_owned(),
        Measure::point(delivered as f64 / elapsed.as_secs_f64()),
    );
    m.insert("latency_p50".to_owned(), Measure::bounded(lat.p50));
    m.insert("latency_p99".to_owned(), Measure::bounded(lat.p99));
    m.insert("dropped".to_owned(), Measure::point(dropped as f64));
    Ok(m)
}

fn fanout_run(
    subject: &str,
    w: &Workload,
    batch: usize,
) -> Result<BTreeMap<String, Measure>, String> {
    match subject {
        "perflab" => fanout_perflab(w, batch),
        "tokio_broadcast" => fanout_broadcast(w, batch),
        "flume" => fanout_flume(w, batch),
        other => Err(format!("unknown subject {other}")),
    }
}

/// The bus with its default processing threads; Block policy so nothing is lost (the
/// publisher waits when a queue is full, like a bounded channel's `send`).
fn fanout_perflab(w: &Workload, batch: usize) -> Result<BTreeMap<String, Measure>, String> {
    let bus = AdvancedEventBus::new(BusConfig::default()).map_err(|e| e.to_string())?;
    let (sinks, finish) = sinks(w);
    for (p, pattern) in w.patterns.iter().enumerate() {
        let (sink, finish) = (Arc::clone(&sinks[p % SUBSCRIBERS]), Arc::clone(&finish));
        bus.subscribe_with(
            Topic::Pattern(pattern.clone()),
            Arc::new(move |e: &EventEnvelope| sink.deliver(e, &finish)),
            SubscriptionOptions {
                name: format!("sub{}", p % SUBSCRIBERS),
                backpressure: Backpressure::Block {
                    timeout: TIME_LIMIT,
                },
                segment_size: SEGMENT,
                max_segments: CAPACITY / SEGMENT,
            },
        )
        .map_err(|e| e.to_string())?;
    }
    let batches = w.batches(batch);
    let start = Instant::now();
    for b in batches {
        if batch == 1 {
            for (_, e) in b {
                bus.publish_blocking(e).map_err(|e| e.to_string())?;
            }
        } else {
            let events = b.into_iter().map(|(_, e)| e).collect();
            bus.publish_batch_blocking(events)
                .map_err(|e| e.to_string())?;
        }
    }
    let end = wait_finish(&finish, start)?;
    let q = bus.queue_stats();
    if q.delivered != w.deliveries() {
        return Err(format!("delivered {} of {}", q.delivered, w.deliveries()));
    }
    bus.shutdown(Duration::from_secs(5));
    measures(q.delivered, end - start, &sinks, q.dropped)
}

/// Per-subscriber bounded flume channels (same capacity), one receiving thread each, fed
/// by a router that costs nothing: the matching subscribers of every subject are
/// precomputed.
fn fanout_flume(w: &Workload, batch: usize) -> Result<BTreeMap<String, Measure>, String> {
    let (sinks, finish) = sinks(w);
    let mut senders = Vec::with_capacity(SUBSCRIBERS);
    let mut threads = Vec::with_capacity(SUBSCRIBERS);
    for sink in &sinks {
        let (tx, rx) = flume::bounded::<Arc<EventEnvelope>>(CAPACITY);
        senders.push(tx);
        let (sink, finish) = (Arc::clone(sink), Arc::clone(&finish));
        threads.push(thread::spawn(move || {
            for e in rx.iter() {
                sink.deliver(&e, &finish);
            }
        }));
    }
    let batches = w.batches(batch);
    let start = Instant::now();
    let mut sequence = 0;
    for b in batches {
        for (s, e) in stamp(b, &mut sequence) {
            for &sub in &w.routes[s as usize] {
                senders[sub as usize]
                    .send(Arc::clone(&e))
                    .map_err(|_| "receiver gone".to_owned())?;
            }
        }
    }
    let end = wait_finish(&finish, start)?;
    drop(senders);
    for t in threads {
        t.join().map_err(|_| "receiver panicked".to_owned())?;
    }
    measures(w.deliveries(), end - start, &sinks, 0)
}

/// One tokio broadcast channel (same capacity), one receiving thread per subscriber that
/// keeps the messages matching its patterns (precomputed per subject). Slow receivers lag:
/// the skipped messages are counted in `dropped` and the run ends when every receiver has
/// seen the channel close.
fn fanout_broadcast(w: &Workload, batch: usize) -> Result<BTreeMap<String, Measure>, String> {
    let (sinks, finish) = sinks(w);
    let (tx, _) = tokio::sync::broadcast::channel::<(u32, Arc<EventEnvelope>)>(CAPACITY);
    let wants: Arc<Vec<[u8; SUBSCRIBERS]>> = Arc::new(
        w.routes
            .iter()
            .map(|r| {
                let mut n = [0u8; SUBSCRIBERS];
                for &sub in r {
                    n[sub as usize] += 1;
                }
                n
            })
            .collect(),
    );
    let lagged = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::with_capacity(SUBSCRIBERS);
    for (i, sink) in sinks.iter().enumerate() {
        let mut rx = tx.subscribe();
        let (sink, finish, wants, lagged) = (
            Arc::clone(sink),
            Arc::clone(&finish),
            Arc::clone(&wants),
            Arc::clone(&lagged),
        );
        threads.push(thread::spawn(move || {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.blocking_recv() {
                    Ok((s, e)) => {
                        for _ in 0..wants[s as usize][i] {
                            sink.deliver(&e, &finish);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }));
    }
    let batches = w.batches(batch);
    let start = Instant::now();
    let mut sequence = 0;
    for b in batches {
        for message in stamp(b, &mut sequence) {
            tx.send(message).map_err(|_| "no receiver".to_owned())?;
        }
    }
    drop(tx);
    for t in threads {
        t.join().map_err(|_| "receiver panicked".to_owned())?;
    }
    let end = Instant::now();
    let delivered: u64 = sinks.iter().map(|s| s.count.load(Ordering::Relaxed)).sum();
    measures(
        delivered,
        end - start,
        &sinks,
        lagged.load(Ordering::Relaxed),
    )
}

/// One producer thread and one consumer (this thread) move `items` integers through a
/// queue of 1,024 slots.
fn spsc_run(subject: &str, items: u64) -> Result<BTreeMap<String, Measure>, String> {
    const SLOTS: usize = 1024;
    let start = Instant::now();
    let sum = match subject {
        "perflab" => {
            let q = Arc::new(SegmentedQueue::<u64>::new(64, SLOTS / 64));
            let producer = {
                let q = Arc::clone(&q);
                thread::spawn(move || {
                    for i in 0..items {
                        let mut item = i;
                        while let Err(e) = q.push(item) {
                            item = e.into_inner();
                            thread::yield_now();
                        }
                    }
                })
            };
            let (mut got, mut sum) = (0, 0u64);
            let mut buf = VecDeque::with_capacity(64);
            while got < items {
                if q.pop_segment(&mut buf) == 0 {
                    thread::yield_now();
                    continue;
                }
                got += buf.len() as u64;
                sum = buf.drain(..).fold(sum, u64::wrapping_add);
            }
            producer
                .join()
                .map_err(|_| "producer panicked".to_owned())?;
            sum
        }
        "flume" => {
            let (tx, rx) = flume::bounded::<u64>(SLOTS);
            pump(items, move |i| tx.send(i).is_ok(), rx)?
        }
        "crossbeam" => {
            let (tx, rx) = crossbeam_channel::bounded::<u64>(SLOTS);
            pump(items, move |i| tx.send(i).is_ok(), rx)?
        }
        other => return Err(format!("unknown subject {other}")),
    };
    let elapsed = start.elapsed();
    if sum != (0..items).fold(0u64, u64::wrapping_add) {
        return Err("items lost or duplicated".to_owned());
    }
    let mut m = BTreeMap::new();
    m.insert(
        "throughput".to_owned(),
        Measure::point(items as f64 / elapsed.as_secs_f64()),
    );
    Ok(m)
}

/// Sends `0..items` from a producer thread through `send` and sums what `received` yields
/// until the channel closes (the sender is dropped with the producer's closure).
fn pump(
    items: u64,
    send: impl Fn(u64) -> bool + Send + 'static,
    received: impl IntoIterator<Item = u64>,
) -> Result<u64, String> {
    let producer = thread::spawn(move || (0..items).all(send));
    let sum = received.into_iter().fold(0u64, u64::wrapping_add);
    match producer.join() {
        Ok(true) => Ok(sum),
        Ok(false) => Err("the receiver went away".to_owned()),
        Err(_) => Err("producer panicked".to_owned()),
    }
}
