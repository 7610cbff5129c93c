//! The seed API round trip, typed handles, futures, fork-join and panic isolation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use rust_ai_ide_scheduler::{
    Priority, SchedulingError, Task, TaskId, WaitError, block_on, join, spawn, spawn_future,
    yield_now,
};

use crate::scheduler;

fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = join(|| fib(n - 1), || fib(n - 2));
    a + b
}

fn quicksort(v: &mut [u32]) {
    if v.len() <= 16 {
        v.sort_unstable();
        return;
    }
    let pivot = v[v.len() / 2];
    let (mut lo, mut hi) = (0, v.len());
    // Three-way partition: < pivot | == pivot | > pivot.
    let mut i = 0;
    while i < hi {
        if v[i] < pivot {
            v.swap(i, lo);
            lo += 1;
            i += 1;
        } else if v[i] > pivot {
            hi -= 1;
            v.swap(i, hi);
        } else {
            i += 1;
        }
    }
    let (left, rest) = v.split_at_mut(lo);
    let right = &mut rest[hi - lo..];
    join(|| quicksort(left), || quicksort(right));
}

#[test]
fn schedule_and_wait_round_trip() {
    let s = scheduler(2);
    let ids: Vec<TaskId> = (0..100u64)
        .map(|i| s.schedule(Task::new(move || i * i)).expect("scheduled"))
        .collect();
    let fut_id = s
        .schedule_with_priority(Task::from_future(async { "async" }), Priority::Low)
        .expect("scheduled");
    for (i, id) in ids.iter().enumerate() {
        let r = block_on(s.wait_for_completion(*id)).expect("result");
        assert_eq!(r.downcast::<u64>().ok(), Some((i * i) as u64));
    }
    let r = block_on(s.wait_for_completion(fut_id)).expect("result");
    assert_eq!(r.downcast_ref::<&str>(), Some(&"async"));
    assert_eq!(
        block_on(s.wait_for_completion(ids[0])).expect_err("taken"),
        WaitError::UnknownTask(ids[0])
    );
    assert_eq!(
        block_on(s.wait_for_completion(TaskId(u64::MAX))).expect_err("unknown"),
        WaitError::UnknownTask(TaskId(u64::MAX))
    );
    let stats = s.worker_stats();
    assert_eq!(stats.len(), 2);
    assert!(stats.iter().map(|w| w.executed).sum::<u64>() >= 101);
}

#[test]
fn wrong_downcast_gives_the_result_back() {
    let s = scheduler(1);
    let id = s.schedule(Task::new(|| 5u8)).expect("scheduled");
    let r = block_on(s.wait_for_completion(id)).expect("result");
    let r = r.downcast::<String>().expect_err("not a string");
    assert_eq!(r.downcast::<u8>().ok(), Some(5));
}

#[test]
fn detach_forgets_the_result() {
    let s = scheduler(1);
    let id = s.schedule(Task::new(|| 1)).expect("scheduled");
    assert!(s.is_finished(id).is_some());
    assert!(s.detach(id));
    assert!(!s.detach(id));
    assert_eq!(s.is_finished(id), None);
}

#[test]
fn futures_yield_and_spawn_from_workers() {
    let s = scheduler(2);
    let h = s
        .spawn_future(async {
            let mut total = 0u64;
            let children: Vec<_> = (0..50u64)
                .map(|i| {
                    spawn_future(async move {
                        for _ in 0..10 {
                            yield_now().await;
                        }
                        i
                    })
                    .expect("on a worker")
                })
                .collect();
            for c in children {
                total += c.await.expect("child");
            }
            total + spawn(|| 1000).expect("on a worker").await.expect("closure")
        })
        .expect("spawned");
    assert_eq!(h.join().expect("done"), (0..50).sum::<u64>() + 1000);
    assert!(matches!(spawn(|| 1), Err(SchedulingError::NotOnWorker)));
}

