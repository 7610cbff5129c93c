//! Parking idle workers without busy spinning, and waking exactly one when work arrives.
//!
//! One word packs the number of *searching* workers (out of local work, looking in the
//! global queues and at other workers) and of *sleeping* ones. A producer pushes its work,
//! then issues a SeqCst fence and reads the word: it wakes a sleeper only when nobody is
//! searching (a searcher will find the work). A worker going to sleep registers itself,
//! fences, then looks at every queue once more before it parks. Either the producer sees
//! the sleeper, or the sleeper sees the work (the two fences order them): no lost wakeup,
//! and at most one worker is woken per push while others are already looking.

use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering, fence, lock};

/// One sleeping worker counts this much in the state word; searchers count 1.
const SLEEPER: usize = 1 << 16;
const SEARCHING_MASK: usize = SLEEPER - 1;

/// A one-token park/unpark pair for one thread.
#[derive(Debug, Default)]
pub(crate) struct Parker {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    /// Blocks until a token is available, then consumes it.
    pub(crate) fn park(&self) {
        let mut token = lock(&self.notified);
        while !*token {
            token = self
                .cv
                .wait(token)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *token = false;
    }

    /// Makes a token available, waking the parked thread if there is one.
    pub(crate) fn unpark(&self) {
        let mut token = lock(&self.notified);
        *token = true;
        // Notify while holding the lock: the parker cannot return (and its owner cannot
        // free anything it guards) before we are done.
        self.cv.notify_one();
    }
}

/// Idle-worker bookkeeping of one scheduler.
#[derive(Debug)]
pub(crate) struct Sleep {
    state: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    parkers: Box<[Parker]>,
}

impl Sleep {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            state: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            parkers: (0..workers).map(|_| Parker::default()).collect(),
        }
    }

    pub(crate) fn parker(&self, worker: usize) -> &Parker {
        &self.parkers[worker]
    }

    /// Called after new work was pushed: wakes one sleeping worker unless one is searching.
    pub(crate) fn notify_one(&self) -> bool {
        fence(Ordering::SeqCst);
        let s = self.state.load(Ordering::SeqCst);
        if s & SEARCHING_MASK != 0 || s < SLEEPER {
            return false;
        }
        let mut list = lock(&self.sleepers);
        let s = self.state.load(Ordering::SeqCst);
        if s & SEARCHING_MASK != 0 {
            return false;
        }
        let Some(worker) = list.pop() else {
            return false;
        };
        // The woken worker comes back searching.
        self.state.fetch_sub(SLEEPER - 1, Ordering::SeqCst);
        drop(list);
        self.parkers[worker].unpark();
        true
    }

    /// Wakes every sleeping worker (shutdown).
    pub(crate) fn notify_all(&self) {
        let woken: Vec<usize> = {
            let mut list = lock(&self.sleepers);
            let n = list.len();
            self.state.fetch_sub(n * (SLEEPER - 1), Ordering::SeqCst);
            list.drain(..).collect()
        };
        for w in woken {
            self.parkers[w].unpark();
        }
    }

    /// A worker ran out of local work and starts looking elsewhere.
    pub(crate) fn start_searching(&self) {
        self.state.fetch_add(1, Ordering::SeqCst);
    }

    /// A searching worker found work. Returns `true` when it was the last searcher: the
    /// caller then wakes another worker, since more work may be waiting.
    pub(crate) fn stop_searching(&self) -> bool {
        self.state.fetch_sub(1, Ordering::SeqCst) & SEARCHING_MASK == 1
    }

    /// First half of going to sleep: registers `worker` as a sleeper (leaving the searching
    /// count if `searching`), then fences. The caller must then check every queue and call
    /// [`Sleep::cancel_sleep`] if it finds work, or [`Sleep::park`] otherwise.
    pub(crate) fn prepare_sleep(&self, worker: usize, searching: bool) {
        {
            let mut list = lock(&self.sleepers);
            list.push(worker);
            let delta = if searching { SLEEPER - 1 } else { SLEEPER };
            self.state.fetch_add(delta, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    /// Work turned up after [`Sleep::prepare_sleep`]: leave the sleepers. On return the
    /// worker is searching (counted as such).
    pub(crate) fn cancel_sleep(&self, worker: usize) {
        let mut list = lock(&self.sleepers);
        if let Some(pos) = list.iter().position(|&w| w == worker) {
            list.swap_remove(pos);
            self.state.fetch_sub(SLEEPER - 1, Ordering::SeqCst);
        } else {
            // A notifier already took us off the list, counted us as searching and is
            // about to unpark us: consume that token so it does not wake a later park.
            drop(list);
            self.parkers[worker].park();
        }
    }

    /// Second half of going to sleep: blocks until a notifier wakes `worker`. On return the
    /// worker is searching (the notifier counted it). A stale token (left by a latch or a
    /// `block_on` waker) does not end the sleep: only leaving the sleepers list does.
    pub(crate) fn park(&self, worker: usize) {
        loop {
            self.parkers[worker].park();
            if !lock(&self.sleepers).contains(&worker) {
                return;
            }
        }
    }

    /// Sleeping workers now (for the unit tests, which the loom build leaves out).
    #[cfg(all(test, not(perflab_loom)))]
    pub(crate) fn sleeping(&self) -> usize {
        self.state.load(Ordering::SeqCst) / SLEEPER
    }
}

#[cfg(all(test, not(perflab_loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn notify_wakes_a_sleeper_only_when_nobody_searches() {
        let sleep = Arc::new(Sleep::new(2));
        assert!(!sleep.notify_one(), "nobody sleeps");
        sleep.prepare_sleep(0, false);
        assert_eq!(sleep.sleeping(), 1);
        sleep.start_searching();
        assert!(
            !sleep.notify_one(),
            "worker 1 searches: it will find the work"
        );
        assert!(sleep.stop_searching(), "it was the last searcher");
        let parked = {
            let sleep = Arc::clone(&sleep);
            std::thread::spawn(move || sleep.park(0))
        };
        assert!(sleep.notify_one());
        parked.join().expect("woken");
        assert_eq!(sleep.sleeping(), 0);
        assert!(
            sleep.stop_searching(),
            "the woken worker came back searching"
        );
    }

    #[test]
    fn cancel_sleep_after_a_notify_consumes_the_token() {
        let sleep = Sleep::new(1);
        sleep.prepare_sleep(0, false);
        assert!(sleep.notify_one());
        sleep.cancel_sleep(0);
        assert!(sleep.stop_searching());
        // The token was consumed: a later unpark/park pair still pairs up.
        sleep.parker(0).unpark();
        sleep.parker(0).park();
    }
}

