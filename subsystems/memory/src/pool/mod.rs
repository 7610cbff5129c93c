//! Size-classed object pools (`MemoryPool`) with per-thread magazines, and their loan handles (`PoolHandle`).
//!
//! # Design
//!
//! A request for capacity `n` is served from the smallest *size class* `>= n` (by
//! default the powers of two from 64 to 1 MiB, found with one bit scan and no branch on
//! `n`; other class lists use an out-of-line binary search). A returned value goes to the
//! largest class `<=` its capacity, so a free list of class `c` only ever holds values of
//! capacity `>= c`: the pool never hands out less than was asked.
//!
//! ## Concurrency: per-thread magazines in front of a shared depot
//!
//! This is the magazine/depot structure of Bonwick's slab allocator (and of the thread
//! caches of tcmalloc and mimalloc): the common case touches no shared memory at all.
//!
//! * Each thread has, per pool, a *magazine*: a small LIFO list per class (up to
//!   `magazine_size / class` values, between 2 and 64; a list gets its storage the
//!   first time the thread keeps a value of the class). Allocate pops from it, release
//!   pushes to it. Neither has an atomic read-modify-write, a lock, a hash or a heap
//!   allocation; the counters they update have a single writer, so they are relaxed
//!   loads and stores. A lock-based pool needs two atomic read-modify-writes per
//!   allocate/release cycle (a lock per side), and a lock-free queue such as `opool`'s
//!   two compare-and-swaps.
//! * **Finding the magazine** (`tls.rs`): each thread caches, in a constant-initialised
//!   `thread_local!` without a destructor, the pair (pool key, magazine pointer) it used
//!   last. A hit is one thread-pointer-relative load and a compare. Every pool has a key
//!   no other pool ever has; [`MemoryPool::clear`] gives the pool a new one, so every
//!   thread misses once and its magazine drops its values at that operation. A miss
//!   finds the magazine in the pool's [`thread_local`](mod@thread_local) table (a thread
//!   id, a bucket pointer, a presence flag) and caches it.
//! * **Ownership instead of a borrow flag**: a magazine sits in an `UnsafeCell` owned by
//!   one thread (its serial in the magazine's `owner` word); only the owner makes
//!   references into it, and no code the pool does not control runs while it has one
//!   (`Poolable` methods run before or after; values to drop are collected and dropped
//!   after). The `thread_local` crate hands a dead thread's entry to the next thread
//!   given the same id, and thread-local destructors run in an unspecified order, so
//!   the new thread takes the entry over only once the old owner's guard has cleared its
//!   cache and left the registry of live serials (whose mutex orders the two threads'
//!   uses of the magazine); until then it uses the depot directly.
//! * A magazine that is full for a class hands half of it (a batch) to the shared
//!   *depot*; an empty one takes a value and a batch from it before building a new
//!   value. The depot is one short spin-lock critical section per batch (see
//!   `lock.rs`), so a producer thread that releases what a consumer thread allocates
//!   still reuses memory, at one lock per batch instead of one per value.
//! * A thread that never allocated from the pool releases straight to the depot until
//!   it has released 32 values (any pools), then gets a magazine: a consumer thread
//!   batches its releases, while a thread that returns a few handles and exits leaves
//!   nothing stranded in a magazine nobody uses.
//! * **Large values** (a quarter of a credit chunk or more: 256 KiB and up by default)
//!   are kept only in classes the thread allocates from, and a refill takes them one at
//!   a time. A consumer's magazine would otherwise keep the last values of every burst
//!   away from the producer, which then allocates new ones: with the 256 in-flight
//!   256 KiB buffers of the two-thread bench exactly filling the default 64 MiB, 1-2% of
//!   releases were refused and their buffers reallocated (~3 µs each).
//! * Two threads working on their own values never write a shared cache line: a
//!   magazine and its counters are 128-byte aligned, and the only shared word read on
//!   the hot path (the pool key) is written only by `clear`.
//!
//! ## Memory bounds: budget, credit and trimming
//!
//! `max_retained_bytes` bounds the heap bytes of all free values, magazines and depot
//! together. A magazine reserves budget in chunks (*credit*, 1/64 of the bound) with a
//! compare-and-swap on the pool's reserved total, so the shared counter is touched once
//! per chunk rather than once per value, and keeps at most two chunks unused.
//! Values moving between a magazine and the depot carry their bytes with them; a value
//! leaving the pool through the depot leaves its reservation there as *spare* credit,
//! which the next value put into the depot uses (both under the lock already held), so
//! a value that goes round through the depot touches no budget counter. A value
//! released when no budget is left is dropped; retained bytes never pass the bound. A
//! thread's unused credit (at most two chunks) is not available to other threads, so
//! small values may be refused when the pool is that close to its bound.
//!
//! Idle values are found with low-water marks (the rule tcmalloc's thread caches use):
//! each free list remembers the smallest length it reached since its interval began;
//! the list is LIFO, so the bottom `low_water` values were not needed by any allocation
//! in the interval. Every `trim_interval` releases, a thread ends its magazine's
//! interval: its idle values go to the depot, where other threads can use them, and the
//! depot's interval ends too. The depot's **fragmentation** is its idle bytes over its
//! retained bytes (wasted capacity over held capacity); when it is over
//! `fragmentation_threshold`, the depot drops its idle values. A steady
//! allocate/release cycle keeps its low-water mark at zero and is never trimmed; a
//! burst that is over leaves idle values, which move to the depot at one check and are
//! dropped at a later one. [`MemoryPool::trim`] and [`MemoryPool::clear`] do this on
//! demand.
//!
//! ## The hot path, instruction by instruction
//!
//! Measured with the memory suite (`memory/pool_cycle*`: allocate, touch one byte,
//! release; callgrind counts one warm cycle, bench wrapper included) on this project's
//! 2-core VM:
//!
//! | | before | after |
//! |---|---|---|
//! | callgrind Ir per cycle | 530 (296 of them moving the pool) | 158 |
//! | one thread, wall time | ~16 ns (vec 13-17, opool 14) | 5.6-6 ns |
//! | two threads, wall time | 30-51 ns (object_pool ~30) | 19-26 ns up to 16 KiB, 33-37 ns at 256 KiB |
//!
//! What bought it, in order of effect:
//!
//! * **No store-forwarding stalls.** A value pushed on a list is written word by word;
//!   the compiler copies a 24-byte `Vec` with a 16-byte load, which cannot take its data
//!   from two pending word stores and waits for them to reach the cache (~10 cycles).
//!   Popping the value just pushed hit that on every cycle, and so did merging the fast
//!   path's value with the slow path's `Result` in a stack slot. Values are now read
//!   with word loads (`free_list::read_by_words`), and all take paths meet on a
//!   *pointer* to the value, read once (`Shared::take_in_place`). With the rest of the
//!   changes in place, each stall alone kept the cycle at 16-24 ns instead of 6-7.
//! * **The pool is one pointer** (`Box` of the shared state): the callgrind bench moves
//!   the pool in and out of the measured function, which copied 600 bytes (296 Ir).
//! * The magazine cache (above) instead of a `thread_local` lookup and `RefCell` flag on
//!   every operation; counters inside the magazine's `Local` instead of behind an
//!   `Arc`; the byte gauge doubling as the budget check; the check interval compared
//!   against the `returned` counter instead of a separate countdown.
//! * Handles are the value and one word (the pool's address, its low bit saying
//!   whether the handle owns an `Arc` count): no `Option` to test, no enum to match.
//! * Internal take paths return `Option<T>` (niche, no error payload); the error is
//!   built on the cold path. Cold paths and the binary search are out of line.
//!
//! Two threads at 256 KiB remain ~10% behind `object_pool`: both sides take the depot
//! lock once per value there (batches of large values would strand budget, see above;
//! `object_pool`'s mutex costs two atomic read-modify-writes per side, so the gap is not
//! in the atomics), and the bench's own copy of each handle into its batch re-reads the
//! handle's word stores with 16-byte loads (two stalls for our handle, one for
//! `object_pool`'s; a library cannot make a 16-byte store of a pointer-carrying value in
//! stable Rust without losing the pointer's provenance).

