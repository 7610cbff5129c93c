//! Atomics and locks of the model-checked parts: loom's under `--cfg perflab_loom`, std's otherwise.

#[cfg(perflab_loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};
#[cfg(perflab_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(perflab_loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering, fence};
#[cfg(not(perflab_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section here leaves its data consistent
/// (they only push, pop or flip a flag), so a panic elsewhere does not make it unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
