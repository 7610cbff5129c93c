//! `PoolHandle`: a pooled value on loan, returned to its pool when dropped.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use super::{MemoryPool, Poolable};
use crate::error::MemoryError;

/// A value on loan from a [`MemoryPool`]. It dereferences to the value; dropping it (or
/// passing it to [`MemoryPool::deallocate`]) resets the value and returns it to the pool;
/// [`into_inner`](PoolHandle::into_inner) takes the value out of the pool for good.
///
/// Handles from [`MemoryPool::allocate`] borrow the pool (`'pool`), which costs nothing
/// on the hot path; handles from [`MemoryPool::allocate_owned`] hold an `Arc` of the
/// pool and are `PoolHandle<'static, T>`, for tasks that outlive a borrow.
/// A handle is `Send` when `T` is, so it may be returned from another thread.
///
/// A handle is the value and one word: the pool's address, whose low bit says whether
/// the handle owns a strong count of the `Arc` the pool lives in (so the handle has no
/// `Option` to check and no enum to match on the way back to its pool).
pub struct PoolHandle<'pool, T: Poolable> {
    /// Initialised from creation until `drop` or `into_inner` consume the handle.
    value: ManuallyDrop<T>,
    /// The pool, tagged with [`OWNED`].
    pool: NonNull<MemoryPool<T>>,
    _pool: PhantomData<&'pool MemoryPool<T>>,
}

/// Low bit of `PoolHandle::pool`: the handle owns a strong count of an
/// `Arc<MemoryPool<T>>` (from `Arc::into_raw`). Free, as a pool is at least 8-aligned.
const OWNED: usize = 1;

// SAFETY: a handle owns a `T` (`Poolable: Send`) and either shares the pool (`&MemoryPool`,
// which is `Sync` for `T: Send`) or owns a count of an `Arc<MemoryPool<T>>` (`Send` as
// the pool is `Send + Sync`): what `Option<T>` next to `&'pool MemoryPool<T>` or
// `Arc<MemoryPool<T>>` would be.
unsafe impl<T: Poolable> Send for PoolHandle<'_, T> {}
// SAFETY: through `&PoolHandle` one gets `&T` (hence `T: Sync`) and `&MemoryPool<T>`
// (`Sync`); nothing is mutated through a shared handle.
unsafe impl<T: Poolable + Sync> Sync for PoolHandle<'_, T> {}

impl<'pool, T: Poolable> PoolHandle<'pool, T> {
    /// The value, as the 2025 API spelled it. Equivalent to `&*handle`.
    ///
    /// # Errors
    /// [`MemoryError::HandleReleased`] if the handle holds no value, which cannot happen
    /// for a handle obtained from a pool (only `drop` and `into_inner` take the value,
    /// and both consume the handle); the `Result` is kept for the 2025 API.
    pub fn as_ref(&self) -> Result<&T, MemoryError> {
        Ok(&self.value)
    }

    /// The value, mutably, as the 2025 API spelled it. Equivalent to `&mut *handle`.
    ///
    /// # Errors
    /// As [`as_ref`](PoolHandle::as_ref).
    pub fn as_mut(&mut self) -> Result<&mut T, MemoryError> {
        Ok(&mut self.value)
    }

    /// Detaches the value from the pool: it will not be returned, and the pool counts it
    /// as detached.
    ///
    /// # Errors
    /// As [`as_ref`](PoolHandle::as_ref).
    pub fn into_inner(self) -> Result<T, MemoryError> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, and neither the count nor the value is taken
        // again: each is taken exactly once, here.
        let arc = unsafe { this.take_arc() };
        // SAFETY: as above.
        let value = unsafe { ManuallyDrop::take(&mut this.value) };
        this.pool().record_detached();
        drop(arc);
        Ok(value)
    }

    /// The pool this handle returns to.
    #[inline(always)]
    pub fn pool(&self) -> &MemoryPool<T> {
        let pool = self.untagged();
        // SAFETY: the untagged pointer came from a `&'pool MemoryPool<T>`, alive for the
        // handle's whole life, or from `Arc::into_raw` of an `Arc` whose count the handle
        // owns until its last use of the pool (`drop` and `into_inner` keep the count
        // alive until then).
        unsafe { &*pool }
    }

    /// The pool's address, with the provenance it was created with (all of the `Arc`
    /// allocation for owned handles, which `Arc::from_raw` needs).
    #[inline(always)]
    fn untagged(&self) -> *mut MemoryPool<T> {
        self.pool.as_ptr().map_addr(|addr| addr & !OWNED)
    }

    #[inline(always)]
    fn is_owned(&self) -> bool {
        self.pool.as_ptr().addr() & OWNED != 0
    }

    /// The `Arc` whose count this handle owns, if any; the handle no longer owns it.
    ///
    /// # Safety
    /// Called at most once per handle, at the end of its life.
    #[inline(always)]
    unsafe fn take_arc(&self) -> Option<Arc<MemoryPool<T>>> {
        self.is_owned().then(|| {
            // SAFETY: the tagged pointer is `Arc::into_raw` of an `Arc<MemoryPool<T>>`
            // (see `shared`) whose count is taken over once (the caller's contract).
            unsafe { Arc::from_raw(self.untagged()) }
        })
    }

    #[inline(always)]
    pub(crate) fn borrowed(pool: &'pool MemoryPool<T>, value: T) -> Self {
        Self {
            value: ManuallyDrop::new(value),
            pool: NonNull::from(pool),
            _pool: PhantomData,
        }
    }
}

impl<T: Poolable> PoolHandle<'static, T> {
    pub(crate) fn shared(pool: Arc<MemoryPool<T>>, value: T) -> Self {
        const { assert!(align_of::<MemoryPool<T>>() > OWNED) };
        let raw = Arc::into_raw(pool).cast_mut().map_addr(|addr| addr | OWNED);
        Self {
            value: ManuallyDrop::new(value),
            // SAFETY: `Arc::into_raw` is never null, and setting a bit keeps it so.
            pool: unsafe { NonNull::new_unchecked(raw) },
            _pool: PhantomData,
        }
    }
}

impl<T: Poolable> Deref for PoolHandle<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Poolable> DerefMut for PoolHandle<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: Poolable> Drop for PoolHandle<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.is_owned() {
            self.drop_owned();
            return;
        }
        // SAFETY: the value is initialised until now and never used again (`drop` ends
        // the handle; `into_inner` forgets it instead).
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        self.pool().release(value);
    }
}

impl<T: Poolable> PoolHandle<'_, T> {
    /// `drop` of a handle that owns a count of its pool's `Arc`: out of line, so the
    /// borrowed handle's drop stays small.
    #[inline(never)]
    fn drop_owned(&mut self) {
        // SAFETY: called once, from `drop`, which ends the handle.
        let arc = unsafe { self.take_arc() };
        // SAFETY: the value is initialised until now and never used again.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        self.pool().release(value);
        // After the release (and during unwinding, if the release panics).
        drop(arc);
    }
}

impl<T: Poolable + fmt::Debug> fmt::Debug for PoolHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("value", &*self.value)
            .field("owned", &self.is_owned())
            .finish()
    }
}
