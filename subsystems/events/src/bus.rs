//! `AdvancedEventBus`: routing by event type and routing-key pattern, per-subscriber queues, processing threads.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};

use crate::envelope::{EventEnvelope, EventType, SubscriptionId};
use crate::error::{
    BatchPublishError, EventBusError, PublishError, Refusal, SubscribeError, UnsubscribeError,
};
use crate::histogram::Counts;
use crate::pattern::{Pattern, PatternTrie};
use crate::stats::{QueueStats, SubscriberStats};
use crate::subscription::{
    Event, EventSubscriber, Offer, Subscription, SubscriptionOptions, Topic,
};

/// How a bus is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Threads that run subscribers (at least 1; default: the available parallelism, at
    /// least 2, so one slow handler never holds every thread).
    pub processing_threads: usize,
    /// Most routing keys remembered by the subject → subscribers cache; when it is full it
    /// is emptied and refilled (the cache is also dropped on every (un)subscribe).
    pub route_cache_capacity: usize,
    /// Most events a subscriber handles per turn before its thread moves on.
    pub run_budget: usize,
    /// Longest turn of one subscriber before its thread moves on (checked between events).
    pub run_slice: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            processing_threads: thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            route_cache_capacity: 65_536,
            run_budget: 1024,
            run_slice: Duration::from_millis(1),
        }
    }
}

/// An event bus: publishers route [`EventEnvelope`]s by type and routing key into one
/// bounded [`crate::SegmentedQueue`] per subscription; processing threads drain the
/// queues and call the subscribers.
///
/// Routing: type subscriptions are one hash lookup; pattern subscriptions are a walk of a
/// [`PatternTrie`] over all patterns, remembered per routing key until the next
/// (un)subscribe. Scheduling: a subscription with queued events sits once in a ready
/// queue; a processing thread takes it, handles up to [`BusConfig::run_budget`] events
/// (or [`BusConfig::run_slice`]), and puts it back if more remain, so each subscriber is
/// called in order by one thread at a time and a slow one only ever occupies one thread.
pub struct AdvancedEventBus {
    shared: Arc<Shared>,
    processing_threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    config: BusConfig,
    routes: RwLock<Arc<RouteTable>>,
    registry: Mutex<Registry>,
    ready: Sender<Job>,
    closed: AtomicBool,
    next_id: AtomicU64,
    sequence: AtomicU64,
    published: AtomicU64,
    unrouted: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

enum Job {
    Run(Arc<Subscription>),
    Stop,
}

#[derive(Default)]
struct Registry {
    live: BTreeMap<SubscriptionId, Arc<Subscription>>,
    /// Unsubscribed, still draining queued events.
    draining: Vec<Arc<Subscription>>,
    /// Totals of fully drained removed subscriptions.
    retired: QueueStats,
    retired_latency: Option<Counts>,
}

/// An immutable routing snapshot, replaced on every (un)subscribe; its cache dies with it.
struct RouteTable {
    subs: Vec<Arc<Subscription>>,
    by_type: HashMap<EventType, Vec<u32>>,
    trie: PatternTrie<u32>,
    cache: RwLock<HashMap<Box<str>, Arc<[u32]>>>,
    cache_capacity: usize,
    none: Arc<[u32]>,
}

/// Refusals so far and the Block waits still to do for one publish call.
struct Pending {
    start: Instant,
    refusals: Vec<Refusal>,
    waits: Vec<(Arc<Subscription>, VecDeque<Event>)>,
}

impl fmt::Debug for AdvancedEventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdvancedEventBus")
            .field("config", &self.shared.config)
            .field("subscriptions", &self.shared.registry.lock().live.len())
            .finish()
    }
}