#[cfg(all(test, perflab_loom))]
mod loom_tests {
    use loom::sync::Arc;

    use super::*;

    /// A producer pushes one item and notifies; the worker runs the sleep protocol. The
    /// worker always ends up with the item (a lost wakeup would deadlock the model). The
    /// queue is a mutex-guarded flag: a push releases, a pop acquires, as in crossbeam.
    #[test]
    fn loom_sleep_no_lost_wakeup() {
        loom::model(|| {
            let sleep = Arc::new(Sleep::new(1));
            let queue = Arc::new(Mutex::new(false));
            let producer = {
                let (sleep, queue) = (Arc::clone(&sleep), Arc::clone(&queue));
                loom::thread::spawn(move || {
                    *lock(&queue) = true;
                    sleep.notify_one();
                })
            };
            let mut searching = false;
            loop {
                if std::mem::take(&mut *lock(&queue)) {
                    if searching {
                        sleep.stop_searching();
                    }
                    break;
                }
                sleep.prepare_sleep(0, searching);
                if *lock(&queue) {
                    sleep.cancel_sleep(0);
                } else {
                    sleep.park(0);
                }
                searching = true;
            }
            producer.join().expect("producer");
            assert_eq!(sleep.state.load(Ordering::SeqCst), 0);
        });
    }
}