mod classes;
mod free_list;
mod handle;
mod lock;
mod magazine;
mod poolable;
mod tls;

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use Ordering::Relaxed;
use classes::SizeClasses;
use free_list::read_by_words;
pub use handle::PoolHandle;
use lock::SpinLock;
use magazine::{Counters, Depot, Local, MAX_CLASSES, Magazine, bump};
pub use poolable::Poolable;
use thread_local::ThreadLocal;

use crate::error::MemoryError;

/// Configuration of a [`MemoryPool`]; [`PoolConfig::default`] gives the defaults listed
/// on each field.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Size classes, in the value's capacity units (bytes for `Vec<u8>`). Sorted and
    /// deduplicated when the pool is built. Default: powers of two from 64 to 1 MiB.
    pub size_classes: Vec<usize>,
    /// Fragmentation of the shared depot (idle bytes / retained bytes, 0..=1) over which
    /// its idle values are dropped at a check. Default 0.5.
    pub fragmentation_threshold: f64,
    /// Upper bound on heap bytes held by free values, all threads together.
    /// Default 64 MiB.
    pub max_retained_bytes: usize,
    /// Releases by one thread between two checks of its magazine (and of the depot).
    /// Default 1024.
    pub trim_interval: usize,
    /// Capacity units a thread may keep per class in its magazine: the class holds
    /// `magazine_size / class` values, clamped to 2..=64. Default 256 Ki.
    pub magazine_size: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            size_classes: (6..=20).map(|shift| 1usize << shift).collect(),
            fragmentation_threshold: 0.5,
            max_retained_bytes: 64 << 20,
            trim_interval: 1024,
            magazine_size: 256 << 10,
        }
    }
}

/// Builder of a [`MemoryPool`], from [`MemoryPool::builder`].
pub struct PoolBuilder<T> {
    config: PoolConfig,
    _values: PhantomData<fn() -> T>,
}

impl<T: Poolable> PoolBuilder<T> {
    /// Sets the size classes (any order; duplicates are merged).
    pub fn size_classes(mut self, classes: impl IntoIterator<Item = usize>) -> Self {
        self.config.size_classes = classes.into_iter().collect();
        self
    }

    /// Sets the fragmentation threshold (0..=1).
    pub fn fragmentation_threshold(mut self, threshold: f64) -> Self {
        self.config.fragmentation_threshold = threshold;
        self
    }

    /// Sets the bound on bytes retained by free values.
    pub fn max_retained_bytes(mut self, bytes: usize) -> Self {
        self.config.max_retained_bytes = bytes;
        self
    }

    /// Sets the number of releases by a thread between checks.
    pub fn trim_interval(mut self, releases: usize) -> Self {
        self.config.trim_interval = releases;
        self
    }

    /// Sets the capacity units a thread's magazine keeps per class.
    pub fn magazine_size(mut self, units: usize) -> Self {
        self.config.magazine_size = units;
        self
    }

    /// Builds the pool.
    ///
    /// # Errors
    /// [`MemoryError::InvalidConfig`] or [`MemoryError::InvalidSize`] for an empty class
    /// list, a zero class, a threshold outside 0..=1, or a zero trim interval.
    pub fn build(self) -> Result<MemoryPool<T>, MemoryError> {
        MemoryPool::with_config(self.config)
    }
}

impl<T> fmt::Debug for PoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .finish()
    }
}

/// A snapshot of a pool's counters. Exact when no thread is using the pool; under
/// concurrent use each field is exact but fields may be read at slightly different times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolStats {
    /// Handles given out: `reuses + fresh + oversize`.
    pub allocations: u64,
    /// Allocations served with a free value.
    pub reuses: u64,
    /// Allocations that built a new value because no free list had one.
    pub fresh: u64,
    /// Allocations over the largest class, served with an unpooled value.
    pub oversize: u64,
    /// Values that came back (dropped handles and `deallocate`): `returned + discarded`.
    pub releases: u64,
    /// Released values kept.
    pub returned: u64,
    /// Released values dropped: budget full, or a capacity that fits no class.
    pub discarded: u64,
    /// Values taken out of the pool with `into_inner`.
    pub detached: u64,
    /// Handles alive now: `allocations - releases - detached`.
    pub outstanding: u64,
    /// Batches a thread took from the shared depot.
    pub refills: u64,
    /// Batches a thread gave to the shared depot.
    pub flushes: u64,
    /// Trims that dropped idle values.
    pub trims: u64,
    /// Values dropped by trims and clears.
    pub trimmed: u64,
    /// Bytes dropped by trims and clears.
    pub trimmed_bytes: u64,
    /// Free values held (magazines and depot): `returned - reuses - trimmed`.
    pub retained_count: usize,
    /// Heap bytes of the free values (never over `max_retained_bytes`).
    pub retained_bytes: usize,
    /// Depot bytes idle since the start of the previous depot interval (estimate).
    pub idle_bytes: usize,
    /// `reuses / allocations` (0 when nothing was allocated).
    pub hit_rate: f64,
    /// `idle_bytes / retained_bytes` (0 when nothing is retained).
    pub fragmentation: f64,
    /// The configured bound on retained bytes.
    pub max_retained_bytes: usize,
}

