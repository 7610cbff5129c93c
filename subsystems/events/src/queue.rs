//! `SegmentedQueue`: a bounded FIFO made of fixed-size segments, where a consumer takes a whole segment per lock.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use tokio::sync::Notify;

use crate::error::{PushError, QueueClosed};
use crate::sync::{Mutex, lock};

/// Recycled empty segments kept for reuse; beyond that they are freed.
const SPARE_SEGMENTS: usize = 2;

/// A bounded multi-producer FIFO of at most `capacity = segment_size × max_segments` items,
/// stored in segments of `segment_size` slots that are recycled, not reallocated.
///
/// One mutex guards the segment list and is held only for O(1) work per item pushed and
/// O(1) per *segment* popped: [`pop_segment`](Self::pop_segment) swaps the whole front
/// segment out for the caller's empty buffer, so a consumer pays one lock per up to
/// `segment_size` items and processes them without holding it. Producers of a batch pay
/// one lock per batch ([`push_many`](Self::push_many)).
///
/// When full: [`push`](Self::push) fails, [`force_push`](Self::force_push) evicts the
/// oldest item, [`push_timeout`](Self::push_timeout) waits for space up to a deadline.
/// Memory stays within `max_segments + 1` segments plus [`SPARE_SEGMENTS`] spares (one
/// more than `max_segments` when evictions leave the front segment partly consumed).
pub struct SegmentedQueue<T> {
    state: Mutex<State<T>>,
    /// Woken when space frees up while a producer waits for it.
    space: Notify,
    segment_size: usize,
    capacity: usize,
}

struct State<T> {
    /// Non-empty segments, oldest first; the last one is being filled.
    segments: VecDeque<VecDeque<T>>,
    spare: Vec<VecDeque<T>>,
    len: usize,
    /// Producers registered on `space`.
    waiters: usize,
    closed: bool,
}

impl<T> fmt::Debug for SegmentedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentedQueue")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("segment_size", &self.segment_size)
            .finish()
    }
}

impl<T> SegmentedQueue<T> {
    /// A queue of `max_segments` segments of `segment_size` items; zeros are raised to 1.
    pub fn new(segment_size: usize, max_segments: usize) -> Self {
        let segment_size = segment_size.max(1);
        Self {
            state: Mutex::new(State {
                segments: VecDeque::new(),
                spare: Vec::new(),
                len: 0,
                waiters: 0,
                closed: false,
            }),
            space: Notify::new(),
            segment_size,
            capacity: segment_size.saturating_mul(max_segments.max(1)),
        }
    }

    /// Most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items per segment.
    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Items in the queue now.
    pub fn len(&self) -> usize {
        lock(&self.state).len
    }

