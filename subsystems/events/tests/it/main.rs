//! Integration tests of rust-ai-ide-events: routing, backpressure policies, panics, and seeded stress runs.

mod backpressure;
mod routing;
mod stress;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rust_ai_ide_events::{AdvancedEventBus, BusConfig, EventEnvelope, EventPayload};

/// Long enough for any honest wait on a loaded 2-core machine; only reached on a bug.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn bus(threads: usize) -> AdvancedEventBus {
    AdvancedEventBus::new(BusConfig {
        processing_threads: threads,
        ..BusConfig::default()
    })
    .expect("bus")
}

/// An event of type `ty` with routing key `key` and a number as payload.
pub(crate) fn event(ty: &str, key: Option<&str>, n: u64) -> EventEnvelope {
    let e = EventEnvelope::new(ty, EventPayload::Json(serde_json::json!(n)));
    match key {
        Some(k) => e.with_routing_key(k),
        None => e,
    }
}

pub(crate) fn number(e: &EventEnvelope) -> u64 {
    match &e.payload {
        EventPayload::Json(v) => v.as_u64().expect("numeric payload"),
        other => panic!("unexpected payload {other:?}"),
    }
}

/// A subscriber that records the numbers it sees.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) seen: Mutex<Vec<u64>>,
    pub(crate) count: AtomicU64,
}

impl Recorder {
    pub(crate) fn handler(self: &Arc<Self>) -> Arc<dyn rust_ai_ide_events::EventSubscriber> {
        let me = Arc::clone(self);
        Arc::new(move |e: &EventEnvelope| {
            me.seen.lock().push(number(e));
            me.count.fetch_add(1, Ordering::SeqCst);
        })
    }

    pub(crate) fn seen(&self) -> Vec<u64> {
        self.seen.lock().clone()
    }

    /// Waits until at least `n` events arrived; whether they did within [`PATIENCE`].
    pub(crate) fn wait_for(&self, n: u64) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while self.count.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

/// SplitMix64: a tiny seeded generator for reproducible workloads.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