impl AdvancedEventBus {
    /// A bus with `config`, its processing threads started.
    pub fn new(config: BusConfig) -> Result<Self, EventBusError> {
        if config.processing_threads == 0 || config.run_budget == 0 {
            return Err(EventBusError::InvalidConfig(
                "processing_threads and run_budget must be at least 1".to_owned(),
            ));
        }
        let (ready, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            routes: RwLock::new(Arc::new(RouteTable::build(
                &BTreeMap::new(),
                config.route_cache_capacity,
            ))),
            config,
            registry: Mutex::new(Registry::default()),
            ready,
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            sequence: AtomicU64::new(0),
            published: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        });
        let bus = Self {
            shared: Arc::clone(&shared),
            processing_threads: Mutex::new(Vec::new()),
        };
        for i in 0..shared.config.processing_threads {
            let (shared, rx) = (Arc::clone(&shared), rx.clone());
            let handle = thread::Builder::new()
                .name(format!("event-bus-{i}"))
                .spawn(move || processing_loop(&shared, &rx))
                .map_err(EventBusError::Spawn)?;
            bus.processing_threads.lock().push(handle);
        }
        Ok(bus)
    }

    /// Publishes one event to every matching subscription and returns once it is queued
    /// for each (waiting only for [`crate::Backpressure::Block`] subscribers whose queue
    /// is full, at most their timeout).
    pub async fn publish(&self, event: EventEnvelope) -> Result<(), PublishError> {
        let pending = self.offer_one(event)?;
        self.finish_async(pending)
            .await
            .map_err(|refusals| PublishError::Refused { refusals })
    }

    /// [`publish`](Self::publish) for threads outside async code: Block waits park the thread.
    pub fn publish_blocking(&self, event: EventEnvelope) -> Result<(), PublishError> {
        let pending = self.offer_one(event)?;
        self.finish(pending)
            .map_err(|refusals| PublishError::Refused { refusals })
    }

    /// Publishes `events` in order: every routing key is checked first (one bad key
    /// publishes nothing), then each subscription gets its share of the batch with one
    /// queue operation.
    pub async fn publish_batch(&self, events: Vec<EventEnvelope>) -> Result<(), BatchPublishError> {
        let pending = self.offer_batch(events)?;
        self.finish_async(pending)
            .await
            .map_err(|refusals| BatchPublishError::Refused { refusals })
    }

    /// [`publish_batch`](Self::publish_batch) for threads outside async code.
    pub fn publish_batch_blocking(
        &self,
        events: Vec<EventEnvelope>,
    ) -> Result<(), BatchPublishError> {
        let pending = self.offer_batch(events)?;
        self.finish(pending)
            .map_err(|refusals| BatchPublishError::Refused { refusals })
    }

    /// Subscribes to every event of `event_type`, with default options.
    pub async fn subscribe(
        &self,
        event_type: EventType,
        subscriber: Arc<dyn EventSubscriber>,
    ) -> Result<SubscriptionId, SubscribeError> {
        self.subscribe_with(
            Topic::EventType(event_type),
            subscriber,
            SubscriptionOptions::default(),
        )
    }

    /// Subscribes to every event whose routing key matches `pattern`, with default options.
    pub async fn subscribe_pattern(
        &self,
        pattern: &str,
        subscriber: Arc<dyn EventSubscriber>,
    ) -> Result<SubscriptionId, SubscribeError> {
        self.subscribe_with(
            Topic::Pattern(Pattern::new(pattern)?),
            subscriber,
            SubscriptionOptions::default(),
        )
    }

    /// Subscribes to `topic` with `options`; takes effect for events published after it
    /// returns.
    pub fn subscribe_with(
        &self,
        topic: Topic,
        subscriber: Arc<dyn EventSubscriber>,
        options: SubscriptionOptions,
    ) -> Result<SubscriptionId, SubscribeError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(SubscribeError::Closed);
        }
        options.validate()?;
        let id = SubscriptionId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let sub = Arc::new(Subscription::new(id, topic, subscriber, options));
        let mut reg = self.shared.registry.lock();
        reg.live.insert(id, sub);
        self.shared.rebuild(&reg);
        Ok(id)
    }

    /// Removes a subscription: later publishes skip it; events already in its queue are
    /// still delivered; a publisher blocked on its full queue stops waiting.
    pub async fn unsubscribe(
        &self,
        subscription_id: SubscriptionId,
    ) -> Result<(), UnsubscribeError> {
        self.unsubscribe_now(subscription_id)
    }

    /// [`unsubscribe`](Self::unsubscribe) without a future.
    pub fn unsubscribe_now(&self, subscription_id: SubscriptionId) -> Result<(), UnsubscribeError> {
        let mut reg = self.shared.registry.lock();
        let sub = reg
            .live
            .remove(&subscription_id)
            .ok_or(UnsubscribeError::NotFound(subscription_id))?;
        self.shared.rebuild(&reg);
        sub.mailbox.queue.close();
        reg.draining.push(sub);
        Ok(())
    }

    /// Per-subscription counters of the live subscriptions.
    pub fn subscriber_stats(&self) -> SubscriberStats {
        let reg = self.shared.registry.lock();
        SubscriberStats {
            subscriptions: reg.live.values().map(|s| s.stats()).collect(),
        }
    }

    /// Bus-wide totals: published, routed, delivered, dropped, lag, queue depth, latency.
    pub fn queue_stats(&self) -> QueueStats {
        let mut reg = self.shared.registry.lock();
        reg.retire_drained();
        let s = &self.shared;
        let mut total = reg.retired.clone();
        let mut latency = reg.retired_latency.clone().unwrap_or_else(Counts::empty);
        for sub in reg.live.values().chain(&reg.draining) {
            add(&mut total, sub);
            latency.merge(&sub.latency_counts());
        }
        total.capacity = reg.live.values().map(|s| s.mailbox.queue.capacity()).sum();
        total.subscriptions = reg.live.len();
        total.published = s.published.load(Ordering::Relaxed);
        total.unrouted = s.unrouted.load(Ordering::Relaxed);
        total.route_cache_hits = s.cache_hits.load(Ordering::Relaxed);
        total.route_cache_misses = s.cache_misses.load(Ordering::Relaxed);
        total.latency_p50 = latency.quantile(0.5);
        total.latency_p99 = latency.quantile(0.99);
        total
    }

    /// Waits until every queue is empty and no subscriber is running, at most `timeout`;
    /// whether that happened. Events published meanwhile are waited for too.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let idle = {
                let reg = self.shared.registry.lock();
                reg.live.values().chain(&reg.draining).all(|s| s.is_idle())
            };
            if idle {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_micros(100));
        }
    }

    /// Stops accepting publishes and subscriptions, delivers what is queued (at most
    /// `timeout`), then stops and joins the processing threads; whether everything queued
    /// was delivered. Events still queued after the timeout are discarded with the queues.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.shared.closed.store(true, Ordering::Release);
        let drained = self.flush(timeout);
        self.stop_threads();
        drained
    }

    fn stop_threads(&self) {
        let handles = std::mem::take(&mut *self.processing_threads.lock());
        for _ in &handles {
            // The receivers live as long as the threads, so this cannot fail.
            let _ = self.shared.ready.send(Job::Stop);
        }
        for h in handles {
            // A thread only ends by panicking outside a handler, which `run` never does.
            let _ = h.join();
        }
    }

    fn offer_one(&self, mut event: EventEnvelope) -> Result<Pending, PublishError> {
        let s = &*self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Err(PublishError::Closed);
        }
        let table = s.table();
        let keyed = table
            .route_key(event.routing_key.as_deref(), s)
            .map_err(|reason| PublishError::InvalidRoutingKey {
                key: event.routing_key.clone().unwrap_or_default(),
                reason: reason.to_owned(),
            })?;
        let typed = table.route_type(&event.event_type);
        let start = Instant::now();
        event.metadata.sequence = s.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        event.metadata.published_at = Some(start);
        s.published.fetch_add(1, Ordering::Relaxed);
        let mut pending = Pending {
            start,
            refusals: Vec::new(),
            waits: Vec::new(),
        };
        if typed.is_empty() && keyed.is_empty() {
            s.unrouted.fetch_add(1, Ordering::Relaxed);
            return Ok(pending);
        }
        let event = Arc::new(event);
        for &slot in typed.iter().chain(keyed.iter()) {
            let sub = &table.subs[slot as usize];
            let (offer, schedule) = sub.offer_one(Arc::clone(&event));
            if schedule {
                s.schedule(sub);
            }
            pending.push(sub, offer);
        }
        Ok(pending)
    }

    fn offer_batch(&self, events: Vec<EventEnvelope>) -> Result<Pending, BatchPublishError> {
        let s = &*self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Err(BatchPublishError::Closed);
        }
        let table = s.table();
        let mut keyed = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let route = table
                .route_key(event.routing_key.as_deref(), s)
                .map_err(|reason| BatchPublishError::InvalidRoutingKey {
                    index,
                    key: event.routing_key.clone().unwrap_or_default(),
                    reason: reason.to_owned(),
                })?;
            keyed.push(route);
        }
        let start = Instant::now();
        let n = events.len() as u64;
        let first = s.sequence.fetch_add(n, Ordering::Relaxed) + 1;
        s.published.fetch_add(n, Ordering::Relaxed);
        let mut groups: Vec<VecDeque<Event>> = Vec::new();
        groups.resize_with(table.subs.len(), VecDeque::new);
        let mut touched: Vec<u32> = Vec::new();
        let mut unrouted = 0;
        for ((i, mut event), keyed) in events.into_iter().enumerate().zip(keyed) {
            event.metadata.sequence = first + i as u64;
            event.metadata.published_at = Some(start);
            let typed = table.route_type(&event.event_type);
            if typed.is_empty() && keyed.is_empty() {
                unrouted += 1;
                continue;
            }
            let event = Arc::new(event);
            for &slot in typed.iter().chain(keyed.iter()) {
                let group = &mut groups[slot as usize];
                if group.is_empty() {
                    touched.push(slot);
                }
                group.push_back(Arc::clone(&event));
            }
        }
        s.unrouted.fetch_add(unrouted, Ordering::Relaxed);
        let mut pending = Pending {
            start,
            refusals: Vec::new(),
            waits: Vec::new(),
        };
        for slot in touched {
            let sub = &table.subs[slot as usize];
            let (offer, schedule) = sub.offer_many(std::mem::take(&mut groups[slot as usize]));
            if schedule {
                s.schedule(sub);
            }
            pending.push(sub, offer);
        }
        Ok(pending)
    }

    fn finish(&self, pending: Pending) -> Result<(), Vec<Refusal>> {
        let Pending {
            start,
            mut refusals,
            waits,
        } = pending;
        for (sub, events) in waits {
            let mut schedule = || self.shared.schedule(&sub);
            refusals.extend(sub.wait_and_offer(events, start, &mut schedule));
        }
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(refusals)
        }
    }

    async fn finish_async(&self, pending: Pending) -> Result<(), Vec<Refusal>> {
        let Pending {
            start,
            mut refusals,
            waits,
        } = pending;
        for (sub, events) in waits {
            let mut schedule = || self.shared.schedule(&sub);
            refusals.extend(sub.wait_and_offer_async(events, start, &mut schedule).await);
        }
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(refusals)
        }
    }
}

