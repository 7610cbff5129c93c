//! Subscribers, their options and backpressure policies, and how a processing thread runs one.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::envelope::{EventEnvelope, EventType, SubscriptionId};
use crate::error::{Refusal, RefusalReason, SubscribeError};
use crate::histogram::{Counts, Histogram};
use crate::mailbox::Mailbox;
use crate::pattern::Pattern;
use crate::queue::SegmentedQueue;
use crate::stats::SubscriptionStats;

/// Receives events on one of the bus's processing threads. A subscriber is called by at
/// most one thread at a time, in publish order; a panic is caught, counted, and the
/// subscriber keeps receiving the next events.
pub trait EventSubscriber: Send + Sync {
    /// Handles one event.
    fn on_event(&self, event: &EventEnvelope);
}

impl<F> EventSubscriber for F
where
    F: Fn(&EventEnvelope) + Send + Sync,
{
    fn on_event(&self, event: &EventEnvelope) {
        self(event);
    }
}

/// What a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Every event of exactly this type.
    EventType(EventType),
    /// Every event whose routing key matches the pattern.
    Pattern(Pattern),
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EventType(t) => write!(f, "type {t}"),
            Self::Pattern(p) => write!(f, "pattern {p}"),
        }
    }
}

/// What a publish does when a subscriber's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// The publishing call waits for space in this subscriber's queue, at most `timeout`
    /// per call, after delivering to every other subscriber. Events that still do not fit
    /// are refused: counted in `refused`/`dropped` and reported by
    /// [`crate::PublishError::Refused`] naming the subscriber.
    Block {
        /// Longest wait per publish call.
        timeout: Duration,
    },
    /// The oldest queued event is discarded to make room: never blocks, never fails; each
    /// discarded event counts in `lag` (and `dropped`).
    DropOldest,
    /// The new event is refused at once: counted in `refused`/`dropped`, and the call
    /// returns [`crate::PublishError::Refused`] naming the subscriber.
    Error,
}

/// How a subscription is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Shown in stats and errors; empty means `subscriber-<id>`.
    pub name: String,
    /// Policy when the queue is full.
    pub backpressure: Backpressure,
    /// Events per queue segment.
    pub segment_size: usize,
    /// Segments per queue (capacity = `segment_size × max_segments`).
    pub max_segments: usize,
}

impl Default for SubscriptionOptions {
    /// Drop-oldest over a 4,096-event queue (16 segments of 256): a slow subscriber lags
    /// (visibly), the publisher never waits.
    fn default() -> Self {
        Self {
            name: String::new(),
            backpressure: Backpressure::DropOldest,
            segment_size: 256,
            max_segments: 16,
        }
    }
}

impl SubscriptionOptions {
    pub(crate) fn validate(&self) -> Result<(), SubscribeError> {
        if self.segment_size == 0 || self.max_segments == 0 {
            return Err(SubscribeError::InvalidOptions(
                "segment_size and max_segments must be at least 1".to_owned(),
            ));
        }
        if self.segment_size.checked_mul(self.max_segments).is_none() {
            return Err(SubscribeError::InvalidOptions(
                "queue capacity overflows".to_owned(),
            ));
        }
        Ok(())
    }
}

pub(crate) type Event = Arc<EventEnvelope>;

/// One live (or draining) subscription.
pub(crate) struct Subscription {
    pub(crate) id: SubscriptionId,
    pub(crate) name: String,
    pub(crate) topic: Topic,
    pub(crate) backpressure: Backpressure,
    subscriber: Arc<dyn EventSubscriber>,
    pub(crate) mailbox: Mailbox<Event>,
    /// Events taken from the queue but not handled yet when a run ran out of budget; only
    /// the thread holding the mailbox's ticket touches it.
    carry: parking_lot::Mutex<VecDeque<Event>>,
    counters: Counters,
    latency: Histogram,
}

/// Per-subscription counters; publishers add to the first three, the processing thread
/// to the last two.
#[derive(Default)]
struct Counters {
    enqueued: AtomicU64,
    lag: AtomicU64,
    refused: AtomicU64,
    delivered: AtomicU64,
    panicked: AtomicU64,
}