/// A thread-safe pool of reusable values (`Vec<u8>`, `Vec<T>`, `String`, or any
/// [`Poolable`]) in size classes. See the [module documentation](self) for the design.
///
/// The pool is one pointer to its shared state, so moving it copies eight bytes.
pub struct MemoryPool<T: Poolable> {
    shared: Box<Shared<T>>,
}

/// The state of a pool. `repr(C)` keeps the fields read on every operation (the key and
/// the class table) on the first line, away from the lines slow paths write.
#[repr(C)]
struct Shared<T: Poolable> {
    /// This pool's key in the threads' magazine caches (see `tls.rs`): unique to this
    /// pool, and replaced by `clear` so every thread's cache misses once and its
    /// magazine drops its values. Written only by `clear`.
    key: AtomicU64,
    /// Values of at least this many bytes (a quarter credit chunk) are *large*: a
    /// thread keeps them only in classes it allocates from (see `release_slow`).
    large_from: usize,
    classes: SizeClasses,
    /// Releases into a magazine between two of its checks.
    trim_interval: u64,
    credit_chunk: usize,
    /// Per class: how many values a magazine keeps, and how many move in one batch.
    magazine_caps: Box<[usize]>,
    batch_sizes: Box<[usize]>,
    locals: ThreadLocal<Local<T>>,
    config: PoolConfig,
    depot: Padded<SpinLock<Depot<T>>>,
    /// Bytes reserved from the budget: every magazine's credit plus the depot's bytes
    /// and spare credit. Never over `max_retained_bytes`.
    reserved: Padded<AtomicUsize>,
    /// Counters of operations done without a magazine (updated with `fetch_add`).
    counters: Padded<Counters>,
}

impl<T: Poolable> MemoryPool<T> {
    /// A pool with [`PoolConfig::default`].
    pub fn new() -> Self {
        match Self::with_config(PoolConfig::default()) {
            Ok(pool) => pool,
            Err(err) => unreachable!("the default pool configuration is valid: {err}"),
        }
    }

    /// A builder starting from [`PoolConfig::default`].
    pub fn builder() -> PoolBuilder<T> {
        PoolBuilder {
            config: PoolConfig::default(),
            _values: PhantomData,
        }
    }