    /// Whether the queue holds no item now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses every later push; items already in the queue can still be popped. Wakes
    /// waiting producers.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.space.notify_waiters();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Appends `item`, or gives it back when the queue is full or closed.
    pub fn push(&self, item: T) -> Result<(), PushError<T>> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(PushError::Closed(item));
        }
        if st.len >= self.capacity {
            return Err(PushError::Full(item));
        }
        st.push_back(item, self.segment_size);
        Ok(())
    }

    /// Appends `item`; when the queue is full, first removes and returns the oldest item.
    pub fn force_push(&self, item: T) -> Result<Option<T>, PushError<T>> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(PushError::Closed(item));
        }
        let evicted = if st.len >= self.capacity {
            st.pop_front(self.segment_size)
        } else {
            None
        };
        st.push_back(item, self.segment_size);
        Ok(evicted)
    }

    /// Moves items from the front of `items` to the queue while it has space, under one
    /// lock; returns how many moved (what stays in `items` did not fit).
    pub fn push_many(&self, items: &mut VecDeque<T>) -> Result<usize, QueueClosed> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(QueueClosed);
        }
        let n = items.len().min(self.capacity - st.len);
        for item in items.drain(..n) {
            st.push_back(item, self.segment_size);
        }
        Ok(n)
    }

    /// Moves every item of `items` to the queue under one lock, evicting the oldest items
    /// (queued ones first, then the batch's own first ones) to stay within capacity;
    /// returns how many were evicted.
    pub fn force_push_many(&self, items: &mut VecDeque<T>) -> Result<usize, QueueClosed> {
        let mut evicted = Vec::new();
        {
            let mut st = lock(&self.state);
            if st.closed {
                return Err(QueueClosed);
            }
            for item in items.drain(..) {
                if st.len >= self.capacity {
                    evicted.extend(st.pop_front(self.segment_size));
                }
                st.push_back(item, self.segment_size);
            }
        }
        // Evicted items are dropped outside the lock: their `Drop` may do anything.
        Ok(evicted.len())
    }

    /// Appends `item`, waiting (this thread parks) until there is space or `deadline`.
    pub fn push_timeout(&self, item: T, deadline: Instant) -> Result<(), PushError<T>> {
        let mut item = item;
        loop {
            match self.push(item) {
                Err(PushError::Full(back)) => item = back,
                done => return done,
            }
            if !self.wait_for_space(deadline) {
                return match self.push(item) {
                    Err(PushError::Full(back)) => Err(PushError::Timeout(back)),
                    done => done,
                };
            }
        }
    }

    /// Waits (this thread parks) until the queue has space, is closed, or `deadline`
    /// passes; whether it has space or is closed.
    pub fn wait_for_space(&self, deadline: Instant) -> bool {
        loop {
            let mut notified = pin!(self.space.notified());
            if !self.register(notified.as_mut()) {
                return true;
            }
            let woken = block_on_until(notified, deadline).is_some();
            // Another producer may have taken the space that woke us: wait again.
            if self.unregister() {
                return true;
            }
            if !woken || Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// [`wait_for_space`](Self::wait_for_space) for async code: the task sleeps instead of
    /// the thread. Inside a tokio runtime its time driver bounds the wait (a runtime
    /// built without `enable_time` panics here, as any tokio timeout does); outside any
    /// runtime it falls back to parking the thread.
    pub async fn space_available(&self, deadline: Instant) -> bool {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.wait_for_space(deadline);
        }
        loop {
            let mut notified = pin!(self.space.notified());
            if !self.register(notified.as_mut()) {
                return true;
            }
            let woken = tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_ok();
            if self.unregister() {
                return true;
            }
            if !woken || Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Removes and returns the oldest item.
    pub fn pop(&self) -> Option<T> {
        let mut st = lock(&self.state);
        let item = st.pop_front(self.segment_size);
        let wake = item.is_some() && st.waiters > 0;
        drop(st);
        if wake {
            self.space.notify_waiters();
        }
        item
    }

    /// Moves the oldest segment (up to `segment_size` items, oldest first) into `buf` and
    /// returns how many items it held. With an empty `buf` this is O(1) under the lock:
    /// the two buffers swap, and `buf`'s old allocation becomes a spare segment. Items
    /// already in `buf` stay ahead of the new ones.
    pub fn pop_segment(&self, buf: &mut VecDeque<T>) -> usize {
        let mut st = lock(&self.state);
        let Some(mut front) = st.segments.pop_front() else {
            return 0;
        };
        let n = front.len();
        st.len -= n;
        if buf.is_empty() {
            std::mem::swap(buf, &mut front);
        } else {
            buf.append(&mut front);
        }
        st.recycle(front, self.segment_size);
        let wake = st.waiters > 0;
        drop(st);
        if wake {
            self.space.notify_waiters();
        }
        n
    }

    /// Registers `notified` as a waiter while the queue is full and open (under the lock,
    /// so a pop after this point wakes it); false when there is no need to wait.
    fn register(&self, notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        let mut st = lock(&self.state);
        if st.closed || st.len < self.capacity {
            return false;
        }
        notified.enable();
        st.waiters += 1;
        true
    }

    fn unregister(&self) -> bool {
        let mut st = lock(&self.state);
        st.waiters -= 1;
        st.closed || st.len < self.capacity
    }
}

impl<T> State<T> {
    fn push_back(&mut self, item: T, segment_size: usize) {
        match self.segments.back_mut() {
            Some(seg) if seg.len() < segment_size => seg.push_back(item),
            _ => {
                let mut seg = self
                    .spare
                    .pop()
                    .unwrap_or_else(|| VecDeque::with_capacity(segment_size));
                seg.push_back(item);
                self.segments.push_back(seg);
            }
        }
        self.len += 1;
    }

    fn pop_front(&mut self, segment_size: usize) -> Option<T> {
        let front = self.segments.front_mut()?;
        let item = front.pop_front();
        if front.is_empty()
            && let Some(empty) = self.segments.pop_front()
        {
            self.recycle(empty, segment_size);
        }
        self.len -= 1;
        item
    }

    fn recycle(&mut self, seg: VecDeque<T>, segment_size: usize) {
        if self.spare.len() < SPARE_SEGMENTS && seg.capacity() >= segment_size {
            debug_assert!(seg.is_empty());
            self.spare.push(seg);
        }
    }
}

/// Unparks the thread that polls a future.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between polls, until it completes or `deadline`.
fn block_on_until<F: Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
    }
}

