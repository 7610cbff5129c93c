//! Priorities: a high-priority task overtakes a low-priority backlog; low priority is not
//! starved by an endless stream of high-priority work.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rust_ai_ide_scheduler::{Priority, SchedulerConfig, WorkStealingScheduler};

/// One worker, held by a gate task while the queues fill up, so the order is deterministic.
fn gated(interval: u32) -> (WorkStealingScheduler, mpsc::Sender<()>) {
    let s = WorkStealingScheduler::new(SchedulerConfig {
        worker_threads: 1,
        low_priority_interval: interval,
        ..SchedulerConfig::default()
    })
    .expect("scheduler");
    let (open, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    s.spawn(move || {
        started_tx.send(()).expect("test alive");
        gate.recv().expect("test opens the gate");
    })
    .expect("gate");
    started.recv().expect("gate task running");
    (s, open)
}

#[test]
fn high_priority_overtakes_a_low_priority_backlog() {
    let (s, open) = gated(32);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..500 {
        let order = Arc::clone(&order);
        handles.push(
            s.spawn_with_priority(move || order.lock().expect("lock").push(i), Priority::Low)
                .expect("low"),
        );
    }
    for i in 0..200 {
        let order = Arc::clone(&order);
        handles.push(
            s.spawn_with_priority(
                move || order.lock().expect("lock").push(10_000 + i),
                Priority::Normal,
            )
            .expect("normal"),
        );
    }
    let o = Arc::clone(&order);
    handles.push(
        s.spawn_with_priority(
            move || o.lock().expect("lock").push(usize::MAX),
            Priority::High,
        )
        .expect("high"),
    );
    open.send(()).expect("gate open");
    for h in handles {
        h.join().expect("ran");
    }
    let order = order.lock().expect("lock");
    assert_eq!(order.len(), 701);
    assert_eq!(
        order[0],
        usize::MAX,
        "the high task ran first: {:?}",
        &order[..5]
    );
    // Normal work ran before the low backlog, except for the one-in-32 low turns.
    let lows_before_last_normal = order
        .iter()
        .take_while(|&&x| x != 10_000 + 199)
        .filter(|&&x| x < 10_000)
        .count();
    assert!(
        lows_before_last_normal <= 200 / 31 + 1,
        "{lows_before_last_normal} lows"
    );
}

#[test]
fn low_priority_is_not_starved_by_endless_high_priority_work() {
    fn high_forever(
        s: rust_ai_ide_scheduler::Spawner,
        stop: Arc<Mutex<bool>>,
        runs: Arc<Mutex<u64>>,
    ) {
        if *stop.lock().expect("lock") {
            return;
        }
        *runs.lock().expect("lock") += 1;
        let again = s.clone();
        s.spawn(move || high_forever(again, stop, runs), Priority::High)
            .expect("respawn");
    }
    let (s, open) = gated(8);
    let stop = Arc::new(Mutex::new(false));
    let runs = Arc::new(Mutex::new(0u64));
    for _ in 0..2 {
        let (sp, stop, runs) = (s.spawner(), Arc::clone(&stop), Arc::clone(&runs));
        s.spawn_with_priority(move || high_forever(sp, stop, runs), Priority::High)
            .expect("high");
    }
    let (stop2, runs2) = (Arc::clone(&stop), Arc::clone(&runs));
    let low = s
        .spawn_with_priority(
            move || {
                *stop2.lock().expect("lock") = true;
                *runs2.lock().expect("lock")
            },
            Priority::Low,
        )
        .expect("low");
    open.send(()).expect("gate open");
    // Without the anti-starvation rule this would never return.
    let high_runs_before_low = low.join().expect("low ran");
    assert!(
        high_runs_before_low <= 2 * 8,
        "{high_runs_before_low} high runs first"
    );
}