    /// A pool with the given configuration.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn with_config(mut config: PoolConfig) -> Result<Self, MemoryError> {
        let classes = SizeClasses::new(std::mem::take(&mut config.size_classes))?;
        config.size_classes = classes.sizes().to_vec();
        if !(0.0..=1.0).contains(&config.fragmentation_threshold) {
            return Err(MemoryError::InvalidConfig(format!(
                "fragmentation threshold {} is outside 0..=1",
                config.fragmentation_threshold
            )));
        }
        if config.trim_interval == 0 {
            return Err(MemoryError::InvalidConfig(
                "trim interval must be at least one release".to_owned(),
            ));
        }
        let magazine_caps: Box<[usize]> = classes
            .sizes()
            .iter()
            .map(|&class| (config.magazine_size / class).clamp(2, 64))
            .collect();
        let batch_sizes = magazine_caps.iter().map(|&cap| cap / 2).collect();
        let shared = Shared {
            key: AtomicU64::new(tls::new_key()),
            depot: Padded(SpinLock::new(Depot::new(classes.len()))),
            classes,
            trim_interval: u64::try_from(config.trim_interval).unwrap_or(u64::MAX),
            credit_chunk: config.max_retained_bytes / 64,
            large_from: (config.max_retained_bytes / 64 / 4).max(1),
            magazine_caps,
            batch_sizes,
            locals: ThreadLocal::new(),
            reserved: Padded(AtomicUsize::new(0)),
            counters: Padded(Counters::default()),
            config,
        };
        Ok(Self {
            shared: Box::new(shared),
        })
    }

    /// A value of capacity at least `size_hint`, from the smallest class that fits.
    /// Over the largest class, a fresh unpooled value of capacity `size_hint` (dropped,
    /// not kept, when it comes back).
    ///
    /// # Errors
    /// [`MemoryError::AllocationFailed`] if a new value could not be allocated (capacity
    /// overflow or allocator failure).
    #[inline(always)]
    pub fn allocate(&self, size_hint: usize) -> Result<PoolHandle<'_, T>, MemoryError> {
        match self.shared.take_sized(size_hint) {
            Some(value) => Ok(PoolHandle::borrowed(self, value)),
            None => Err(self.shared.allocation_failed(size_hint)),
        }
    }

    /// Like [`allocate`](Self::allocate), but a size over the largest class is an error
    /// instead of an unpooled value: every value it hands out comes from, and returns to,
    /// a size class.
    ///
    /// # Errors
    /// [`MemoryError::SizeTooLarge`] over the largest class; otherwise as `allocate`.
    #[inline]
    pub fn allocate_exact(&self, size: usize) -> Result<PoolHandle<'_, T>, MemoryError> {
        let shared = &*self.shared;
        let class = shared
            .classes
            .ceil_index(size)
            .ok_or(MemoryError::SizeTooLarge {
                size,
                largest: shared.classes.largest(),
            })?;
        match shared.take(class) {
            Some(value) => Ok(PoolHandle::borrowed(self, value)),
            None => Err(shared.allocation_failed(size)),
        }
    }

    /// Like [`allocate`](Self::allocate), for a pool in an `Arc`: the handle holds a
    /// clone of the `Arc` and has no borrow, so it can move into `'static` tasks.
    ///
    /// # Errors
    /// As `allocate`.
    #[inline]
    pub fn allocate_owned(
        self: &Arc<Self>,
        size_hint: usize,
    ) -> Result<PoolHandle<'static, T>, MemoryError>
    where
        T: 'static,
    {
        match self.shared.take_sized(size_hint) {
            Some(value) => Ok(PoolHandle::shared(Arc::clone(self), value)),
            None => Err(self.shared.allocation_failed(size_hint)),
        }
    }

    /// Returns a handle's value to the pool now (what dropping the handle does).
    ///
    /// # Errors
    /// [`MemoryError::ForeignHandle`] if another pool handed the handle out; the value
    /// then goes back to that pool.
    pub fn deallocate(&self, handle: PoolHandle<'_, T>) -> Result<(), MemoryError> {
        if !std::ptr::eq(handle.pool(), self) {
            return Err(MemoryError::ForeignHandle);
        }
        drop(handle);
        Ok(())
    }

    /// A snapshot of the counters of every thread and of the depot.
    pub fn stats(&self) -> PoolStats {
        let shared = &*self.shared;
        let mut stats = PoolStats {
            max_retained_bytes: shared.config.max_retained_bytes,
            ..PoolStats::default()
        };
        let mut discarded = 0;
        let locals = shared.locals.iter().map(|local| &local.counters);
        for c in locals.chain([&shared.counters.0]) {
            stats.reuses += c.reuses.load(Relaxed);
            stats.fresh += c.fresh.load(Relaxed);
            stats.oversize += c.oversize.load(Relaxed);
            stats.returned += c.returned.load(Relaxed);
            discarded += c.rejected.load(Relaxed) + c.unclassified.load(Relaxed);
            stats.detached += c.detached.load(Relaxed);
            stats.refills += c.refills.load(Relaxed);
            stats.flushes += c.flushes.load(Relaxed);
            stats.trims += c.trims.load(Relaxed);
            stats.trimmed += c.trimmed.load(Relaxed);
            stats.trimmed_bytes += c.trimmed_bytes.load(Relaxed);
            stats.retained_bytes += c.bytes.load(Relaxed);
        }
        {
            let depot = shared.depot.0.lock();
            let counts = &depot.counts;
            stats.reuses += counts.reuses;
            stats.returned += counts.returned;
            discarded += counts.rejected;
            stats.trims += counts.trims;
            stats.trimmed += counts.trimmed;
            stats.trimmed_bytes += counts.trimmed_bytes;
            stats.retained_bytes += depot.bytes;
            stats.idle_bytes = depot.lists.iter().map(|l| l.idle_bytes_settled()).sum();
        }
        stats.allocations = stats.reuses + stats.fresh + stats.oversize;
        let retained = stats.returned.saturating_sub(stats.reuses + stats.trimmed);
        stats.retained_count = usize::try_from(retained).unwrap_or(usize::MAX);
        stats.discarded = discarded;
        stats.releases = stats.returned + stats.discarded;
        stats.outstanding = stats
            .allocations
            .saturating_sub(stats.releases + stats.detached);
        stats.hit_rate = ratio(stats.reuses as f64, stats.allocations as f64);
        stats.fragmentation = ratio(stats.idle_bytes as f64, stats.retained_bytes as f64);
        stats
    }

    /// Drops the values idle since the previous check (or `trim`) in the calling
    /// thread's magazine and in the shared depot, whatever the fragmentation, and starts
    /// new intervals. Calling it twice with no allocations in between empties both.
    /// Other threads' magazines are left alone (they trim at their own checks). Returns
    /// the bytes freed.
    pub fn trim(&self) -> usize {
        let shared = &*self.shared;
        let mut garbage = Vec::new();
        if let Some(local) = shared.claim(false, &mut garbage) {
            // SAFETY: `claim` returned a magazine this thread owns; this is the only
            // reference into it, and no foreign code runs while it lives (the values go
            // to `garbage`, dropped at the end).
            let magazine = unsafe { local.magazine() };
            let (mut count, mut bytes) = (0, 0);
            for list in &mut magazine.lists[..shared.classes.len()] {
                let (n, b) = list.drain_idle(|value, b| garbage.push((value, b)));
                count += n;
                bytes += b;
            }
            // The values leave with their share of the magazine's credit.
            magazine.credit -= bytes;
            sub(&local.counters.bytes, bytes);
            shared.reserved.0.fetch_sub(bytes, Relaxed);
            record_trim(&local.counters, count, bytes);
        }
        {
            let mut depot = shared.depot.0.lock();
            let (mut count, mut bytes) = (0, 0);
            for list in depot.lists.iter_mut() {
                let (n, b) = list.drain_idle(|value, b| garbage.push((value, b)));
                count += n;
                bytes += b;
            }
            depot_trimmed(&mut depot, count, bytes);
            let spare = std::mem::take(&mut depot.spare);
            shared.reserved.0.fetch_sub(bytes + spare, Relaxed);
        }
        let freed = garbage.iter().map(|(_, bytes)| bytes).sum();
        drop(garbage);
        freed
    }

    /// Drops every free value of the depot and of the calling thread's magazine now;
    /// other threads drop their magazines' values at their next operation on the pool.
    /// Returns the bytes freed now.
    pub fn clear(&self) -> usize {
        let shared = &*self.shared;
        shared.key.store(tls::new_key(), Relaxed);
        let mut garbage = Vec::new();
        // Claiming under the new key empties this thread's magazine.
        shared.claim(false, &mut garbage);
        {
            let mut depot = shared.depot.0.lock();
            let (mut count, mut bytes) = (0, 0);
            for list in depot.lists.iter_mut() {
                let (n, b) = list.drain_all(|value, b| garbage.push((value, b)));
                count += n;
                bytes += b;
            }
            depot_trimmed(&mut depot, count, bytes);
            let spare = std::mem::take(&mut depot.spare);
            shared.reserved.0.fetch_sub(bytes + spare, Relaxed);
        }
        let freed = garbage.iter().map(|(_, bytes)| bytes).sum();
        drop(garbage);
        freed
    }

    /// The size classes, sorted.
    pub fn size_classes(&self) -> &[usize] {
        self.shared.classes.sizes()
    }

    /// The configuration in effect (size classes sorted and deduplicated).
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Returns a value to this pool (the `Drop` of [`PoolHandle`]).
    #[inline(always)]
    pub(crate) fn release(&self, value: T) {
        self.shared.release(value);
    }

    pub(crate) fn record_detached(&self) {
        let shared = &*self.shared;
        shared.count(|c| &c.detached);
    }
}

