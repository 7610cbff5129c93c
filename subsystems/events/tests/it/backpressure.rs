//! Backpressure policies (drop-oldest, error, block), panicking and stuck subscribers: losses are counted and never block the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rust_ai_ide_events::{
    AdvancedEventBus, Backpressure, EventEnvelope, EventSubscriber, PublishError, RefusalReason,
    SubscriptionId, SubscriptionOptions, Topic,
};

use crate::{PATIENCE, Recorder, bus, event, number};

/// A gate that handlers wait on until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock();
        while !*open {
            self.cv.wait(&mut open);
        }
    }

    fn open(&self) {
        *self.open.lock() = true;
        self.cv.notify_all();
    }
}

/// A subscriber that records numbers but cannot finish a handler while the gate is
/// closed, and reports when it entered its first handler.
struct Gated {
    gate: Arc<Gate>,
    entered: mpsc::SyncSender<()>,
    rec: Arc<Recorder>,
}

impl EventSubscriber for Gated {
    fn on_event(&self, e: &EventEnvelope) {
        let _ = self.entered.try_send(());
        self.gate.wait();
        self.rec.seen.lock().push(number(e));
        self.rec.count.fetch_add(1, Ordering::SeqCst);
    }
}

struct Setup {
    bus: AdvancedEventBus,
    gate: Arc<Gate>,
    slow: Arc<Recorder>,
    slow_id: SubscriptionId,
    fast: Arc<Recorder>,
}

/// A closed gate, a slow subscriber (queue of 4: 2 segments of 2) with `policy` that is
/// stuck in the handler of event 0, and a fast subscriber to the same type.
fn stuck_slow_subscriber(policy: Backpressure) -> Setup {
    let bus = bus(2);
    let gate = Arc::new(Gate::default());
    let slow = Arc::new(Recorder::default());
    let fast = Arc::new(Recorder::default());
    let (tx, entered) = mpsc::sync_channel(1);
    let slow_id = bus
        .subscribe_with(
            Topic::EventType("t".into()),
            Arc::new(Gated {
                gate: Arc::clone(&gate),
                entered: tx,
                rec: Arc::clone(&slow),
            }),
            SubscriptionOptions {
                name: "slow".to_owned(),
                backpressure: policy,
                segment_size: 2,
                max_segments: 2,
            },
        )
        .expect("subscribe");
    bus.subscribe_with(
        Topic::EventType("t".into()),
        fast.handler(),
        SubscriptionOptions {
            name: "fast".to_owned(),
            ..SubscriptionOptions::default()
        },
    )
    .expect("subscribe");
    bus.publish_blocking(event("t", None, 0)).expect("publish");
    entered
        .recv_timeout(PATIENCE)
        .expect("slow handler entered");
    Setup {
        bus,
        gate,
        slow,
        slow_id,
        fast,
    }
}

#[test]
fn drop_oldest_counts_lag_and_keeps_the_newest() {
    let s = stuck_slow_subscriber(Backpressure::DropOldest);
    for i in 1..20 {
        s.bus
            .publish_blocking(event("t", None, i))
            .expect("never refused");
    }
    let st = s.bus.subscriber_stats();
    let slow = st.by_name("slow").expect("slow stats");
    assert_eq!((slow.lag, slow.dropped, slow.queue_depth), (15, 15, 4));
    assert!(s.fast.wait_for(20), "the fast subscriber is not held up");
    s.gate.open();
    assert!(s.bus.flush(PATIENCE));
    assert_eq!(s.slow.seen(), [0, 16, 17, 18, 19]);
    let st = s.bus.subscriber_stats();
    let slow = st.get(s.slow_id).expect("slow stats");
    assert_eq!(slow.enqueued, slow.delivered + slow.lag);
}

