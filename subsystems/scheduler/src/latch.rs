//! Latches: one-shot "this job is done" signals that a waiting thread can sleep on.

use crate::sleep::Parker;
use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering, lock};

const UNSET: usize = 0;
const SLEEPING: usize = 1;
const SET: usize = 2;

/// Something a stack job sets once it has stored its result.
pub(crate) trait Latch {
    /// Marks the job done.
    ///
    /// # Safety
    /// `this` points to a live latch. The owner may free it as soon as the releasing store is
    /// visible, so the implementation must not touch `*this` after that store.
    unsafe fn set(this: *const Self);
}

/// The latch of a `join` whose owner is a worker: it helps with other work while the latch
/// is unset and parks on its own parker when there is none.
#[derive(Debug)]
pub(crate) struct WorkerLatch {
    state: AtomicUsize,
    owner: *const Parker,
}

impl WorkerLatch {
    /// A latch for the worker that owns `parker` (which outlives the latch: it lives in the
    /// scheduler the owner holds).
    pub(crate) fn new(parker: &Parker) -> Self {
        Self {
            state: AtomicUsize::new(UNSET),
            owner: parker,
        }
    }

    pub(crate) fn probe(&self) -> bool {
        self.state.load(Ordering::Acquire) == SET
    }

    /// Parks the owner until the latch is set. Only the owner calls this.
    pub(crate) fn wait(&self, parker: &Parker) {
        if self
            .state
            .compare_exchange(UNSET, SLEEPING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        // Unrelated unparks (a stale token) wake us early: look again.
        while !self.probe() {
            parker.park();
        }
    }
}

impl Latch for WorkerLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: `this` is live until the swap below.
        let (owner, state) = unsafe { ((*this).owner, &(*this).state) };
        if state.swap(SET, Ordering::AcqRel) == SLEEPING {
            // SAFETY: the owner is parked until this unpark, so its parker (owned by the
            // scheduler it holds) is alive; `self` is not touched after the swap.
            unsafe { (*owner).unpark() };
        }
    }
}

// SAFETY: the raw parker pointer is only dereferenced under the protocol above; `Parker` is
// `Sync`.
unsafe impl Sync for WorkerLatch {}
// SAFETY: as above.
unsafe impl Send for WorkerLatch {}

/// The latch of a thread outside the scheduler (`install`): a mutex and a condition variable.
#[derive(Debug, Default)]
pub(crate) struct LockLatch {
    done: Mutex<bool>,
    cv: Condvar,
}

impl LockLatch {
    pub(crate) fn wait(&self) {
        let mut done = lock(&self.done);
        while !*done {
            done = self
                .cv
                .wait(done)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl Latch for LockLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: the waiter cannot return (and free the latch) before it takes the lock,
        // which we hold until after the notification.
        let this = unsafe { &*this };
        let mut done = lock(&this.done);
        *done = true;
        this.cv.notify_all();
    }
}

#[cfg(all(test, perflab_loom))]
mod loom_tests {
    use loom::sync::Arc;

    use super::*;

    /// The setter races the owner going to sleep on the latch: the owner always wakes.
    #[test]
    fn loom_worker_latch_wakes_its_owner() {
        loom::model(|| {
            let parker = Arc::new(Parker::default());
            let latch = Arc::new(WorkerLatch::new(&parker));
            let setter = {
                let latch = Arc::clone(&latch);
                // SAFETY: the Arc keeps the latch alive.
                loom::thread::spawn(move || unsafe { WorkerLatch::set(Arc::as_ptr(&latch)) })
            };
            latch.wait(&parker);
            assert!(latch.probe());
            setter.join().expect("setter");
        });
    }
}