impl<T: Poolable> Shared<T> {
    /// This thread's magazine in this pool, if the thread's cache holds it: the hot
    /// path's only way to its magazine.
    #[inline(always)]
    fn cached_local(&self) -> Option<&Local<T>> {
        let local = tls::cached(self.key.load(Relaxed))?;
        // SAFETY: a thread caches a key only with a pointer to its own `Local` in the
        // pool that had that key (`claim`), and keys are never reused: this pool, alive
        // while `self` is borrowed, is that pool, so the pointer is to a `Local<T>` in
        // `self.locals`, which never moves or frees its entries before the pool drops.
        Some(unsafe { local.cast::<Local<T>>().as_ref() })
    }

    /// A value for `size_hint`: pooled up to the largest class, unpooled over it.
    /// `None` when a new value could not be allocated (the caller builds the error).
    #[inline(always)]
    fn take_sized(&self, size_hint: usize) -> Option<T> {
        let mut out = MaybeUninit::uninit();
        let src = match self.classes.ceil_index(size_hint) {
            Some(class) => self.take_in_place(class, &mut out),
            None => self
                .take_oversize(size_hint, &mut out)
                .then_some(out.as_ptr()),
        }?;
        // SAFETY: `take_in_place` and `take_oversize` return a pointer to an initialised
        // value given up by its owner (see `take_in_place`), read here exactly once.
        Some(unsafe { read_by_words(src) })
    }

    /// A value of class `class`: from this thread's magazine, else a batch from the
    /// depot, else new (`None` if that allocation failed).
    #[inline(always)]
    fn take(&self, class: usize) -> Option<T> {
        let mut out = MaybeUninit::uninit();
        let src = self.take_in_place(class, &mut out)?;
        // SAFETY: as in `take_sized`.
        Some(unsafe { read_by_words(src) })
    }

    /// The pointer side of `take`: where the value of class `class` lies, given up by
    /// its owner: the slot just popped from this thread's magazine (the list no longer
    /// owns it and is not touched before the caller reads it), or `out`, filled by the
    /// slow side. `None` if a new value could not be allocated.
    ///
    /// Every path meets on this pointer and the value is read once, word by word, after
    /// they meet. When each side returned an `Option<T>` instead, the compiler merged
    /// them in a stack slot that the fast side wrote in words and then copied with
    /// 16-byte loads: a load that spans two pending stores cannot be forwarded, and that
    /// stall cost ~10 ns per allocation (`read_by_words` explains the same stall on the
    /// list itself).
    #[inline(always)]
    fn take_in_place(&self, class: usize, out: &mut MaybeUninit<T>) -> Option<*const T> {
        let Some(local) = self.cached_local() else {
            return self.take_uncached(class, out).then_some(out.as_ptr());
        };
        // SAFETY: a cached `Local` is owned by this thread (`claim` caches only owned
        // ones, and a thread loses a magazine only after its guard cleared the cache);
        // this is the only reference into the magazine, and nothing below calls code the
        // pool does not control. It is not used past the pop.
        let magazine = unsafe { local.magazine() };
        let list = &mut magazine.lists[class_slot(class)];
        if !list.is_empty() {
            // SAFETY: the list is not empty; the caller reads the value once, before
            // anything else touches the list.
            let (value, bytes) = unsafe { list.pop_in_place() };
            sub(&local.counters.bytes, bytes);
            bump(&local.counters.reuses, 1);
            return Some(value);
        }
        self.take_refill(local, class, out).then_some(out.as_ptr())
    }

    /// The error of an allocation of `size_hint` that got no value.
    #[cold]
    #[inline(never)]
    fn allocation_failed(&self, size_hint: usize) -> MemoryError {
        let capacity = match self.classes.ceil_index(size_hint) {
            Some(class) => self.classes.size(class),
            None => size_hint,
        };
        MemoryError::AllocationFailed { capacity }
    }

    /// Slow side of `take` with the cached magazine: a batch from the depot, else new.
    /// Writes the value to `out`; `false` if a new value could not be allocated.
    #[cold]
    #[inline(never)]
    fn take_refill(&self, local: &Local<T>, class: usize, out: &mut MaybeUninit<T>) -> bool {
        // SAFETY: `local` is the cached magazine, owned by this thread (see
        // `take_in_place`, whose reference is no longer used); `refill_empty` is the only
        // user of this one and calls no foreign code.
        let magazine = unsafe { local.magazine() };
        // `take` found the list empty.
        let value = match self.refill_empty(local, magazine, class) {
            Some(value) => Some(value),
            None => self.take_fresh(Some(local), class),
        };
        fill(out, value)
    }

    /// Slow side of `take` without a cached magazine: claims this thread's magazine
    /// (honouring a clear) and refills it, else takes from the depot, else builds.
    /// Writes the value to `out`; `false` if a new value could not be allocated.
    #[cold]
    #[inline(never)]
    fn take_uncached(&self, class: usize, out: &mut MaybeUninit<T>) -> bool {
        let mut garbage = Vec::new();
        let local = self.claim(true, &mut garbage);
        let value = match local {
            Some(local) => {
                // SAFETY: `claim` returned a magazine this thread owns; `refill` is the
                // only user of this reference and calls no foreign code.
                let magazine = unsafe { local.magazine() };
                self.refill(local, magazine, class)
            }
            None => self.take_from_depot(class),
        };
        // Dropped after the magazine reference is gone: dropping values may run any code.
        drop(garbage);
        let value = match value {
            Some(value) => Some(value),
            None => self.take_fresh(local, class),
        };
        fill(out, value)
    }

    /// A new value of class `class` (no magazine reference may be alive: this runs
    /// `Poolable` code), counted on `local` if this thread owns it.
    fn take_fresh(&self, local: Option<&Local<T>>, class: usize) -> Option<T> {
        let value = T::try_with_capacity(self.classes.size(class))?;
        match local {
            // Still owned: a live thread never loses its magazine.
            Some(local) => bump(&local.counters.fresh, 1),
            None => {
                self.counters.0.fresh.fetch_add(1, Relaxed);
            }
        }
        Some(value)
    }

