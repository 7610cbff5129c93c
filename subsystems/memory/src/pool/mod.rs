//! Size-classed object pools (`MemoryPool`) with per-thread magazines, and their loan handles (`PoolHandle`).
//!
//! # Design
//!
//! A request for capacity `n` is served from the smallest *size class* `>= n` (by
//! default the powers of two from 64 to 1 MiB, found with a `leading_zeros` instead of a
//! map lookup; other class lists use a binary search). A returned value goes to the
//! largest class `<=` its capacity, so a free list of class `c` only ever holds values of
//! capacity `>= c`: the pool never hands out less than was asked.
//!
//! ## Concurrency: per-thread magazines in front of a shared depot
//!
//! This is the magazine/depot structure of Bonwick's slab allocator (and of the thread
//! caches of tcmalloc and mimalloc), chosen because it makes the common case touch no
//! shared memory at all:
//!
//! * Each thread has, per pool, a *magazine*: a small LIFO list per class (up to
//!   `magazine_size / class` values, between 2 and 64), found through the
//!   [`thread_local`](mod@thread_local) crate (a thread id read plus an array index)
//!   and used only by that thread. Allocate pops from it, release pushes to it. This hot path has no
//!   atomic read-modify-write, no lock, no hashing and no heap allocation; the counters
//!   it updates have a single writer, so they are relaxed loads and stores. A lock-based
//!   pool needs two atomic read-modify-writes per allocate/release cycle (a lock per
//!   side), and a lock-free queue such as `opool`'s two compare-and-swaps, whose cache
//!   lines bounce between threads when two threads share the pool.
//! * A magazine that is full for a class hands half of it (a batch) to the shared
//!   *depot*; an empty one takes a batch from it before building a new value. The depot
//!   is one short spin-lock critical section per batch (see `lock.rs`), so a producer
//!   thread that releases what a consumer thread allocates still reuses memory, at one
//!   lock per batch instead of one per value.
//! * Two threads working on their own values never write a shared cache line: magazines
//!   are 128-byte aligned, and the only shared word read on the hot path (the clear
//!   epoch) is written only by [`MemoryPool::clear`].
//! * A released value whose thread never allocated from the pool goes straight to the
//!   depot. The magazine of a thread that exits stays with the pool and is taken over
//!   by the next thread given the same thread id; its values count against the budget.
//!
//! ## Memory bounds: budget, credit and trimming
//!
//! `max_retained_bytes` bounds the heap bytes of all free values, magazines and depot
//! together. A magazine reserves budget in chunks (*credit*, 1/64 of the bound) with a
//! compare-and-swap on the pool's reserved total, so the shared counter is touched once
//! per chunk rather than once per value, and gives surplus credit back. Values moving
//! between a magazine and the depot carry their bytes with them. A value released when
//! no budget is left is dropped. Retained bytes never pass the bound.
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