/// The non-waiting part of an offer: what the caller still has to do.
pub(crate) enum Offer {
    /// Everything queued (or evicted per policy).
    Done,
    /// Refused under [`Backpressure::Error`].
    Refused(Refusal),
    /// [`Backpressure::Block`]: these did not fit; wait, then offer again.
    Wait(VecDeque<Event>),
}

impl Subscription {
    pub(crate) fn new(
        id: SubscriptionId,
        topic: Topic,
        subscriber: Arc<dyn EventSubscriber>,
        options: SubscriptionOptions,
    ) -> Self {
        let name = if options.name.is_empty() {
            format!("subscriber-{}", id.get())
        } else {
            options.name
        };
        Self {
            id,
            name,
            topic,
            backpressure: options.backpressure,
            subscriber,
            mailbox: Mailbox::new(SegmentedQueue::new(
                options.segment_size,
                options.max_segments,
            )),
            carry: parking_lot::Mutex::new(VecDeque::new()),
            counters: Counters::default(),
            latency: Histogram::new(),
        }
    }

    /// Queues one event without waiting; `Ok(true)` when the caller must schedule a run.
    pub(crate) fn offer_one(&self, event: Event) -> (Offer, bool) {
        let q = &self.mailbox.queue;
        match self.backpressure {
            Backpressure::DropOldest => match q.force_push(event) {
                Ok(evicted) => {
                    if evicted.is_some() {
                        self.counters.lag.fetch_add(1, Ordering::Relaxed);
                    }
                    self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                    (Offer::Done, self.mailbox.after_push())
                }
                Err(_) => (Offer::Done, false),
            },
            Backpressure::Error | Backpressure::Block { .. } => match q.push(event) {
                Ok(()) => {
                    self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                    (Offer::Done, self.mailbox.after_push())
                }
                Err(crate::PushError::Full(event)) => (self.full(VecDeque::from([event])), false),
                Err(_) => (Offer::Done, false),
            },
        }
    }

    /// Queues a batch without waiting; the bool says whether to schedule a run.
    pub(crate) fn offer_many(&self, mut events: VecDeque<Event>) -> (Offer, bool) {
        let q = &self.mailbox.queue;
        let total = events.len() as u64;
        let queued = match self.backpressure {
            Backpressure::DropOldest => match q.force_push_many(&mut events) {
                Ok(evicted) => {
                    self.counters
                        .lag
                        .fetch_add(evicted as u64, Ordering::Relaxed);
                    total
                }
                Err(_) => 0,
            },
            Backpressure::Error | Backpressure::Block { .. } => {
                q.push_many(&mut events).unwrap_or(0) as u64
            }
        };
        if queued == 0 && !events.is_empty() && q.is_closed() {
            return (Offer::Done, false);
        }
        self.counters.enqueued.fetch_add(queued, Ordering::Relaxed);
        let schedule = queued > 0 && self.mailbox.after_push();
        if events.is_empty() {
            (Offer::Done, schedule)
        } else {
            (self.full(events), schedule)
        }
    }

    /// Waits for space (up to the Block timeout from `start`) and queues `events`,
    /// calling `schedule` whenever a push took the run ticket; a refusal for what never fit.
    pub(crate) fn wait_and_offer(
        &self,
        mut events: VecDeque<Event>,
        start: Instant,
        schedule: &mut impl FnMut(),
    ) -> Option<Refusal> {
        let timeout = self.block_timeout();
        let deadline = start + timeout;
        let q = &self.mailbox.queue;
        while !events.is_empty() {
            if !q.wait_for_space(deadline) {
                break;
            }
            if !self.push_waited(&mut events, schedule) {
                return None;
            }
        }
        self.refuse_rest(events, RefusalReason::Timeout(timeout))
    }

    /// The async twin of [`wait_and_offer`](Self::wait_and_offer).
    pub(crate) async fn wait_and_offer_async(
        &self,
        mut events: VecDeque<Event>,
        start: Instant,
        schedule: &mut impl FnMut(),
    ) -> Option<Refusal> {
        let timeout = self.block_timeout();
        let deadline = start + timeout;
        let q = &self.mailbox.queue;
        while !events.is_empty() {
            if !q.space_available(deadline).await {
                break;
            }
            if !self.push_waited(&mut events, schedule) {
                return None;
            }
        }
        self.refuse_rest(events, RefusalReason::Timeout(timeout))
    }