    /// Returns a value to the pool.
    #[inline(always)]
    fn release(&self, mut value: T) {
        let Some(class) = self.classes.floor_index(value.capacity()) else {
            self.count_unclassified();
            return;
        };
        // `Poolable` code runs before the magazine is touched.
        value.reset();
        let bytes = value.heap_bytes();
        let Some(local) = self.cached_local() else {
            self.release_uncached(class, value, bytes);
            return;
        };
        // SAFETY: as in `take_in_place`: a cached `Local` is this thread's; this is the only
        // reference into the magazine, and no foreign code runs while it is used (what
        // the slow path wants dropped is returned and dropped after).
        let magazine = unsafe { local.magazine() };
        let counters = &local.counters;
        let list = &mut magazine.lists[class_slot(class)];
        if list.has_room() {
            let retained = counters.bytes.load(Relaxed).saturating_add(bytes);
            let returned = counters.returned.load(Relaxed).wrapping_add(1);
            if retained <= magazine.credit && returned < magazine.check_at {
                list.push(value, bytes);
                counters.bytes.store(retained, Relaxed);
                counters.returned.store(returned, Relaxed);
                return;
            }
        } else if !list.is_provisioned() && bytes >= self.large_from {
            // A large value of a class this thread does not allocate from goes straight
            // to the depot (see `release_slow`).
            match self.pass_large(class, value, bytes) {
                None => {
                    let returned = counters.returned.load(Relaxed).wrapping_add(1);
                    counters.returned.store(returned, Relaxed);
                    if returned >= magazine.check_at {
                        let mut garbage = Vec::new();
                        self.check(local, magazine, &mut garbage);
                        drop(garbage);
                    }
                    return;
                }
                Some(back) => value = back,
            }
        }
        let leftovers = self.release_slow(local, magazine, class, value, bytes);
        drop(leftovers);
    }

    /// The common case of a large value passing through to the depot: the depot's
    /// spare credit (left by the values taken out of it) covers it, so one lock is the
    /// whole cost. Returns the value when the spare does not cover it.
    #[inline(never)]
    fn pass_large(&self, class: usize, value: T, bytes: usize) -> Option<T> {
        let mut depot = self.depot.0.lock();
        if depot.spare < bytes {
            return Some(value);
        }
        depot.spare -= bytes;
        depot.push(class, value, bytes);
        None
    }

    /// A release by a thread whose cache does not hold its magazine: claims it. A
    /// thread that never allocated from this pool has none and returns values straight
    /// to the depot, until it has released enough to be given one.
    #[cold]
    #[inline(never)]
    fn release_uncached(&self, class: usize, value: T, bytes: usize) {
        let mut garbage = Vec::new();
        let create = self.locals.get().is_none() && tls::bare_release_wants_magazine();
        match self.claim(create, &mut garbage) {
            Some(local) => {
                // SAFETY: `claim` returned a magazine this thread owns; `release_slow` is
                // the only user of this reference and calls no foreign code.
                let magazine = unsafe { local.magazine() };
                let leftovers = self.release_slow(local, magazine, class, value, bytes);
                drop(garbage);
                drop(leftovers);
            }
            None => {
                drop(garbage);
                self.release_to_depot(class, value, bytes);
            }
        }
    }

    /// This thread's magazine: the cached one, else the thread's entry in `locals`
    /// (created if `create`) once the thread owns it, honouring a clear and caching it.
    /// `None` when the thread is exiting, has no entry (and `create` is false), or the
    /// entry is still owned by an exiting thread that had the same `thread_local` id.
    fn claim(&self, create: bool, garbage: &mut Vec<(T, usize)>) -> Option<&Local<T>> {
        if let Some(local) = self.cached_local() {
            return Some(local);
        }
        let serial = tls::serial()?;
        let local = if create {
            self.locals.get_or(|| self.new_local(serial))
        } else {
            self.locals.get()?
        };
        let owner = local.owner.load(Ordering::Acquire);
        if owner != serial {
            // The entry belonged to an exited thread with this `thread_local` id. It is
            // ours once that thread has given up its magazines: `is_live` returning
            // false orders all its uses of the magazine before ours.
            if owner != 0 && tls::is_live(owner) {
                return None;
            }
            local
                .owner
                .compare_exchange(owner, serial, Ordering::Acquire, Relaxed)
                .ok()?;
        }
        let key = self.key.load(Relaxed);
        // SAFETY: this thread owns `local` now; this is the only reference into the
        // magazine, and `discard` calls no foreign code (values go to `garbage`).
        let magazine = unsafe { local.magazine() };
        if magazine.seen_key != key {
            self.discard(local, magazine, garbage);
            magazine.seen_key = key;
        }
        tls::set_cache(key, NonNull::from(local).cast());
        Some(local)
    }

    /// Slow side of `take` with a magazine: pops if the list has a value (after a cache
    /// miss), else takes a value and a batch for the magazine from the depot.
    fn refill(&self, local: &Local<T>, magazine: &mut Magazine<T>, class: usize) -> Option<T> {
        if let Some((value, bytes)) = magazine.lists[class].pop() {
            sub(&local.counters.bytes, bytes);
            bump(&local.counters.reuses, 1);
            return Some(value);
        }
        self.refill_empty(local, magazine, class)
    }

    /// Takes a value and a batch for the (empty) list of `class` from the depot.
    #[inline]
    fn refill_empty(
        &self,
        local: &Local<T>,
        magazine: &mut Magazine<T>,
        class: usize,
    ) -> Option<T> {
        let counters = &local.counters;
        let list = &mut magazine.lists[class];
        if !list.is_provisioned() {
            list.provision(self.magazine_caps[class]);
        }
        let batch = self.batch_sizes[class];
        let mut moved = 0;
        let value = {
            let mut depot = self.depot.0.lock();
            let (value, bytes) = depot.pop(class)?;
            // The value leaves the pool: its reservation stays with the depot as spare,
            // for the next value put into the depot (no shared counter to update).
            depot.spare += bytes;
            // Large values come one at a time: a batch would sit in this magazine with
            // its credit, which the threads returning such values could not use (see
            // `large_from`).
            let batch = if bytes >= self.large_from { 1 } else { batch };
            for _ in 1..batch {
                let Some((value, bytes)) = depot.pop(class) else {
                    break;
                };
                // The bytes come with their reservation: depot bytes become credit.
                list.push(value, bytes);
                moved += bytes;
            }
            value
        };
        if moved != 0 {
            magazine.credit += moved;
            add(&counters.bytes, moved);
        }
        // A thread that only allocates would otherwise pile up credit.
        self.return_surplus(local, magazine);
        bump(&counters.refills, 1);
        bump(&counters.reuses, 1);
        Some(value)
    }