mod classes;
mod free_list;
mod handle;
mod lock;
mod magazine;
mod poolable;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use classes::SizeClasses;
pub use handle::PoolHandle;
use lock::SpinLock;
use magazine::{Counters, Depot, Local, Magazine, bump};
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
pub struct MemoryPool<T: Poolable> {
    classes: SizeClasses,
    /// Per class: how many values a magazine keeps, and how many move in one batch.
    magazine_caps: Box<[usize]>,
    batch_sizes: Box<[usize]>,
    locals: ThreadLocal<Local<T>>,
    depot: Padded<SpinLock<Depot<T>>>,
    /// Bytes reserved from the budget: depot bytes plus every magazine's credit.
    reserved: Padded<AtomicUsize>,
    /// Bumped by `clear`; magazines that see a newer epoch drop their values.
    epoch: Padded<AtomicU64>,
    /// Counters of every magazine, for `stats`.
    registry: Mutex<Vec<Arc<Counters>>>,
    /// Counters of threads without a usable magazine (updated with `fetch_add`).
    shared: Counters,
    credit_chunk: usize,
    config: PoolConfig,
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
        Ok(Self {
            depot: Padded(SpinLock::new(Depot::new(classes.len()))),
            classes,
            magazine_caps,
            batch_sizes,
            locals: ThreadLocal::new(),
            reserved: Padded(AtomicUsize::new(0)),
            epoch: Padded(AtomicU64::new(0)),
            registry: Mutex::new(Vec::new()),
            shared: Counters::default(),
            credit_chunk: config.max_retained_bytes / 64,
            config,
        })
    }

    /// A value of capacity at least `size_hint`, from the smallest class that fits.
    /// Over the largest class, a fresh unpooled value of capacity `size_hint` (dropped,
    /// not kept, when it comes back).
    ///
    /// # Errors
    /// [`MemoryError::AllocationFailed`] if a new value could not be allocated (capacity
    /// overflow or allocator failure).
    #[inline]
    pub fn allocate(&self, size_hint: usize) -> Result<PoolHandle<'_, T>, MemoryError> {
        let value = match self.classes.ceil_index(size_hint) {
            Some(class) => self.take(class)?,
            None => self.take_oversize(size_hint)?,
        };
        Ok(PoolHandle::borrowed(self, value))
    }

    /// Like [`allocate`](Self::allocate), but a size over the largest class is an error
    /// instead of an unpooled value: every value it hands out comes from, and returns to,
    /// a size class.
    ///
    /// # Errors
    /// [`MemoryError::SizeTooLarge`] over the largest class; otherwise as `allocate`.
    #[inline]
    pub fn allocate_exact(&self, size: usize) -> Result<PoolHandle<'_, T>, MemoryError> {
        let class = self
            .classes
            .ceil_index(size)
            .ok_or(MemoryError::SizeTooLarge {
                size,
                largest: self.classes.largest(),
            })?;
        Ok(PoolHandle::borrowed(self, self.take(class)?))
    }

    /// Like [`allocate`](Self::allocate), for a pool in an `Arc`: the handle holds a
    /// clone of the `Arc` and has no borrow, so it can move into `'static` tasks.
    ///
    /// # Errors
    /// As `allocate`.
    pub fn allocate_owned(
        self: &Arc<Self>,
        size_hint: usize,
    ) -> Result<PoolHandle<'static, T>, MemoryError>
    where
        T: 'static,
    {
        let value = match self.classes.ceil_index(size_hint) {
            Some(class) => self.take(class)?,
            None => self.take_oversize(size_hint)?,
        };
        Ok(PoolHandle::shared(Arc::clone(self), value))
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
        let mut stats = PoolStats {
            max_retained_bytes: self.config.max_retained_bytes,
            ..PoolStats::default()
        };
        let mut discarded = 0;
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        for c in registry.iter().map(Arc::as_ref).chain([&self.shared]) {
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
            stats.retained_bytes += c.retained_bytes.load(Relaxed);
        }
        drop(registry);
        {
            let depot = self.depot.0.lock();
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
        let mut garbage = Vec::new();
        let mut freed = 0;
        if let Some(local) = self.locals.get()
            && let Ok(mut magazine) = local.magazine.try_borrow_mut()
        {
            let (mut count, mut bytes) = (0, 0);
            for list in magazine.lists.iter_mut() {
                let (n, b) = list.drain_idle(|value, b| garbage.push((value, b)));
                count += n;
                bytes += b;
            }
            // The values leave with their share of the magazine's credit.
            magazine.credit -= bytes;
            self.reserved.0.fetch_sub(bytes, Relaxed);
            record_trim(&local.counters, count, bytes);
            local.counters.publish(&magazine);
            freed += bytes;
        }
        {
            let mut depot = self.depot.0.lock();
            let (mut count, mut bytes) = (0, 0);
            for list in depot.lists.iter_mut() {
                let (n, b) = list.drain_idle(|value, b| garbage.push((value, b)));
                count += n;
                bytes += b;
            }
            depot_trimmed(&mut depot, count, bytes);
            self.reserved.0.fetch_sub(bytes, Relaxed);
            freed += bytes;
        }
        drop(garbage);
        freed
    }

    /// Drops every free value of the depot and of the calling thread's magazine now;
    /// other threads drop their magazines' values at their next operation on the pool.
    /// Returns the bytes freed now.
    pub fn clear(&self) -> usize {
        self.epoch.0.fetch_add(1, Relaxed);
        let mut garbage = Vec::new();
        let mut freed = 0;
        if let Some(local) = self.locals.get()
            && let Ok(mut magazine) = local.magazine.try_borrow_mut()
        {
            freed += self.discard_magazine(&mut magazine, &local.counters, &mut garbage);
        }
        {
            let mut depot = self.depot.0.lock();
            let (mut count, mut bytes) = (0, 0);
            for list in depot.lists.iter_mut() {
                let (n, b) = list.drain_all(|value, b| garbage.push((value, b)));
                count += n;
                bytes += b;
            }
            depot_trimmed(&mut depot, count, bytes);
            self.reserved.0.fetch_sub(bytes, Relaxed);
            freed += bytes;
        }
        freed
    }

    /// The size classes, sorted.
    pub fn size_classes(&self) -> &[usize] {
        self.classes.sizes()
    }

    /// The configuration in effect (size classes sorted and deduplicated).
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Returns a value to this pool (the `Drop` of [`PoolHandle`]).
    #[inline]
    pub(crate) fn release(&self, mut value: T) {
        let Some(class) = self.classes.floor_index(value.capacity()) else {
            self.count_unclassified();
            return;
        };
        value.reset();
        let bytes = value.heap_bytes();
        // `get`, not `get_or`: a thread that never allocated from this pool (or is
        // tearing down its thread-locals) returns values straight to the depot.
        let Some(local) = self.locals.get() else {
            self.release_to_depot(class, value, bytes);
            return;
        };
        let Ok(mut magazine) = local.magazine.try_borrow_mut() else {
            self.release_to_depot(class, value, bytes);
            return;
        };
        if magazine.epoch == self.epoch.0.load(Relaxed)
            && magazine.lists[class].len() < self.magazine_caps[class]
            && bytes <= magazine.headroom
            && magazine.releases_since_check + 1 < self.config.trim_interval
        {
            magazine.push(class, value, bytes);
            magazine.releases_since_check += 1;
            bump(&local.counters.returned, 1);
            local.counters.publish(&magazine);
            return;
        }
        let leftovers = self.release_slow(&mut magazine, &local.counters, class, value, bytes);
        // Dropped after the magazine is released: dropping values may run arbitrary code.
        drop(magazine);
        drop(leftovers);
    }

    pub(crate) fn record_detached(&self) {
        match self.locals.get() {
            Some(local) => bump(&local.counters.detached, 1),
            None => {
                self.shared.detached.fetch_add(1, Relaxed);
            }
        }
    }

    /// A value of class `class`: from this thread's magazine, else a batch from the
    /// depot, else new.
    #[inline]
    fn take(&self, class: usize) -> Result<T, MemoryError> {
        let local = self.locals.get_or(|| self.new_local());
        if let Ok(mut magazine) = local.magazine.try_borrow_mut() {
            if magazine.epoch == self.epoch.0.load(Relaxed)
                && let Some(value) = magazine.pop(class)
            {
                bump(&local.counters.reuses, 1);
                local.counters.publish(&magazine);
                return Ok(value);
            }
            let mut garbage = Vec::new();
            let value = self.refill(&mut magazine, &local.counters, class, &mut garbage);
            drop(magazine);
            drop(garbage);
            if let Some(value) = value {
                return Ok(value);
            }
        } else if let Some(value) = self.take_from_depot(class) {
            return Ok(value);
        }
        let capacity = self.classes.size(class);
        let value =
            T::try_with_capacity(capacity).ok_or(MemoryError::AllocationFailed { capacity })?;
        bump(&local.counters.fresh, 1);
        Ok(value)
    }

    /// Slow side of `take`: honours a clear, then moves a batch from the depot into the
    /// magazine and pops from it.
    #[cold]
    fn refill(
        &self,
        magazine: &mut Magazine<T>,
        counters: &Counters,
        class: usize,
        garbage: &mut Vec<(T, usize)>,
    ) -> Option<T> {
        if magazine.epoch != self.epoch.0.load(Relaxed) {
            self.discard_magazine(magazine, counters, garbage);
        }
        {
            let mut depot = self.depot.0.lock();
            for _ in 0..self.batch_sizes[class].max(1) {
                let Some((value, bytes)) = depot.pop(class) else {
                    break;
                };
                // The bytes come with their reservation: depot bytes become credit.
                magazine.push_with_credit(class, value, bytes);
            }
        }
        let value = magazine.pop(class);
        // A thread that only allocates would otherwise pile up credit.
        self.return_surplus(magazine);
        if value.is_some() {
            bump(&counters.refills, 1);
            bump(&counters.reuses, 1);
        }
        counters.publish(magazine);
        value
    }

    /// Slow side of `release`: honours a clear, makes room (a batch to the depot), gets
    /// credit, keeps the value or rejects it, and runs the periodic check. Returns what
    /// the caller must drop once the magazine is released.
    #[cold]
    fn release_slow(
        &self,
        magazine: &mut Magazine<T>,
        counters: &Counters,
        class: usize,
        value: T,
        bytes: usize,
    ) -> (Option<T>, Vec<(T, usize)>) {
        let mut garbage = Vec::new();
        if magazine.epoch != self.epoch.0.load(Relaxed) {
            self.discard_magazine(magazine, counters, &mut garbage);
        }
        if magazine.lists[class].len() >= self.magazine_caps[class] {
            self.flush(magazine, counters, class);
        }
        let rejected =
            bytes > magazine.headroom && !self.grant(magazine, bytes - magazine.headroom);
        let rejected = if rejected {
            bump(&counters.rejected, 1);
            Some(value)
        } else {
            magazine.push(class, value, bytes);
            bump(&counters.returned, 1);
            None
        };
        magazine.releases_since_check += 1;
        if magazine.releases_since_check >= self.config.trim_interval {
            self.check(magazine, counters, &mut garbage);
        }
        counters.publish(magazine);
        (rejected, garbage)
    }

    /// Moves a batch of the most recent values of `class` to the depot.
    fn flush(&self, magazine: &mut Magazine<T>, counters: &Counters, class: usize) {
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
        bump(&counters.flushes, 1);
    }

    /// The periodic check of a magazine (every `trim_interval` releases): its idle values
    /// move to the depot; the depot drops its idle values if its fragmentation is over
    /// the threshold; surplus credit goes back to the budget.
    #[cold]
    fn check(
        &self,
        magazine: &mut Magazine<T>,
        counters: &Counters,
        garbage: &mut Vec<(T, usize)>,
    ) {
        magazine.releases_since_check = 0;
        let mut freed = 0;
        {
            let mut depot = self.depot.0.lock();
            for class in 0..self.classes.len() {
                let (_, moved) = magazine.lists[class]
                    .drain_idle(|value, bytes| depot.push(class, value, bytes));
                magazine.credit -= moved;
            }
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
        }
        self.reserved.0.fetch_sub(freed, Relaxed);
        self.return_surplus(magazine);
        counters.publish(magazine);
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
                return false;
            };
            match reserved.compare_exchange_weak(current, current + want, Relaxed, Relaxed) {
                Ok(_) => {
                    magazine.credit += want;
                    magazine.headroom += want;
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    /// Gives credit beyond one spare chunk back to the budget.
    fn return_surplus(&self, magazine: &mut Magazine<T>) {
        if magazine.headroom > 2 * self.credit_chunk {
            let give = magazine.headroom - self.credit_chunk;
            magazine.credit -= give;
            magazine.headroom -= give;
            self.reserved.0.fetch_sub(give, Relaxed);
        }
    }

    /// Empties a magazine into `garbage` (a clear), returns its credit, and marks it as
    /// having seen the current epoch. Returns the bytes freed.
    fn discard_magazine(
        &self,
        magazine: &mut Magazine<T>,
        counters: &Counters,
        garbage: &mut Vec<(T, usize)>,
    ) -> usize {
        let (mut count, mut bytes) = (0, 0);
        for list in magazine.lists.iter_mut() {
            let (n, b) = list.drain_all(|value, b| garbage.push((value, b)));
            count += n;
            bytes += b;
        }
        bump(&counters.trimmed, count as u64);
        bump(&counters.trimmed_bytes, bytes as u64);
        self.reserved.0.fetch_sub(magazine.credit, Relaxed);
        magazine.credit = 0;
        magazine.headroom = 0;
        magazine.epoch = self.epoch.0.load(Relaxed);
        counters.publish(magazine);
        bytes
    }

    /// A release by a thread without a usable magazine: straight to the depot, with an
    /// exact reservation of budget.
    fn release_to_depot(&self, class: usize, value: T, bytes: usize) {
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

    /// An allocation by a thread whose magazine is busy (re-entered): one value from
    /// the depot, its bytes given back to the budget.
    fn take_from_depot(&self, class: usize) -> Option<T> {
        let (value, bytes) = {
            let mut depot = self.depot.0.lock();
            let taken = depot.pop(class)?;
            depot.counts.reuses += 1;
            taken
        };
        self.reserved.0.fetch_sub(bytes, Relaxed);
        Some(value)
    }

    #[cold]
    fn take_oversize(&self, size_hint: usize) -> Result<T, MemoryError> {
        let value = T::try_with_capacity(size_hint).ok_or(MemoryError::AllocationFailed {
            capacity: size_hint,
        })?;
        match self.locals.get() {
            Some(local) => bump(&local.counters.oversize, 1),
            None => {
                self.shared.oversize.fetch_add(1, Relaxed);
            }
        }
        Ok(value)
    }

    #[cold]
    fn count_unclassified(&self) {
        match self.locals.get() {
            Some(local) => bump(&local.counters.unclassified, 1),
            None => {
                self.shared.unclassified.fetch_add(1, Relaxed);
            }
        }
    }

    #[cold]
    fn new_local(&self) -> Local<T> {
        let counters = Arc::new(Counters::default());
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&counters));
        Local {
            magazine: std::cell::RefCell::new(Magazine::new(
                &self.magazine_caps,
                self.epoch.0.load(Relaxed),
            )),
            counters,
        }
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
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A value alone on its 128-byte block, so that no other data shares its cache lines.
#[repr(align(128))]
struct Padded<T>(T);

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
