//! Seeded stress: two submitting threads, many iterations, mixed closures, futures, yields,
//! nested spawns and joins; every result is checked.

use std::sync::Arc;

use rust_ai_ide_scheduler::{Priority, Task, block_on, join, spawn, yield_now};

use crate::{SplitMix, scheduler};

fn sum_join(lo: u64, hi: u64) -> u64 {
    if hi - lo <= 8 {
        return (lo..hi).sum();
    }
    let mid = lo + (hi - lo) / 2;
    let (a, b) = join(|| sum_join(lo, mid), || sum_join(mid, hi));
    a + b
}

#[test]
fn two_submitters_many_mixed_tasks() {
    let s = Arc::new(scheduler(2));
    let submitters: Vec<_> = (0..2u64)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut rng = SplitMix(0x5eed_0000 + t);
                for round in 0..300 {
                    let x = rng.next() % 1000;
                    let prio = match rng.next() % 3 {
                        0 => Priority::Low,
                        1 => Priority::Normal,
                        _ => Priority::High,
                    };
                    match rng.next() % 4 {
                        0 => {
                            let id = s
                                .schedule_with_priority(Task::new(move || x + 1), prio)
                                .expect("scheduled");
                            let r = block_on(s.wait_for_completion(id)).expect("result");
                            assert_eq!(r.downcast::<u64>().ok(), Some(x + 1), "round {round}");
                        }
                        1 => {
                            let yields = rng.next() % 5;
                            let h = s
                                .spawn_future_with_priority(
                                    async move {
                                        for _ in 0..yields {
                                            yield_now().await;
                                        }
                                        x * 2
                                    },
                                    prio,
                                )
                                .expect("spawned");
                            assert_eq!(h.join(), Ok(x * 2));
                        }
                        2 => {
                            let h = s
                                .spawn(move || {
                                    let kids: Vec<_> = (0..x % 7)
                                        .map(|k| spawn(move || k).expect("on a worker"))
                                        .collect();
                                    kids.into_iter()
                                        .map(|k| k.join().expect("kid"))
                                        .sum::<u64>()
                                })
                                .expect("spawned");
                            let n = x % 7;
                            assert_eq!(h.join(), Ok(n * n.saturating_sub(1) / 2));
                        }
                        _ => {
                            let got = s.install(move || sum_join(0, x)).expect("installed");
                            assert_eq!(got, x * x.saturating_sub(1) / 2);
                        }
                    }
                }
            })
        })
        .collect();
    for t in submitters {
        t.join().expect("submitter");
    }
    let stats = s.worker_stats();
    assert!(stats.iter().map(|w| w.executed).sum::<u64>() >= 600);
    let q = s.queue_depths();
    assert_eq!((q.high, q.normal, q.low), (0, 0, 0));
}

#[test]
fn wakes_from_foreign_threads_race_with_polls() {
    // Futures woken by a thread outside the pool while (or just after) they are polled:
    // each must finish exactly once, whatever the interleaving.
    let s = scheduler(2);
    let mut rng = SplitMix(42);
    for _ in 0..200 {
        let rounds = 1 + rng.next() % 20;
        let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = Arc::clone(&counter);
        let h = s
            .spawn_future(std::future::poll_fn(move |cx| {
                let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if n > rounds {
                    std::task::Poll::Ready(n)
                } else {
                    // The receiver outlives every send: it exits when this sender drops.
                    let _ = tx.send(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }))
            .expect("spawned");
        let waker_thread = std::thread::spawn(move || {
            for w in rx {
                w.wake();
            }
        });
        assert_eq!(h.join(), Ok(rounds + 1));
        waker_thread.join().expect("waker thread");
    }
}