    /// Slow side of `release`: makes room (a batch to the depot), gets credit, keeps the
    /// value or rejects it, and runs the periodic check. Returns what the caller must
    /// drop once the magazine reference is gone.
    #[cold]
    #[inline(never)]
    fn release_slow(
        &self,
        local: &Local<T>,
        magazine: &mut Magazine<T>,
        class: usize,
        value: T,
        bytes: usize,
    ) -> (Option<T>, Vec<(T, usize)>) {
        let counters = &local.counters;
        let mut garbage = Vec::new();
        let list = &mut magazine.lists[class];
        if !list.is_provisioned() {
            if bytes >= self.large_from {
                // A large value of a class this thread does not allocate from: kept
                // here, it would wait (and hold budget) until the list fills, while the
                // threads that allocate the class make new ones. It goes to the depot.
                let rejected = self.pass_through(local, magazine, class, value, bytes);
                match rejected {
                    Some(_) => {
                        bump(&counters.rejected, 1);
                        magazine.check_at = magazine.check_at.saturating_sub(1);
                    }
                    None => bump(&counters.returned, 1),
                }
                if counters.returned.load(Relaxed) >= magazine.check_at {
                    self.check(local, magazine, &mut garbage);
                }
                return (rejected, garbage);
            }
            list.provision(self.magazine_caps[class]);
        }
        if !list.has_room() {
            self.flush(local, magazine, class);
        }
        let retained = counters.bytes.load(Relaxed).saturating_add(bytes);
        let rejected =
            if retained > magazine.credit && !self.grant(magazine, retained - magazine.credit) {
                bump(&counters.rejected, 1);
                // A rejected release counts towards the check interval too.
                magazine.check_at = magazine.check_at.saturating_sub(1);
                Some(value)
            } else {
                magazine.lists[class].push(value, bytes);
                counters.bytes.store(retained, Relaxed);
                bump(&counters.returned, 1);
                None
            };
        if counters.returned.load(Relaxed) >= magazine.check_at {
            self.check(local, magazine, &mut garbage);
        }
        (rejected, garbage)
    }

    /// Puts a released value straight into the depot, reserving its bytes from the
    /// depot's spare credit, then the magazine's headroom, then the budget. Returns the
    /// value if no budget was left.
    fn pass_through(
        &self,
        local: &Local<T>,
        magazine: &mut Magazine<T>,
        class: usize,
        value: T,
        bytes: usize,
    ) -> Option<T> {
        let headroom = magazine.credit - local.counters.bytes.load(Relaxed);
        {
            let mut depot = self.depot.0.lock();
            let from_spare = depot.take_spare(bytes);
            if bytes - from_spare <= headroom {
                magazine.credit -= bytes - from_spare;
                depot.push(class, value, bytes);
                return None;
            }
            depot.spare += from_spare;
        }
        if !self.grant(magazine, bytes - headroom) {
            return Some(value);
        }
        magazine.credit -= bytes;
        self.depot.0.lock().push(class, value, bytes);
        None
    }

    /// Moves a batch of the most recent values of `class` to the depot.
    fn flush(&self, local: &Local<T>, magazine: &mut Magazine<T>, class: usize) {
        let mut moved = 0;
        {
            let mut depot = self.depot.0.lock();
            for _ in 0..self.batch_sizes[class].max(1) {
                let Some((value, bytes)) = magazine.lists[class].pop() else {
                    break;
                };
                depot.push(class, value, bytes);
                moved += bytes;
            }
        }
        // The values leave with their share of the credit.
        magazine.credit -= moved;
        sub(&local.counters.bytes, moved);
        bump(&local.counters.flushes, 1);
    }

    /// The periodic check of a magazine (every `trim_interval` releases): its idle values
    /// move to the depot; the depot drops its idle values if its fragmentation is over
    /// the threshold; surplus credit goes back to the budget.
    #[cold]
    fn check(&self, local: &Local<T>, magazine: &mut Magazine<T>, garbage: &mut Vec<(T, usize)>) {
        let counters = &local.counters;
        magazine.check_at = counters
            .returned
            .load(Relaxed)
            .saturating_add(self.trim_interval);
        let mut freed = 0;
        {
            let mut depot = self.depot.0.lock();
            let mut moved_total = 0;
            for class in 0..self.classes.len() {
                let (_, moved) = magazine.lists[class]
                    .drain_idle(|value, bytes| depot.push(class, value, bytes));
                moved_total += moved;
            }
            magazine.credit -= moved_total;
            sub(&counters.bytes, moved_total);
            let idle_bytes: usize = depot.lists.iter().map(|l| l.idle_bytes_now()).sum();
            let held = depot.bytes;
            if held > 0 && idle_bytes as f64 / held as f64 > self.config.fragmentation_threshold {
                let mut count = 0;
                for list in depot.lists.iter_mut() {
                    let (n, b) = list.drain_idle(|value, b| garbage.push((value, b)));
                    count += n;
                    freed += b;
                }
                depot_trimmed(&mut depot, count, freed);
            } else {
                for list in depot.lists.iter_mut() {
                    list.keep_and_restart();
                }
            }
            // Spare credit beyond a chunk goes back to the budget.
            let excess = depot.spare.saturating_sub(self.credit_chunk);
            depot.spare -= excess;
            freed += excess;
        }
        self.reserved.0.fetch_sub(freed, Relaxed);
        self.return_surplus(local, magazine);
    }

