//! The `Poolable` trait: what a value must offer to live in a [`MemoryPool`](super::MemoryPool).

/// A value that can be kept in a pool: built with a capacity, reports its capacity,
/// and can be reset to empty without giving its memory back. Values are `Send`: a
/// value released on one thread may be reused on another.
///
/// Capacities and size hints are in the value's own units: bytes for `String` and
/// `Vec<u8>`, elements for `Vec<T>`. [`heap_bytes`](Poolable::heap_bytes) converts to bytes
/// for the pool's memory accounting.
pub trait Poolable: Send {
    /// An empty value that can hold at least `capacity` units without reallocating, or
    /// `None` when that memory cannot be had (capacity overflow, allocator failure).
    fn try_with_capacity(capacity: usize) -> Option<Self>
    where
        Self: Sized;

    /// How many units the value can hold without reallocating.
    fn capacity(&self) -> usize;

    /// Heap bytes the value owns (what retaining it costs).
    fn heap_bytes(&self) -> usize;

    /// Empties the value, keeping its capacity; called when the value returns to a pool,
    /// so the next user never sees the previous contents.
    fn reset(&mut self);
}

impl<T: Send> Poolable for Vec<T> {
    #[inline]
    fn try_with_capacity(capacity: usize) -> Option<Self> {
        let mut value = Vec::new();
        value.try_reserve_exact(capacity).ok()?;
        Some(value)
    }

    #[inline]
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }

    #[inline]
    fn heap_bytes(&self) -> usize {
        Vec::capacity(self).saturating_mul(size_of::<T>())
    }

    #[inline]
    fn reset(&mut self) {
        self.clear();
    }
}

impl Poolable for String {
    #[inline]
    fn try_with_capacity(capacity: usize) -> Option<Self> {
        let mut value = String::new();
        value.try_reserve_exact(capacity).ok()?;
        Some(value)
    }

    #[inline]
    fn capacity(&self) -> usize {
        String::capacity(self)
    }

    #[inline]
    fn heap_bytes(&self) -> usize {
        String::capacity(self)
    }

    #[inline]
    fn reset(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Poolable;

    #[test]
    fn vec_reports_elements_as_capacity_and_bytes_as_heap() {
        let mut v = <Vec<u64> as Poolable>::try_with_capacity(10).unwrap();
        assert!(Poolable::capacity(&v) >= 10);
        assert_eq!(v.heap_bytes(), Poolable::capacity(&v) * 8);
        v.extend([1, 2, 3]);
        let cap = Poolable::capacity(&v);
        v.reset();
        assert!(v.is_empty());
        assert_eq!(Poolable::capacity(&v), cap);
    }

    #[test]
    fn string_resets_to_empty_keeping_capacity() {
        let mut s = <String as Poolable>::try_with_capacity(100).unwrap();
        s.push_str("hello");
        let cap = Poolable::capacity(&s);
        assert!(cap >= 100);
        s.reset();
        assert!(s.is_empty());
        assert_eq!(s.heap_bytes(), cap);
    }

    #[test]
    fn impossible_capacities_are_none_not_a_panic() {
        assert!(<Vec<u64> as Poolable>::try_with_capacity(usize::MAX).is_none());
        assert!(<String as Poolable>::try_with_capacity(usize::MAX).is_none());
    }
}
