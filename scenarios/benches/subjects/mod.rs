//! The pool-cycle subjects shared by the criterion and callgrind benches, so both engines
//! measure exactly the same code: obtain a buffer of at least `size` bytes, touch it, release it.

use std::hint::black_box;

pub(crate) use rust_ai_ide_memory::pool::MemoryPool;

/// How many idle buffers an anchor pool may keep: more than the two-thread bench ever has in
/// flight, so no anchor has to drop and reallocate buffers because of a small cap.
pub(crate) const POOL_CAP: usize = 256;

/// The `opool` anchor: a lock-free pool of buffers of one size.
pub(crate) type OPool = opool::Pool<SizedVec, Vec<u8>>;
/// The `object_pool` anchor: a mutex-protected stack of buffers.
pub(crate) type ObjectPool = object_pool::Pool<Vec<u8>>;
/// The `sharded_slab` anchor: a per-thread-sharded pool that clears values on reuse.
pub(crate) type SlabPool = sharded_slab::Pool<Vec<u8>>;

/// opool's allocator: makes empty buffers with room for `.0` bytes and empties returned ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizedVec(pub(crate) usize);

impl opool::PoolAllocator<Vec<u8>> for SizedVec {
    #[inline]
    fn allocate(&self) -> Vec<u8> {
        Vec::with_capacity(self.0)
    }

    #[inline]
    fn reset(&self, obj: &mut Vec<u8>) {
        obj.clear();
    }
}

/// The work every subject does with its buffer: make sure it holds `size` bytes without
/// reallocating (a no-op for a reused buffer of the right class), then write one byte.
/// `clear` keeps pools that hand back non-empty buffers from growing the buffer each cycle.
#[inline]
pub(crate) fn touch(buf: &mut Vec<u8>, size: usize) {
    buf.clear();
    buf.reserve(size);
    buf.push(1);
    black_box(buf.as_mut_ptr());
}

pub(crate) fn perflab_pool() -> MemoryPool<Vec<u8>> {
    MemoryPool::new()
}

pub(crate) fn opool_pool(size: usize) -> OPool {
    opool::Pool::new(POOL_CAP, SizedVec(size))
}

pub(crate) fn object_pool_pool() -> ObjectPool {
    // Starts empty (like the other pools) instead of `Pool::new`'s prefilled buffers.
    object_pool::Pool::from_vec(Vec::with_capacity(POOL_CAP))
}

pub(crate) fn slab_pool() -> SlabPool {
    sharded_slab::Pool::new()
}

#[inline]
pub(crate) fn perflab_cycle(pool: &MemoryPool<Vec<u8>>, size: usize) {
    let mut h = pool
        .allocate(black_box(size))
        .expect("perflab pool allocates");
    touch(&mut h, size);
}

#[inline]
pub(crate) fn opool_cycle(pool: &OPool, size: usize) {
    let mut h = pool.get();
    touch(&mut h, size);
}

#[inline]
pub(crate) fn object_pool_cycle(pool: &ObjectPool, size: usize) {
    let mut h = pool.pull(|| Vec::with_capacity(size));
    touch(&mut h, size);
}

#[inline]
pub(crate) fn slab_cycle(pool: &SlabPool, size: usize) {
    let key = slab_obtain(pool, size);
    // Releasing a sharded-slab entry is explicit: `clear` empties it and frees the slot.
    pool.clear(key);
}

/// Creates and touches a sharded-slab buffer; the caller releases it with `pool.clear(key)`.
#[inline]
pub(crate) fn slab_obtain(pool: &SlabPool, size: usize) -> usize {
    let mut h = pool.create().expect("sharded-slab shard has room");
    touch(&mut h, size);
    h.key()
}

#[inline]
pub(crate) fn vec_cycle(size: usize) {
    let mut v = Vec::with_capacity(black_box(size));
    touch(&mut v, size);
    black_box(v);
}