#[test]
fn a_yield_lets_the_queued_tasks_of_its_worker_run_first() {
    let s = scheduler(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let outer = Arc::clone(&log);
    let h = s
        .spawn_future(async move {
            let queued: Vec<_> = (0..3)
                .map(|i| {
                    let log = Arc::clone(&outer);
                    spawn(move || log.lock().expect("log").push(format!("task {i}")))
                        .expect("on a worker")
                })
                .collect();
            outer.lock().expect("log").push("before yield".to_owned());
            yield_now().await;
            outer.lock().expect("log").push("after yield".to_owned());
            for q in queued {
                q.await.expect("queued task");
            }
        })
        .expect("spawned");
    h.join().expect("done");
    let log = log.lock().expect("log");
    assert_eq!(log.first().map(String::as_str), Some("before yield"));
    assert_eq!(
        log.last().map(String::as_str),
        Some("after yield"),
        "{log:?}"
    );
    assert_eq!(log.len(), 5);
}

#[test]
fn a_chain_of_spawns_runs_to_the_end() {
    fn step(left: usize, done: std::sync::mpsc::Sender<usize>) {
        if left == 0 {
            done.send(0).expect("receiver alive");
        } else {
            spawn(move || step(left - 1, done)).expect("on a worker");
        }
    }
    let s = scheduler(2);
    let (tx, rx) = std::sync::mpsc::channel();
    s.spawn(move || step(1000, tx)).expect("spawned");
    assert_eq!(rx.recv().expect("chain finished"), 0);
}

#[test]
fn fork_join_matches_sequential() {
    let s = scheduler(2);
    assert_eq!(s.install(|| fib(22)).expect("installed"), 17711);
    // Off the workers `join` runs both halves in place.
    assert_eq!(fib(10), 55);
    let stats = s.worker_stats();
    assert!(stats.iter().map(|w| w.executed).sum::<u64>() >= 1);
}

#[test]
fn a_panicking_task_is_isolated() {
    let s = scheduler(1);
    let bad = s
        .spawn(|| -> u32 { panic!("task exploded") })
        .expect("spawned");
    match bad.join() {
        Err(WaitError::Panicked(msg)) => assert!(msg.contains("task exploded"), "{msg}"),
        other => panic!("expected a panic error, got {other:?}"),
    }
    let id = s
        .schedule(Task::from_future(async { panic!("async {}", 1) }))
        .expect("scheduled");
    assert_eq!(
        block_on(s.wait_for_completion(id)).expect_err("panicked"),
        WaitError::Panicked("async 1".to_owned())
    );
    // The only worker survived both.
    assert_eq!(s.spawn(|| 7).expect("spawned").join(), Ok(7));
}

#[test]
fn a_panic_in_join_reaches_the_caller_after_both_halves() {
    let s = scheduler(2);
    let ran_b = Arc::new(AtomicUsize::new(0));
    let b_flag = Arc::clone(&ran_b);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.install(move || {
            join(
                || panic!("left half"),
                move || b_flag.fetch_add(1, Ordering::SeqCst),
            )
        })
    }));
    assert!(r.is_err());
    assert_eq!(ran_b.load(Ordering::SeqCst), 1, "the right half still ran");
    assert_eq!(s.install(|| 3).expect("pool alive"), 3);
}

#[test]
fn join_handle_awaited_inside_a_task_does_not_deadlock_one_worker() {
    let s = scheduler(1);
    let h = s
        .spawn(|| {
            let inner = spawn(|| 21).expect("on a worker");
            // Blocking join on the only worker: it runs `inner` itself while waiting.
            inner.join().expect("inner") * 2
        })
        .expect("spawned");
    assert_eq!(h.join(), Ok(42));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn parallel_quicksort_sorts(mut v in proptest::collection::vec(any::<u32>(), 0..5000)) {
        let s = scheduler(2);
        let mut expected = v.clone();
        expected.sort_unstable();
        s.install(|| quicksort(&mut v)).expect("installed");
        prop_assert_eq!(v, expected);
    }

    #[test]
    fn every_scheduled_result_comes_back(values in proptest::collection::vec(any::<i64>(), 1..200)) {
        let s = scheduler(2);
        let ids: Vec<_> = values
            .iter()
            .map(|&v| s.schedule(Task::new(move || v.wrapping_mul(3))).expect("scheduled"))
            .collect();
        for (id, v) in ids.into_iter().zip(values) {
            let r = block_on(s.wait_for_completion(id)).expect("result");
            prop_assert_eq!(r.downcast::<i64>().ok(), Some(v.wrapping_mul(3)));
        }
    }
}
