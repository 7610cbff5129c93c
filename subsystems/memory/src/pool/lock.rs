//! `SpinLock`: the small test-and-test-and-set spin lock that guards a pool's shared depot.
//!
//! The depot's critical sections are short (moving a batch of at most 32 values between
//! `Vec`s, or a periodic trim) and run no user code: values are reset before and dropped
//! after. For such sections a spin lock is the cheapest correct lock: acquiring is one
//! compare-and-swap and releasing is a plain release store, where `std::sync::Mutex`
//! needs a second atomic read-modify-write to release (it must learn whether a waiter
//! sleeps). The usual danger of spin locks, a holder preempted while others spin, is
//! bounded: a waiter spins briefly, then yields its time slice on every further attempt.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// A spin lock around a `T`. `repr(C)` puts the lock word first, on the cache line of
/// the start of `T` (the depot's header), so a critical section brings one line less
/// to the acquiring core.
#[repr(C)]
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time (see `lock` and
// `try_lock`), so sharing the lock between threads only ever moves `T` between threads
// (`T: Send`), as `std::sync::Mutex<T>` does.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock: spins a little, then yields between attempts.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if let Some(guard) = self.try_lock() {
            return guard;
        }
        self.lock_contended()
    }

    /// Takes the lock if it is free now.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        // `then`, not `then_some`: a guard built on failure would unlock on drop.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| SpinGuard { lock: self })
    }

    #[cold]
    fn lock_contended(&self) -> SpinGuard<'_, T> {
        let mut attempts = 0u32;
        loop {
            // Wait with plain loads (the line stays shared) until the lock looks free.
            while self.locked.load(Ordering::Relaxed) {
                if attempts < 64 {
                    std::hint::spin_loop();
                    attempts += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            if let Some(guard) = self.try_lock() {
                return guard;
            }
        }
    }
}

/// Access to a locked `T`; unlocks when dropped (also during a panic).
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a guard exists only while its thread holds the lock, so no other
        // reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference from the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_excludes_and_releases() {
        let lock = SpinLock::new(0u32);
        {
            let mut guard = lock.lock();
            *guard += 1;
            assert!(lock.try_lock().is_none());
        }
        assert_eq!(*lock.try_lock().unwrap(), 1);
    }

    #[test]
    fn a_failed_try_lock_leaves_the_holder_locked() {
        let lock = SpinLock::new(());
        let held = lock.lock();
        assert!(lock.try_lock().is_none());
        assert!(
            lock.try_lock().is_none(),
            "still held after a failed attempt"
        );
        drop(held);
        assert!(lock.try_lock().is_some());
    }

    #[test]
    fn two_threads_never_lose_an_increment() {
        let lock = SpinLock::new(0u64);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..100_000 {
                        *lock.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), 200_000);
    }

    #[test]
    fn a_panic_while_locked_releases_the_lock() {
        let lock = SpinLock::new(Vec::<u8>::new());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = lock.lock();
            panic!("inside the critical section");
        }));
        assert!(result.is_err());
        assert!(lock.try_lock().is_some());
    }
}
