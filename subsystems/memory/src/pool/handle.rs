//! `PoolHandle`: a pooled value on loan, returned to its pool when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
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
pub struct PoolHandle<'pool, T: Poolable> {
    /// `Some` from creation until `drop` or `into_inner` consume the handle.
    value: Option<T>,
    pool: PoolRef<'pool, T>,
}

enum PoolRef<'pool, T: Poolable> {
    Borrowed(&'pool MemoryPool<T>),
    Shared(Arc<MemoryPool<T>>),
}

impl<'pool, T: Poolable> PoolHandle<'pool, T> {
    /// The value, as the 2025 API spelled it. Equivalent to `&*handle`.
    ///
    /// # Errors
    /// [`MemoryError::HandleReleased`] if the handle holds no value, which cannot happen
    /// for a handle obtained from a pool (only `drop` and `into_inner` take the value,
    /// and both consume the handle); the `Result` is kept for the 2025 API.
    pub fn as_ref(&self) -> Result<&T, MemoryError> {
        self.value.as_ref().ok_or(MemoryError::HandleReleased)
    }

    /// The value, mutably, as the 2025 API spelled it. Equivalent to `&mut *handle`.
    ///
    /// # Errors
    /// As [`as_ref`](PoolHandle::as_ref).
    pub fn as_mut(&mut self) -> Result<&mut T, MemoryError> {
        self.value.as_mut().ok_or(MemoryError::HandleReleased)
    }

    /// Detaches the value from the pool: it will not be returned, and the pool counts it
    /// as detached.
    ///
    /// # Errors
    /// As [`as_ref`](PoolHandle::as_ref).
    pub fn into_inner(mut self) -> Result<T, MemoryError> {
        let value = self.value.take().ok_or(MemoryError::HandleReleased)?;
        self.pool().record_detached();
        Ok(value)
    }

    /// The pool this handle returns to.
    pub fn pool(&self) -> &MemoryPool<T> {
        match &self.pool {
            PoolRef::Borrowed(pool) => pool,
            PoolRef::Shared(pool) => pool,
        }
    }

    pub(crate) fn borrowed(pool: &'pool MemoryPool<T>, value: T) -> Self {
        Self {
            value: Some(value),
            pool: PoolRef::Borrowed(pool),
        }
    }
}

impl<T: Poolable> PoolHandle<'static, T> {
    pub(crate) fn shared(pool: Arc<MemoryPool<T>>, value: T) -> Self {
        Self {
            value: Some(value),
            pool: PoolRef::Shared(pool),
        }
    }
}

impl<T: Poolable> Deref for PoolHandle<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match &self.value {
            Some(value) => value,
            None => unreachable!("a live pool handle always holds its value"),
        }
    }
}

impl<T: Poolable> DerefMut for PoolHandle<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.value {
            Some(value) => value,
            None => unreachable!("a live pool handle always holds its value"),
        }
    }
}

impl<T: Poolable> Drop for PoolHandle<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.pool().release(value);
        }
    }
}

impl<T: Poolable + fmt::Debug> fmt::Debug for PoolHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("value", &self.value)
            .field("owned", &matches!(self.pool, PoolRef::Shared(_)))
            .finish()
    }
}