    /// Runs queued events through the subscriber, at most `budget` events or about `slice`
    /// of time; whether the caller must run it again (it still holds the ticket).
    pub(crate) fn run(&self, budget: usize, slice: Duration) -> bool {
        let mut buf = self.carry.lock();
        let start = Instant::now();
        let (mut delivered, mut panicked, mut handled) = (0u64, 0u64, 0usize);
        let mut out_of_budget = false;
        while !out_of_budget && (!buf.is_empty() || self.mailbox.queue.pop_segment(&mut buf) > 0) {
            while let Some(event) = buf.pop_front() {
                let now = Instant::now();
                if let Some(at) = event.metadata.published_at {
                    self.latency.record(now.saturating_duration_since(at));
                }
                let subscriber = &self.subscriber;
                match catch_unwind(AssertUnwindSafe(|| subscriber.on_event(&event))) {
                    Ok(()) => delivered += 1,
                    Err(_) => panicked += 1,
                }
                handled += 1;
                if handled >= budget || now.duration_since(start) >= slice {
                    out_of_budget = true;
                    break;
                }
            }
        }
        self.counters
            .delivered
            .fetch_add(delivered, Ordering::Relaxed);
        self.counters
            .panicked
            .fetch_add(panicked, Ordering::Relaxed);
        if !buf.is_empty() {
            // Keep the ticket: unhandled events wait in `carry`.
            return true;
        }
        drop(buf);
        self.mailbox.finish_run()
    }

    /// Whether nothing is queued, carried or running.
    pub(crate) fn is_idle(&self) -> bool {
        !self.mailbox.is_scheduled() && self.mailbox.queue.is_empty()
    }

    pub(crate) fn stats(&self) -> SubscriptionStats {
        let c = &self.counters;
        let lag = c.lag.load(Ordering::Relaxed);
        let refused = c.refused.load(Ordering::Relaxed);
        let latency = self.latency.snapshot();
        SubscriptionStats {
            id: self.id,
            name: self.name.clone(),
            topic: self.topic.to_string(),
            backpressure: self.backpressure,
            enqueued: c.enqueued.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            lag,
            refused,
            dropped: lag + refused,
            queue_depth: self.mailbox.queue.len(),
            capacity: self.mailbox.queue.capacity(),
            latency_p50: latency.quantile(0.5),
            latency_p99: latency.quantile(0.99),
        }
    }

    pub(crate) fn latency_counts(&self) -> Counts {
        self.latency.snapshot()
    }

    fn block_timeout(&self) -> Duration {
        match self.backpressure {
            Backpressure::Block { timeout } => timeout,
            Backpressure::DropOldest | Backpressure::Error => Duration::ZERO,
        }
    }

    /// What to do with events that did not fit without waiting.
    fn full(&self, events: VecDeque<Event>) -> Offer {
        match self.backpressure {
            Backpressure::Block { .. } => Offer::Wait(events),
            Backpressure::DropOldest | Backpressure::Error => self
                .refuse_rest(events, RefusalReason::QueueFull)
                .map_or(Offer::Done, Offer::Refused),
        }
    }

    /// Pushes after a wait; false when the queue was closed (unsubscribed meanwhile).
    fn push_waited(&self, events: &mut VecDeque<Event>, schedule: &mut impl FnMut()) -> bool {
        match self.mailbox.queue.push_many(events) {
            Ok(n) => {
                self.counters
                    .enqueued
                    .fetch_add(n as u64, Ordering::Relaxed);
                if n > 0 && self.mailbox.after_push() {
                    schedule();
                }
                true
            }
            Err(_) => false,
        }
    }

    fn refuse_rest(&self, events: VecDeque<Event>, reason: RefusalReason) -> Option<Refusal> {
        if events.is_empty() {
            return None;
        }
        self.counters
            .refused
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Some(Refusal {
            subscription: self.id,
            subscriber: self.name.clone(),
            reason,
            events: events.len(),
        })
    }
}
