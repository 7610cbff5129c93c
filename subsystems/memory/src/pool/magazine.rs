//! Per-thread magazines and the shared depot behind them, with their counters.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::free_list::FreeList;

/// One thread's state in one pool: the magazine (only its owner touches it) and the
/// counters (written by the owner, read by `stats` from any thread).
///
/// Aligned to 128 bytes: `thread_local` stores the entries of different threads next to
/// each other, and two threads must never write to the same cache line.
#[repr(C, align(128))]
pub(crate) struct Local<T> {
    /// Counters first: the gauge and the two per-operation counters share the first
    /// line with the owner word.
    pub(crate) counters: Counters,
    /// Serial of the thread that owns the magazine (see `tls.rs`); 0 for none.
    pub(crate) owner: AtomicU64,
    magazine: UnsafeCell<Magazine<T>>,
}

// SAFETY: other threads reach a `Local` only through `&Local` (the pool's `ThreadLocal`,
// for `stats` and takeover checks), and through it they use only the atomics. The
// `UnsafeCell` magazine is dereferenced only by its owner (`Local::magazine`'s contract),
// and ownership passes from one thread to the next with a happens-before edge (see
// `tls.rs`), so the magazine's `T` values move between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for Local<T> {}

impl<T> Local<T> {
    /// A magazine owned by the thread with serial `owner`, in a pool whose key is `key`
    /// and whose check interval is `trim_interval` releases. Its lists get storage when
    /// first used (see `FreeList::provision`).
    pub(crate) fn new(owner: u64, key: u64, trim_interval: u64) -> Self {
        Self {
            counters: Counters::default(),
            owner: AtomicU64::new(owner),
            magazine: UnsafeCell::new(Magazine {
                lists: std::array::from_fn(|_| FreeList::new()),
                credit: 0,
                check_at: trim_interval,
                seen_key: key,
            }),
        }
    }

    /// The magazine.
    ///
    /// # Safety
    /// The calling thread owns this `Local` (`owner` holds its serial, stored or read by
    /// this thread), and no other reference into the magazine is alive while the
    /// returned one is used. The pool keeps the second rule by construction: it takes
    /// this reference at the start of an operation, passes it down instead of taking
    /// another, and runs no code it does not control while it is alive (`Poolable`
    /// methods and drops of values run before or after; values to drop are collected and
    /// dropped once the reference is gone).
    #[inline(always)]
    #[expect(
        clippy::mut_from_ref,
        reason = "exclusive by the ownership protocol above"
    )]
    pub(crate) unsafe fn magazine(&self) -> &mut Magazine<T> {
        // SAFETY: the caller guarantees exclusive access (see above).
        unsafe { &mut *self.magazine.get() }
    }
}

/// The most size classes a pool may have: magazines keep their lists inline (one
/// pointer less to follow on every allocation and release).
pub(crate) const MAX_CLASSES: usize = 32;

/// A thread's private free lists, one small LIFO list per class, and its budget.
///
/// The byte count of the values on the lists is the `bytes` gauge of the `Local`'s
/// counters (one field serves the budget check and `stats`).
pub(crate) struct Magazine<T> {
    /// The first `classes` lists are used. A list's `Vec` capacity is the class's cap,
    /// or 0 until the thread first keeps a value of the class.
    pub(crate) lists: [FreeList<T>; MAX_CLASSES],
    /// Bytes of the pool's retained-bytes budget this magazine has reserved: the bytes
    /// of its values plus its headroom.
    pub(crate) credit: usize,
    /// The `returned` count at which the next periodic check runs.
    pub(crate) check_at: u64,
    /// The pool key this magazine has seen; another one means a `clear` since.
    pub(crate) seen_key: u64,
}

/// The shared free lists that magazines overflow into and refill from.
pub(crate) struct Depot<T> {
    pub(crate) lists: Box<[FreeList<T>]>,
    /// Heap bytes of the values on the lists.
    pub(crate) bytes: usize,
    /// Budget reserved (part of the pool's `reserved`) but held by no value: the credit
    /// of values taken out of the depot, which the next values put into it use. It moves
    /// under the depot lock the caller holds anyway, so a value that leaves through the
    /// depot and one that comes back through it touch no other shared counter.
    pub(crate) spare: usize,
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
            spare: 0,
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

    /// Takes up to `bytes` of spare credit; returns how much it took.
    pub(crate) fn take_spare(&mut self, bytes: usize) -> usize {
        let taken = self.spare.min(bytes);
        self.spare -= taken;
        taken
    }
}

/// A thread's statistics in one pool.
///
/// Each `Counters` has a single writer at a time (the thread owning the magazine; for
/// the pool's shared instance, any thread, with `fetch_add`), so the owner updates with
/// a relaxed load and store (no locked read-modify-write) and `stats` reads without any
/// lock.
#[derive(Default)]
pub(crate) struct Counters {
    /// Gauge: heap bytes of the values in the owner's magazine.
    pub(crate) bytes: AtomicUsize,
    pub(crate) reuses: AtomicU64,
    pub(crate) returned: AtomicU64,
    pub(crate) fresh: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) unclassified: AtomicU64,
    pub(crate) detached: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) trims: AtomicU64,
    pub(crate) trimmed: AtomicU64,
    pub(crate) trimmed_bytes: AtomicU64,
    pub(crate) refills: AtomicU64,
    pub(crate) flushes: AtomicU64,
}

/// Adds `n` to a counter that only the calling thread writes.
#[inline(always)]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}