#[test]
fn error_policy_names_the_subscriber_and_counts_refusals() {
    let s = stuck_slow_subscriber(Backpressure::Error);
    let mut refused = 0;
    for i in 1..20 {
        match s.bus.publish_blocking(event("t", None, i)) {
            Ok(()) => {}
            Err(PublishError::Refused { refusals }) => {
                assert_eq!(refusals.len(), 1);
                assert_eq!(refusals[0].subscriber, "slow");
                assert_eq!(refusals[0].subscription, s.slow_id);
                assert_eq!(refusals[0].reason, RefusalReason::QueueFull);
                let msg = PublishError::Refused { refusals }.to_string();
                assert!(msg.contains("subscriber slow"), "{msg}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 15, "4 fit in the queue, 15 do not");
    assert!(
        s.fast.wait_for(20),
        "refusals by one subscriber do not affect the others"
    );
    s.gate.open();
    assert!(s.bus.flush(PATIENCE));
    assert_eq!(s.slow.seen(), [0, 1, 2, 3, 4]);
    let q = s.bus.queue_stats();
    assert_eq!((q.refused, q.dropped, q.lag), (15, 15, 0));
}

#[test]
fn block_policy_times_out_and_reports() {
    let timeout = Duration::from_millis(20);
    let s = stuck_slow_subscriber(Backpressure::Block { timeout });
    for i in 1..5 {
        s.bus.publish_blocking(event("t", None, i)).expect("fits");
    }
    let err = s.bus.publish_blocking(event("t", None, 5)).unwrap_err();
    match err {
        PublishError::Refused { refusals } => {
            assert_eq!(refusals[0].reason, RefusalReason::Timeout(timeout));
            assert_eq!(refusals[0].subscriber, "slow");
        }
        e => panic!("{e}"),
    }
    assert!(
        s.fast.wait_for(6),
        "the fast subscriber got event 5 before the wait"
    );
    s.gate.open();
    assert!(s.bus.flush(PATIENCE));
    assert_eq!(s.slow.seen(), [0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_policy_waits_for_a_slow_but_moving_subscriber() {
    let bus = bus(2);
    let rec = Arc::new(Recorder::default());
    let slow_rec = Arc::clone(&rec);
    bus.subscribe_with(
        Topic::EventType("t".into()),
        Arc::new(move |e: &EventEnvelope| {
            std::thread::sleep(Duration::from_micros(200));
            slow_rec.seen.lock().push(number(e));
        }),
        SubscriptionOptions {
            name: "careful".to_owned(),
            backpressure: Backpressure::Block { timeout: PATIENCE },
            segment_size: 2,
            max_segments: 1,
        },
    )
    .expect("subscribe");
    for i in 0..50 {
        bus.publish(event("t", None, i))
            .await
            .expect("waits, never refuses");
    }
    bus.publish_batch((50..100).map(|i| event("t", None, i)).collect())
        .await
        .expect("waits, never refuses");
    assert!(bus.flush(PATIENCE));
    assert_eq!(rec.seen(), (0..100).collect::<Vec<_>>());
    assert_eq!(bus.queue_stats().dropped, 0);
}

#[test]
fn panics_are_caught_counted_and_the_subscriber_goes_on() {
    let bus = bus(2);
    let ok = Arc::new(AtomicU64::new(0));
    let ok2 = Arc::clone(&ok);
    let other = Arc::new(Recorder::default());
    let id = bus
        .subscribe_with(
            Topic::EventType("t".into()),
            Arc::new(move |e: &EventEnvelope| {
                assert!(number(e).is_multiple_of(2), "odd event");
                ok2.fetch_add(1, Ordering::SeqCst);
            }),
            SubscriptionOptions::default(),
        )
        .expect("subscribe");
    bus.subscribe_with(
        Topic::EventType("t".into()),
        other.handler(),
        SubscriptionOptions::default(),
    )
    .expect("subscribe");
    bus.publish_batch_blocking((0..100).map(|i| event("t", None, i)).collect())
        .expect("publish");
    assert!(bus.flush(PATIENCE));
    let st = bus.subscriber_stats();
    let s = st.get(id).expect("stats");
    assert_eq!((s.delivered, s.panicked, s.dropped), (50, 50, 0));
    assert_eq!(ok.load(Ordering::SeqCst), 50);
    assert_eq!(other.seen(), (0..100).collect::<Vec<_>>());
    assert_eq!(bus.queue_stats().panicked, 50);
}