impl Drop for AdvancedEventBus {
    /// Stops the processing threads after the runs they are in; queued events that no run
    /// has taken are discarded (call [`AdvancedEventBus::shutdown`] to deliver them first).
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.stop_threads();
    }
}

impl Pending {
    fn push(&mut self, sub: &Arc<Subscription>, offer: Offer) {
        match offer {
            Offer::Done => {}
            Offer::Refused(r) => self.refusals.push(r),
            Offer::Wait(events) => self.waits.push((Arc::clone(sub), events)),
        }
    }
}

impl Shared {
    fn table(&self) -> Arc<RouteTable> {
        Arc::clone(&self.routes.read())
    }

    fn schedule(&self, sub: &Arc<Subscription>) {
        // The receivers live until `Stop`, sent only after publishing is closed.
        let _ = self.ready.send(Job::Run(Arc::clone(sub)));
    }

    fn rebuild(&self, reg: &Registry) {
        let table = RouteTable::build(&reg.live, self.config.route_cache_capacity);
        *self.routes.write() = Arc::new(table);
    }
}

impl Registry {
    /// Folds removed subscriptions that finished draining into the retired totals.
    fn retire_drained(&mut self) {
        let mut i = 0;
        while i < self.draining.len() {
            if self.draining[i].is_idle() {
                let sub = self.draining.swap_remove(i);
                add(&mut self.retired, &sub);
                self.retired_latency
                    .get_or_insert_with(Counts::empty)
                    .merge(&sub.latency_counts());
            } else {
                i += 1;
            }
        }
    }
}

