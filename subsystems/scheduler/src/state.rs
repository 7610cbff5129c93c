//! The lifecycle of a heap task as one atomic word: who may poll it and who must enqueue it.
//!
//! A task is in at most one queue at a time and polled by at most one thread at a time.
//! `SCHEDULED` means "in a queue (or about to be)", `RUNNING` means "being polled";
//! a wake while running sets `NOTIFIED`, and the poller re-enqueues the task itself once the
//! poll returns, so a wake is never lost and never enqueues twice.

use crate::sync::{AtomicUsize, Ordering};

const SCHEDULED: usize = 1;
const RUNNING: usize = 2;
const NOTIFIED: usize = 4;
const COMPLETE: usize = 8;

/// The state word of one task.
#[derive(Debug)]
pub(crate) struct TaskState(AtomicUsize);

impl TaskState {
    /// A freshly spawned task: it goes straight into a queue.
    pub(crate) fn new_scheduled() -> Self {
        Self(AtomicUsize::new(SCHEDULED))
    }

    /// A wake. Returns `true` when the caller must put the task into a queue.
    pub(crate) fn transition_to_scheduled(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & COMPLETE != 0 {
                return false;
            }
            // Already queued or notified: nothing to change, but the wake still writes (the
            // same value), so that the poll that follows acquires what the waker did before.
            let next = if cur & (SCHEDULED | NOTIFIED) != 0 {
                cur
            } else if cur & RUNNING != 0 {
                cur | NOTIFIED
            } else {
                cur | SCHEDULED
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next != cur && next & SCHEDULED != 0,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Taken out of a queue to be polled. `false` when the task already finished (it was
    /// cancelled while queued), in which case the caller drops its reference.
    pub(crate) fn transition_to_running(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & SCHEDULED == 0 {
                return false;
            }
            let next = (cur & !SCHEDULED) | RUNNING;
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// A poll returned `Pending`. Returns `true` when a wake arrived during the poll: the
    /// task is `SCHEDULED` again and the caller must enqueue it.
    pub(crate) fn transition_to_idle(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let next = if cur & NOTIFIED != 0 {
                (cur & !(RUNNING | NOTIFIED)) | SCHEDULED
            } else {
                cur & !RUNNING
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next & SCHEDULED != 0,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The task finished (output stored, panicked or cancelled); later wakes do nothing.
    pub(crate) fn transition_to_complete(&self) {
        // An RMW, not a plain store: it orders after any wake's RMW on the word.
        self.0.swap(COMPLETE, Ordering::AcqRel);
    }

    /// Whether the task finished.
    #[cfg(test)]
    pub(crate) fn is_complete(&self) -> bool {
        self.0.load(Ordering::Acquire) & COMPLETE != 0
    }
}

#[cfg(all(test, not(perflab_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_wake_while_running_reschedules_once() {
        let s = TaskState::new_scheduled();
        assert!(!s.transition_to_scheduled(), "already queued");
        assert!(s.transition_to_running());
        assert!(!s.transition_to_scheduled(), "running: only notified");
        assert!(!s.transition_to_scheduled(), "second wake coalesces");
        assert!(s.transition_to_idle(), "notified: re-enqueue");
        assert!(s.transition_to_running());
        assert!(!s.transition_to_idle(), "no wake: idle");
        assert!(s.transition_to_scheduled(), "idle: the waker enqueues");
        s.transition_to_complete();
        assert!(s.is_complete());
        assert!(!s.transition_to_scheduled());
        assert!(!s.transition_to_running());
    }
}

#[cfg(all(test, perflab_loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    use super::*;

    /// A poller and a waker race; the wake is seen by a poll, and the task is enqueued at
    /// most once per wake.
    #[test]
    fn loom_task_state_no_lost_wake() {
        loom::model(|| {
            let state = Arc::new(TaskState::new_scheduled());
            let ready = Arc::new(AtomicBool::new(false));
            let enqueued = Arc::new(AtomicUsize::new(0));
            let waker = {
                let (state, ready, enqueued) = (
                    Arc::clone(&state),
                    Arc::clone(&ready),
                    Arc::clone(&enqueued),
                );
                loom::thread::spawn(move || {
                    ready.store(true, Ordering::Release);
                    if state.transition_to_scheduled() {
                        enqueued.fetch_add(1, Ordering::AcqRel);
                    }
                })
            };
            let mut polls = 0;
            let mut taken = 0;
            loop {
                assert!(state.transition_to_running());
                polls += 1;
                if ready.load(Ordering::Acquire) {
                    state.transition_to_complete();
                    break;
                }
                if state.transition_to_idle() {
                    continue;
                }
                // Idle: only the waker can bring it back, through the queue.
                while enqueued.load(Ordering::Acquire) == taken {
                    loom::thread::yield_now();
                }
                taken += 1;
            }
            waker.join().expect("waker");
            assert!(polls <= 2, "{polls} polls");
            assert!(enqueued.load(Ordering::Acquire) <= 1);
            assert!(state.is_complete());
        });
    }
}
