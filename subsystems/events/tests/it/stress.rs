//! Seeded stress runs: two publisher threads over many iterations, checking conservation and per-publisher order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread;

use parking_lot::Mutex;
use rust_ai_ide_events::{
    Backpressure, EventEnvelope, Pattern, SegmentedQueue, SubscriptionOptions, Topic,
};

use crate::{PATIENCE, Rng, bus, event, number};

const SEED: u64 = 0x6576_656e_7473;
const PUBLISHERS: u64 = 2;
const TOKENS: [&str; 4] = ["a", "b", "c", "d"];
const PATTERNS: [&str; 6] = ["a.>", "*.b", "a.*.c", ">", "d.d.d", "*.*"];

/// Payload numbers encode (publisher, index) so order can be checked per publisher.
fn code(publisher: u64, i: u64) -> u64 {
    publisher << 32 | i
}

fn subject(rng: &mut Rng) -> String {
    let len = 1 + rng.below(3) as usize;
    (0..len)
        .map(|_| TOKENS[rng.below(TOKENS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(".")
}

/// Checks that `seen` holds each publisher's events in increasing index order, and
/// returns how many came from each.
fn per_publisher_in_order(seen: &[u64]) -> Vec<u64> {
    let mut last = vec![None::<u64>; PUBLISHERS as usize];
    let mut counts = vec![0; PUBLISHERS as usize];
    for &c in seen {
        let (p, i) = ((c >> 32) as usize, c & 0xffff_ffff);
        assert!(
            last[p].is_none_or(|l| l < i),
            "publisher {p}: {i} after {:?}",
            last[p]
        );
        last[p] = Some(i);
        counts[p] += 1;
    }
    counts
}

fn run_bus(policy: Backpressure, iterations: u64) {
    let bus = Arc::new(bus(2));
    let patterns: Vec<Pattern> = PATTERNS
        .iter()
        .map(|p| Pattern::new(p).expect("valid"))
        .collect();
    let sinks: Vec<Arc<Mutex<Vec<u64>>>> = patterns.iter().map(|_| Arc::default()).collect();
    for (p, sink) in patterns.iter().zip(&sinks) {
        let sink = Arc::clone(sink);
        bus.subscribe_with(
            Topic::Pattern(p.clone()),
            Arc::new(move |e: &EventEnvelope| sink.lock().push(number(e))),
            SubscriptionOptions {
                backpressure: policy,
                segment_size: 8,
                max_segments: 4,
                ..SubscriptionOptions::default()
            },
        )
        .expect("subscribe");
    }
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let bus = Arc::clone(&bus);
            thread::spawn(move || {
                let mut rng = Rng::new(SEED ^ p);
                let mut keys = Vec::new();
                let mut i = 0;
                while i < iterations {
                    let n = (1 + rng.below(40)).min(iterations - i);
                    let batch: Vec<_> = (i..i + n)
                        .map(|j| {
                            let key = subject(&mut rng);
                            let e = event("t", Some(&key), code(p, j));
                            keys.push(key);
                            e
                        })
                        .collect();
                    if rng.below(2) == 0 {
                        bus.publish_batch_blocking(batch).expect("no refusal");
                    } else {
                        for e in batch {
                            bus.publish_blocking(e).expect("no refusal");
                        }
                    }
                    i += n;
                }
                keys
            })
        })
        .collect();
    let keys: Vec<Vec<String>> = publishers
        .into_iter()
        .map(|h| h.join().expect("publisher"))
        .collect();
    assert!(bus.flush(PATIENCE));
    let st = bus.subscriber_stats();
    for ((pat, sink), s) in patterns.iter().zip(&sinks).zip(&st.subscriptions) {
        let seen = sink.lock().clone();
        let counts = per_publisher_in_order(&seen);
        let want: Vec<u64> = keys
            .iter()
            .map(|ks| ks.iter().filter(|k| pat.matches(k)).count() as u64)
            .collect();
        assert_eq!(s.enqueued, s.delivered + s.lag, "{pat}: conservation");
        assert_eq!(s.delivered, seen.len() as u64, "{pat}");
        assert_eq!(s.refused, 0, "{pat}");
        match policy {
            Backpressure::DropOldest => {
                assert_eq!(
                    s.enqueued,
                    want.iter().sum::<u64>(),
                    "{pat}: every match queued"
                );
            }
            _ => {
                assert_eq!(counts, want, "{pat}: every match delivered");
                assert_eq!(s.lag, 0, "{pat}");
            }
        }
    }
    let q = bus.queue_stats();
    assert_eq!(q.published, PUBLISHERS * iterations);
    assert_eq!(q.queue_depth, 0);
}

#[test]
fn two_publishers_block_policy_lose_nothing() {
    run_bus(Backpressure::Block { timeout: PATIENCE }, 20_000);
}

#[test]
fn two_publishers_drop_oldest_account_for_everything() {
    run_bus(Backpressure::DropOldest, 20_000);
}

#[test]
fn segmented_queue_two_producers_one_consumer() {
    const N: u64 = 100_000;
    let q = Arc::new(SegmentedQueue::new(16, 4));
    let producers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut rng = Rng::new(SEED ^ (p + 7));
                let mut evicted = Vec::new();
                let mut i = 0;
                while i < N {
                    match rng.below(3) {
                        0 => evicted.extend(q.force_push(code(p, i)).expect("open")),
                        1 => {
                            let n = (1 + rng.below(20)).min(N - i);
                            let mut batch: VecDeque<u64> = (i..i + n).map(|j| code(p, j)).collect();
                            while !batch.is_empty() {
                                q.push_many(&mut batch).expect("open");
                                thread::yield_now();
                            }
                            i += n - 1;
                        }
                        _ => {
                            let mut item = code(p, i);
                            while let Err(e) = q.push(item) {
                                item = e.into_inner();
                                thread::yield_now();
                            }
                        }
                    }
                    i += 1;
                }
                evicted
            })
        })
        .collect();
    let consumer = {
        let q = Arc::clone(&q);
        thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = VecDeque::new();
            // The queue is closed once both producers are done; then it is drained.
            while !q.is_closed() {
                if q.pop_segment(&mut buf) == 0 {
                    thread::yield_now();
                } else {
                    seen.extend(buf.drain(..));
                }
            }
            while let Some(x) = q.pop() {
                seen.push(x);
            }
            seen
        })
    };
    let mut evicted: Vec<u64> = Vec::new();
    for h in producers {
        evicted.extend(h.join().expect("producer"));
    }
    q.close();
    let seen = consumer.join().expect("consumer");
    per_publisher_in_order(&seen);
    let mut all: Vec<u64> = seen.iter().chain(&evicted).copied().collect();
    all.sort_unstable();
    let mut want: Vec<u64> = (0..PUBLISHERS)
        .flat_map(|p| (0..N).map(move |i| code(p, i)))
        .collect();
    want.sort_unstable();
    assert_eq!(all, want, "every item consumed or evicted exactly once");
}
