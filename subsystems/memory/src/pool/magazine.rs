//! Per-thread magazines and the shared depot behind them, with their counters.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::free_list::FreeList;

/// One thread's state in one pool. Aligned to 128 bytes: `thread_local` stores the
/// entries of different threads next to each other, and two threads must never write
/// to the same cache line.
#[repr(align(128))]
pub(crate) struct Local<T> {
    /// Only this thread ever borrows it.
    pub(crate) magazine: RefCell<Magazine<T>>,
    /// Written only by this thread; read by `stats` from any thread.
    pub(crate) counters: Arc<Counters>,
}

/// The most size classes a pool may have: magazines keep their lists inline (one
/// pointer less to follow on every allocation and release).
pub(crate) const MAX_CLASSES: usize = 32;

/// A thread's private free lists: one small LIFO list per class.
///
/// `repr(C)` keeps `releases_since_check` away from `headroom`: both change on every
/// release, and when they are adjacent the compiler merges the two updates into one
/// 16-byte load and store, which stalls on the next operation (a 16-byte load cannot
/// be forwarded from the two 8-byte stores an allocation leaves behind).
#[repr(C)]
pub(crate) struct Magazine<T> {
    pub(crate) releases_since_check: usize,
    /// The first `classes` lists are used.
    pub(crate) lists: [FreeList<T>; MAX_CLASSES],
    /// Bytes of the pool's retained-bytes budget this magazine has reserved.
    pub(crate) credit: usize,
    /// The part of `credit` not used by values on the lists: `credit - bytes()`. Kept
    /// instead of a byte count so a push or pop updates one field.
    pub(crate) headroom: usize,
    /// The pool's clear epoch this magazine has seen; a newer one means "drop everything".
    pub(crate) epoch: u64,
}

impl<T> Magazine<T> {
    pub(crate) fn new(capacities: &[usize], epoch: u64) -> Self {
        Self {
            lists: std::array::from_fn(|class| {
                FreeList::with_capacity(capacities.get(class).copied().unwrap_or(0))
            }),
            credit: 0,
            headroom: 0,
            releases_since_check: 0,
            epoch,
        }
    }

    /// Heap bytes of the values on the lists.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.credit - self.headroom
    }

    #[inline]
    pub(crate) fn pop(&mut self, class: usize) -> Option<T> {
        let (value, bytes) = self.lists[class].pop()?;
        self.headroom += bytes;
        Some(value)
    }

    /// Pushes a value; the caller has checked `bytes <= headroom`.
    #[inline]
    pub(crate) fn push(&mut self, class: usize, value: T, bytes: usize) {
        self.lists[class].push(value, bytes);
        self.headroom -= bytes;
    }

    /// Adds credit that comes with `bytes` of values (from the depot).
    #[inline]
    pub(crate) fn push_with_credit(&mut self, class: usize, value: T, bytes: usize) {
        self.lists[class].push(value, bytes);
        self.credit += bytes;
    }
}

/// The shared free lists that magazines overflow into and refill from.
pub(crate) struct Depot<T> {
    pub(crate) lists: Box<[FreeList<T>]>,
    /// Heap bytes of the values on the lists.
    pub(crate) bytes: usize,
    /// Counters of the depot's own work (trims) and of operations done on it directly by
    /// threads without a usable magazine. Read and written under the depot lock.
    pub(crate) counts: DepotCounts,
}

#[derive(Default)]
pub(crate) struct DepotCounts {
    pub(crate) reuses: u64,
    pub(crate) returned: u64,
    pub(crate) rejected: u64,
    pub(crate) trims: u64,
    pub(crate) trimmed: u64,
    pub(crate) trimmed_bytes: u64,
}

impl<T> Depot<T> {
    pub(crate) fn new(classes: usize) -> Self {
        Self {
            lists: (0..classes).map(|_| FreeList::with_capacity(0)).collect(),
            bytes: 0,
            counts: DepotCounts::default(),
        }
    }

    #[inline]
    pub(crate) fn pop(&mut self, class: usize) -> Option<(T, usize)> {
        let (value, bytes) = self.lists[class].pop()?;
        self.bytes -= bytes;
        Some((value, bytes))
    }

    #[inline]
    pub(crate) fn push(&mut self, class: usize, value: T, bytes: usize) {
        self.lists[class].push(value, bytes);
        self.bytes += bytes;
    }
}

/// A thread's statistics in one pool.
///
/// Each `Counters` has a single writer (the thread owning the magazine, or, for the
/// pool's shared instance, any thread with `fetch_add`), so the owner updates with a
/// relaxed load and store (a plain `mov`, no locked read-modify-write) and `stats`
/// reads without any lock. Aligned like `Local`, so no other thread writes its lines.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) reuses: AtomicU64,
    pub(crate) fresh: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) unclassified: AtomicU64,
    pub(crate) detached: AtomicU64,
    pub(crate) returned: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) trims: AtomicU64,
    pub(crate) trimmed: AtomicU64,
    pub(crate) trimmed_bytes: AtomicU64,
    pub(crate) refills: AtomicU64,
    pub(crate) flushes: AtomicU64,
    /// Gauge: heap bytes in the owner's magazine.
    pub(crate) retained_bytes: AtomicUsize,
}

impl Counters {
    /// Publishes the magazine's byte gauge.
    #[inline]
    pub(crate) fn publish<T>(&self, magazine: &Magazine<T>) {
        self.retained_bytes.store(magazine.bytes(), Relaxed);
    }
}

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}