    /// Reserves at least `need` more bytes of budget for a magazine: a chunk if the
    /// budget has room, else exactly `need`, else nothing.
    fn grant(&self, magazine: &mut Magazine<T>, need: usize) -> bool {
        let max = self.config.max_retained_bytes;
        let chunk = self.credit_chunk.max(need);
        let reserved = &self.reserved.0;
        let mut current = reserved.load(Relaxed);
        loop {
            let fits = |n: usize| current.checked_add(n).is_some_and(|total| total <= max);
            let want = if fits(chunk) {
                chunk
            } else if fits(need) {
                need
            } else {
                return self.grant_from_spare(magazine, need);
            };
            match reserved.compare_exchange_weak(current, current + want, Relaxed, Relaxed) {
                Ok(_) => {
                    magazine.credit += want;
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    /// The budget looks full: the depot's spare credit is budget too. Reserves `need`
    /// from it, and what it lacks from the budget, or nothing.
    #[cold]
    fn grant_from_spare(&self, magazine: &mut Magazine<T>, need: usize) -> bool {
        let max = self.config.max_retained_bytes;
        let mut depot = self.depot.0.lock();
        let taken = depot.take_spare(need);
        let rest = need - taken;
        let granted = rest == 0
            || self
                .reserved
                .0
                .fetch_update(Relaxed, Relaxed, |current| {
                    current.checked_add(rest).filter(|&total| total <= max)
                })
                .is_ok();
        if granted {
            magazine.credit += need;
        } else {
            depot.spare += taken;
        }
        granted
    }

    /// Gives credit beyond one spare chunk back to the budget.
    fn return_surplus(&self, local: &Local<T>, magazine: &mut Magazine<T>) {
        let headroom = magazine.credit - local.counters.bytes.load(Relaxed);
        if headroom > 2 * self.credit_chunk {
            let give = headroom - self.credit_chunk;
            magazine.credit -= give;
            self.reserved.0.fetch_sub(give, Relaxed);
        }
    }

    /// Empties a magazine into `garbage` (a clear) and returns its credit.
    fn discard(&self, local: &Local<T>, magazine: &mut Magazine<T>, garbage: &mut Vec<(T, usize)>) {
        let counters = &local.counters;
        let (mut count, mut bytes) = (0, 0);
        for list in &mut magazine.lists[..self.classes.len()] {
            let (n, b) = list.drain_all(|value, b| garbage.push((value, b)));
            count += n;
            bytes += b;
        }
        bump(&counters.trimmed, count as u64);
        bump(&counters.trimmed_bytes, bytes as u64);
        self.reserved.0.fetch_sub(magazine.credit, Relaxed);
        magazine.credit = 0;
        counters.bytes.store(0, Relaxed);
    }

    /// A release by a thread without a usable magazine: straight to the depot, with an
    /// exact reservation of budget.
    fn release_to_depot(&self, class: usize, value: T, bytes: usize) {
        {
            let mut depot = self.depot.0.lock();
            let from_spare = depot.take_spare(bytes);
            if from_spare == bytes {
                depot.push(class, value, bytes);
                depot.counts.returned += 1;
                return;
            }
            depot.spare += from_spare;
        }
        let max = self.config.max_retained_bytes;
        let reserved = self
            .reserved
            .0
            .fetch_update(Relaxed, Relaxed, |current| {
                current.checked_add(bytes).filter(|&total| total <= max)
            })
            .is_ok();
        let mut depot = self.depot.0.lock();
        if reserved {
            depot.push(class, value, bytes);
            depot.counts.returned += 1;
        } else {
            depot.counts.rejected += 1;
            drop(depot);
            drop(value);
        }
    }

    /// An allocation by a thread without a usable magazine: one value from the depot,
    /// its reservation left there as spare.
    fn take_from_depot(&self, class: usize) -> Option<T> {
        let mut depot = self.depot.0.lock();
        let (value, bytes) = depot.pop(class)?;
        depot.spare += bytes;
        depot.counts.reuses += 1;
        Some(value)
    }

    #[cold]
    #[inline(never)]
    fn take_oversize(&self, size_hint: usize, out: &mut MaybeUninit<T>) -> bool {
        let Some(value) = T::try_with_capacity(size_hint) else {
            return false;
        };
        self.count(|c| &c.oversize);
        out.write(value);
        true
    }

    #[cold]
    #[inline(never)]
    fn count_unclassified(&self) {
        self.count(|c| &c.unclassified);
    }

    /// Adds one to a counter: the cached magazine's if any, else the shared one.
    fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64) {
        match self.cached_local() {
            Some(local) => bump(counter(&local.counters), 1),
            None => {
                counter(&self.counters.0).fetch_add(1, Relaxed);
            }
        }
    }

    #[cold]
    fn new_local(&self, owner: u64) -> Local<T> {
        Local::new(owner, self.key.load(Relaxed), self.trim_interval)
    }
}

impl<T: Poolable> Default for MemoryPool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Poolable> fmt::Debug for MemoryPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPool")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A value alone on its 128-byte block, so that no other data shares its cache lines.
#[repr(align(128))]
struct Padded<T>(T);

/// `class` as an index into a magazine's lists: a class index is below the pool's class
/// count, at most `MAX_CLASSES` (a power of two), so the mask changes nothing; it lets
/// the compiler drop the bounds check from the hot paths.
#[inline(always)]
fn class_slot(class: usize) -> usize {
    const { assert!(MAX_CLASSES.is_power_of_two()) };
    class & (MAX_CLASSES - 1)
}

/// Moves `value` into `out`; whether there was one.
fn fill<T>(out: &mut MaybeUninit<T>, value: Option<T>) -> bool {
    match value {
        Some(value) => {
            out.write(value);
            true
        }
        None => false,
    }
}

/// Adds to a gauge that only the calling thread writes.
#[inline(always)]
fn add(gauge: &AtomicUsize, n: usize) {
    gauge.store(gauge.load(Relaxed) + n, Relaxed);
}

/// Subtracts from a gauge that only the calling thread writes.
#[inline(always)]
fn sub(gauge: &AtomicUsize, n: usize) {
    gauge.store(gauge.load(Relaxed) - n, Relaxed);
}

/// Records a trim of `count` values and `bytes` by a magazine's owner.
fn record_trim(counters: &Counters, count: usize, bytes: usize) {
    if count > 0 {
        bump(&counters.trims, 1);
    }
    bump(&counters.trimmed, count as u64);
    bump(&counters.trimmed_bytes, bytes as u64);
}

/// Records that the depot dropped `count` values of `bytes` (caller holds the lock).
fn depot_trimmed<T>(depot: &mut Depot<T>, count: usize, bytes: usize) {
    depot.bytes -= bytes;
    if count > 0 {
        depot.counts.trims += 1;
    }
    depot.counts.trimmed += count as u64;
    depot.counts.trimmed_bytes += bytes as u64;
}

fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

#[cfg(test)]
mod tests;