#[cfg(all(test, not(perflab_loom)))]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fifo_across_segments_and_capacity() {
        let q = SegmentedQueue::new(4, 3);
        assert_eq!(q.capacity(), 12);
        for i in 0..12 {
            q.push(i).expect("space");
        }
        assert_eq!(q.push(12), Err(PushError::Full(12)));
        let mut buf = VecDeque::new();
        assert_eq!(q.pop_segment(&mut buf), 4);
        assert_eq!(buf, [0, 1, 2, 3]);
        assert_eq!(q.pop(), Some(4));
        assert_eq!(q.len(), 7);
        buf.clear();
        assert_eq!(q.pop_segment(&mut buf), 3);
        assert_eq!(buf, [5, 6, 7]);
    }

    #[test]
    fn force_push_evicts_oldest() {
        let q = SegmentedQueue::new(2, 2);
        for i in 0..4 {
            assert_eq!(q.force_push(i), Ok(None));
        }
        assert_eq!(q.force_push(4), Ok(Some(0)));
        let mut batch: VecDeque<i32> = (5..12).collect();
        assert_eq!(q.force_push_many(&mut batch), Ok(7));
        let mut out = Vec::new();
        while let Some(x) = q.pop() {
            out.push(x);
        }
        assert_eq!(out, [8, 9, 10, 11]);
    }

    #[test]
    fn closed_queue_refuses_and_drains() {
        let q = SegmentedQueue::new(2, 2);
        q.push(1).expect("space");
        q.close();
        assert_eq!(q.push(2), Err(PushError::Closed(2)));
        assert_eq!(q.push_many(&mut VecDeque::from([3])), Err(QueueClosed));
        assert_eq!(q.pop(), Some(1));
        assert!(q.wait_for_space(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn push_timeout_waits_for_a_pop() {
        let q = Arc::new(SegmentedQueue::new(1, 1));
        q.push(0).expect("space");
        assert_eq!(
            q.push_timeout(1, Instant::now() + Duration::from_millis(5)),
            Err(PushError::Timeout(1))
        );
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 2 {
                    match q.pop() {
                        Some(x) => got.push(x),
                        None => thread::yield_now(),
                    }
                }
                got
            })
        };
        q.push_timeout(2, Instant::now() + Duration::from_secs(30))
            .expect("the consumer frees space");
        assert_eq!(consumer.join().expect("consumer"), [0, 2]);
    }

    #[tokio::test]
    async fn async_wait_is_woken_by_pop_segment() {
        let q = Arc::new(SegmentedQueue::new(2, 1));
        q.push(1).expect("space");
        q.push(2).expect("space");
        let waiter = {
            let q = Arc::clone(&q);
            tokio::spawn(async move {
                q.space_available(Instant::now() + Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        let mut buf = VecDeque::new();
        assert_eq!(q.pop_segment(&mut buf), 2);
        assert!(waiter.await.expect("task"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Force(u8),
        PushMany(Vec<u8>),
        Pop,
        PopSegment,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u8>().prop_map(Op::Push),
            any::<u8>().prop_map(Op::Force),
            prop::collection::vec(any::<u8>(), 0..10).prop_map(Op::PushMany),
            Just(Op::Pop),
            Just(Op::PopSegment),
        ]
    }

    proptest! {
        /// Against a plain bounded `VecDeque` model: same contents, same order, never over
        /// capacity, segments never larger than `segment_size`.
        #[test]
        fn behaves_like_a_bounded_deque(
            seg in 1usize..5,
            segs in 1usize..4,
            ops in prop::collection::vec(op(), 0..80),
        ) {
            let q = SegmentedQueue::new(seg, segs);
            let cap = seg * segs;
            let mut model: VecDeque<u8> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(x) => {
                        let r = q.push(x);
                        if model.len() < cap {
                            prop_assert!(r.is_ok());
                            model.push_back(x);
                        } else {
                            prop_assert_eq!(r, Err(PushError::Full(x)));
                        }
                    }
                    Op::Force(x) => {
                        let evicted = q.force_push(x).expect("open");
                        let want = if model.len() == cap { model.pop_front() } else { None };
                        prop_assert_eq!(evicted, want);
                        model.push_back(x);
                    }
                    Op::PushMany(xs) => {
                        let mut batch: VecDeque<u8> = xs.iter().copied().collect();
                        let n = q.push_many(&mut batch).expect("open");
                        let fit = xs.len().min(cap - model.len());
                        prop_assert_eq!(n, fit);
                        model.extend(&xs[..fit]);
                        prop_assert_eq!(batch.len(), xs.len() - fit);
                    }
                    Op::Pop => prop_assert_eq!(q.pop(), model.pop_front()),
                    Op::PopSegment => {
                        let mut buf = VecDeque::new();
                        let n = q.pop_segment(&mut buf);
                        prop_assert!(n <= seg);
                        prop_assert_eq!(n, buf.len());
                        let want: Vec<u8> = model.drain(..n).collect();
                        prop_assert_eq!(buf.into_iter().collect::<Vec<_>>(), want);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert!(q.len() <= cap);
            }
        }
    }
}
