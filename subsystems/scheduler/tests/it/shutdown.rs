//! Shutdown: drain runs everything, cancel cancels what has not started.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use rust_ai_ide_scheduler::{SchedulingError, ShutdownMode, Task, WaitError, spawn};

use crate::scheduler;

#[test]
fn drain_runs_queued_and_spawned_work() {
    let s = scheduler(2);
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..200 {
        let count = Arc::clone(&count);
        s.spawn(move || {
            // Work spawned while draining still runs.
            let inner = Arc::clone(&count);
            spawn(move || inner.fetch_add(1, Ordering::SeqCst)).expect("on a worker");
            count.fetch_add(1, Ordering::SeqCst);
        })
        .expect("spawned");
    }
    let report = s.shutdown(ShutdownMode::Drain);
    assert_eq!(count.load(Ordering::SeqCst), 400);
    assert_eq!(report.completed, 400);
    assert_eq!(report.cancelled, 0);
    assert!(matches!(s.spawn(|| 1), Err(SchedulingError::ShutDown)));
    assert!(matches!(
        s.schedule(Task::new(|| 1)),
        Err(SchedulingError::ShutDown)
    ));
}

#[test]
fn cancel_cancels_what_has_not_started() {
    let s = Arc::new(scheduler(1));
    let (open, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let gate_task = s
        .spawn(move || {
            started_tx.send(()).expect("test alive");
            gate.recv().expect("opened");
            "gate"
        })
        .expect("gate");
    started.recv().expect("gate running");
    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..100)
        .map(|_| {
            let ran = Arc::clone(&ran);
            s.spawn(move || ran.fetch_add(1, Ordering::SeqCst))
                .expect("queued")
        })
        .collect();
    let stopper = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || s.shutdown(ShutdownMode::Cancel))
    };
    // Wait until the shutdown has begun (submissions refused), then let the gate finish.
    while s.spawn(|| ()).is_ok() {
        std::thread::yield_now();
    }
    open.send(()).expect("gate open");
    let report = stopper.join().expect("shutdown");
    assert_eq!(gate_task.join(), Ok("gate"), "a running task finishes");
    for h in queued {
        assert_eq!(h.join(), Err(WaitError::Cancelled));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(report.cancelled >= 100, "{report:?}");
}

#[test]
fn dropping_the_scheduler_cancels_a_task_woken_later() {
    let s = scheduler(1);
    let (tx, rx) = tokio_free_oneshot();
    let h = s.spawn_future(rx).expect("spawned");
    drop(s);
    tx.send();
    assert_eq!(h.join(), Err(WaitError::Cancelled));
}

/// A minimal one-shot channel (the crate has no runtime dependency, nor do its tests).
fn tokio_free_oneshot() -> (OneshotTx, OneshotRx) {
    let slot = Arc::new(std::sync::Mutex::new((false, None::<std::task::Waker>)));
    (OneshotTx(Arc::clone(&slot)), OneshotRx(slot))
}

type Slot = Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>;

struct OneshotTx(Slot);

impl OneshotTx {
    fn send(self) {
        let mut s = self.0.lock().expect("lock");
        s.0 = true;
        if let Some(w) = s.1.take() {
            w.wake();
        }
    }
}

struct OneshotRx(Slot);

impl Future for OneshotRx {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut s = self.0.lock().expect("lock");
        if s.0 {
            std::task::Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    }
}
