//! A subscriber's queue plus its "scheduled" flag: the hand-off protocol that runs each subscriber on at most one processing thread at a time and never strands an event.

use crate::queue::SegmentedQueue;
use crate::sync::{AtomicBool, Ordering};

/// A [`SegmentedQueue`] with a flag that is true while the mailbox sits in the ready queue
/// or is being drained by a processing thread.
///
/// Protocol: a producer pushes, then calls [`after_push`](Self::after_push); if that
/// returns true, the producer owns the only ticket to run this mailbox and must hand it to
/// a processing thread. The thread drains, then calls [`finish_run`](Self::finish_run); if
/// that returns true, it still (or again) owns the ticket and must run the mailbox again.
/// Why no event is stranded: `finish_run` clears the flag and *then* looks at the queue
/// under its lock; a push whose critical section comes after that look sees the cleared
/// flag (the queue's lock orders the two) and takes the ticket, and a push before it is
/// seen by the look. The loom tests below check this.
pub(crate) struct Mailbox<T> {
    pub(crate) queue: SegmentedQueue<T>,
    scheduled: AtomicBool,
}

impl<T> Mailbox<T> {
    pub(crate) fn new(queue: SegmentedQueue<T>) -> Self {
        Self {
            queue,
            scheduled: AtomicBool::new(false),
        }
    }

    /// After pushing: whether the caller took the ticket and must schedule a run.
    pub(crate) fn after_push(&self) -> bool {
        // The load keeps the common case (already scheduled) free of a write to a line
        // the processing thread also uses.
        !self.scheduled.load(Ordering::Acquire) && !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// After draining: whether the caller still holds the ticket and must run again.
    pub(crate) fn finish_run(&self) -> bool {
        self.scheduled.store(false, Ordering::Release);
        !self.queue.is_empty() && !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// Whether a run is pending or in progress.
    pub(crate) fn is_scheduled(&self) -> bool {
        self.scheduled.load(Ordering::Acquire)
    }
}

#[cfg(all(test, perflab_loom))]
mod loom_tests {
    use std::collections::VecDeque;

    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// One run of a processing thread: drain everything, then finish; returns the items
    /// and whether the ticket is still held.
    fn run(mb: &Mailbox<u32>, running: &AtomicUsize) -> (Vec<u32>, bool) {
        assert_eq!(
            running.fetch_add(1, Ordering::SeqCst),
            0,
            "two runs at once"
        );
        let mut got = Vec::new();
        let mut buf = VecDeque::new();
        while mb.queue.pop_segment(&mut buf) > 0 {
            got.extend(buf.drain(..));
        }
        running.fetch_sub(1, Ordering::SeqCst);
        (got, mb.finish_run())
    }

    /// A producer pushes two items while a processing thread runs whatever ticket exists;
    /// at the end every item was run exactly once, in order, and no ticket is left over.
    #[test]
    fn loom_no_event_is_stranded() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::new(SegmentedQueue::new(1, 4)));
            let tickets = Arc::new(AtomicUsize::new(0));
            let running = Arc::new(AtomicUsize::new(0));
            let producer = {
                let (mb, tickets) = (Arc::clone(&mb), Arc::clone(&tickets));
                loom::thread::spawn(move || {
                    for i in 0..2 {
                        mb.queue.push(i).expect("space");
                        if mb.after_push() {
                            assert_eq!(tickets.fetch_add(1, Ordering::SeqCst), 0, "two tickets");
                        }
                    }
                })
            };
            let worker = {
                let (mb, tickets, running) =
                    (Arc::clone(&mb), Arc::clone(&tickets), Arc::clone(&running));
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    if tickets
                        .compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        let (items, again) = run(&mb, &running);
                        got.extend(items);
                        if again {
                            tickets.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    got
                })
            };
            producer.join().expect("producer");
            let mut got = worker.join().expect("worker");
            while tickets.load(Ordering::SeqCst) == 1 {
                tickets.store(0, Ordering::SeqCst);
                let (items, again) = run(&mb, &running);
                got.extend(items);
                if again {
                    tickets.store(1, Ordering::SeqCst);
                }
            }
            assert_eq!(got, [0, 1]);
            assert!(mb.queue.is_empty());
            assert!(!mb.is_scheduled());
        });
    }

    /// Drop-oldest pushes racing a segment-popping consumer: nothing is duplicated, order
    /// is kept, and every item is either consumed or evicted.
    #[test]
    fn loom_force_push_against_pop_segment() {
        loom::model(|| {
            let q = Arc::new(SegmentedQueue::new(1, 2));
            let producer = {
                let q = Arc::clone(&q);
                loom::thread::spawn(move || {
                    let mut evicted = Vec::new();
                    for i in 0..3 {
                        evicted.extend(q.force_push(i).expect("open"));
                    }
                    evicted
                })
            };
            let mut got = Vec::new();
            let mut buf = VecDeque::new();
            if q.pop_segment(&mut buf) > 0 {
                got.extend(buf.drain(..));
            }
            let evicted = producer.join().expect("producer");
            while let Some(x) = q.pop() {
                got.push(x);
            }
            assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
            let mut all: Vec<u32> = got.iter().chain(&evicted).copied().collect();
            all.sort_unstable();
            assert_eq!(all, [0, 1, 2]);
        });
    }
}