fn add(total: &mut QueueStats, sub: &Subscription) {
    let st = sub.stats();
    total.enqueued += st.enqueued;
    total.delivered += st.delivered;
    total.panicked += st.panicked;
    total.lag += st.lag;
    total.refused += st.refused;
    total.dropped += st.dropped;
    total.queue_depth += st.queue_depth;
}

impl RouteTable {
    fn build(live: &BTreeMap<SubscriptionId, Arc<Subscription>>, cache_capacity: usize) -> Self {
        let mut by_type: HashMap<EventType, Vec<u32>> = HashMap::new();
        let mut trie = PatternTrie::new();
        let subs: Vec<Arc<Subscription>> = live.values().cloned().collect();
        for (slot, sub) in subs.iter().enumerate() {
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            match &sub.topic {
                Topic::EventType(t) => by_type.entry(t.clone()).or_default().push(slot),
                Topic::Pattern(p) => trie.insert(p, slot),
            }
        }
        Self {
            subs,
            by_type,
            trie,
            cache: RwLock::new(HashMap::new()),
            cache_capacity,
            none: Arc::from([]),
        }
    }

    fn route_type(&self, event_type: &EventType) -> &[u32] {
        self.by_type.get(event_type).map_or(&[], Vec::as_slice)
    }

    /// Slots of the pattern subscriptions matching `key`; the reason when `key` is invalid.
    fn route_key(&self, key: Option<&str>, shared: &Shared) -> Result<Arc<[u32]>, &'static str> {
        let Some(key) = key else {
            return Ok(Arc::clone(&self.none));
        };
        if let Some(hit) = self.cache.read().get(key) {
            shared.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(hit));
        }
        shared.cache_misses.fetch_add(1, Ordering::Relaxed);
        let mut slots = Vec::new();
        self.trie.matches(key, &mut slots)?;
        let slots: Arc<[u32]> = Arc::from(slots);
        if self.cache_capacity > 0 {
            let mut cache = self.cache.write();
            if cache.len() >= self.cache_capacity {
                cache.clear();
            }
            cache.insert(key.into(), Arc::clone(&slots));
        }
        Ok(slots)
    }
}

fn processing_loop(shared: &Shared, rx: &Receiver<Job>) {
    let (budget, slice) = (shared.config.run_budget, shared.config.run_slice);
    while let Ok(Job::Run(sub)) = rx.recv() {
        if sub.run(budget, slice) {
            shared.schedule(&sub);
        }
    }
}
