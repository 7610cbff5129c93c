//! Synchronization shim: loom's model-checked primitives under `--cfg perflab_loom`, std's otherwise.

#[cfg(perflab_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(perflab_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(perflab_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(perflab_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section of this crate leaves its state
/// consistent before it could panic (handlers never run under these locks).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
