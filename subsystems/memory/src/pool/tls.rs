//! Thread identity for magazines: each thread's one-entry cache of the magazine it used last, thread serials, and the registry of threads that may still use what they claimed.
//!
//! A magazine (`Local`) belongs to one thread at a time: the thread whose serial is in
//! its `owner` word. Only that thread creates references into the magazine, so the
//! magazine needs no lock and no borrow flag. The owner finds its magazine on the hot
//! path through [`cached`]: a `(pool key, magazine pointer)` pair in a constant-initialised
//! `thread_local!` without a destructor, which compiles to one thread-pointer-relative
//! load and a compare (the `thread_local` crate's lookup, used on a cache miss, reads a
//! thread id, a bucket pointer and a presence flag).
//!
//! Why the claim: the `thread_local` crate reuses a thread's id once the thread's
//! id-releasing destructor has run, and hands the dead thread's entry to the next thread
//! given that id. Thread-local destructors run in an unspecified order, so an exiting
//! thread may still use its cached pointer after its id was released. A new thread
//! taking the entry over therefore first checks that the previous owner's serial has
//! left [`LIVE`], which the previous owner's [`ThreadGuard`] does only after clearing its
//! cache for good: the registry's mutex orders every use by the old owner before every
//! use by the new one.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Source of pool keys: a pool takes a new key when built and at every `clear`. Keys are
/// never 0 (the empty cache) and never reused, so a key names one pool in one epoch for
/// the life of the process (2^64 keys cannot run out).
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// Source of thread serials: never 0 (a magazine no thread owns) and never reused.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Serials of the threads that may still use magazines they own: a thread is added when
/// it takes its serial and removed by its [`ThreadGuard`], after which it never touches
/// a magazine again.
static LIVE: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// This thread's last used magazine: valid while `key` is the key of the pool it belongs
/// to (a pool that was dropped or cleared since has another key, or none).
struct Cache {
    key: Cell<u64>,
    /// Never null (dangling while `key` is 0), so the hot path tests only the key.
    local: Cell<NonNull<()>>,
    /// Releases this thread made without a magazine (all pools together).
    bare_releases: Cell<u32>,
}

/// Gives this thread's serial up when the thread exits.
struct ThreadGuard {
    serial: Cell<u64>,
}

thread_local! {
    static CACHE: Cache = const {
        Cache {
            key: Cell::new(0),
            local: Cell::new(NonNull::dangling()),
            bare_releases: Cell::new(0),
        }
    };
    static THREAD: ThreadGuard = const { ThreadGuard { serial: Cell::new(0) } };
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        // First the cache: from now on every operation of this thread takes the slow
        // path, where `serial` fails (this guard is destroyed) and no magazine is used.
        CACHE.with(|cache| cache.key.set(0));
        let serial = self.serial.get();
        if serial != 0 {
            live().remove(&serial);
        }
    }
}

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u64>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A key no pool has had.
pub(crate) fn new_key() -> u64 {
    NEXT_KEY.fetch_add(1, Relaxed)
}

/// The magazine pointer cached for `key`, if this thread's cache holds that key.
#[inline(always)]
pub(crate) fn cached(key: u64) -> Option<NonNull<()>> {
    CACHE.with(|cache| (cache.key.get() == key).then(|| cache.local.get()))
}

/// Makes `local` this thread's cached magazine for `key`. The caller owns `local` (its
/// serial is the magazine's owner) and `key` is the key of the magazine's pool.
pub(crate) fn set_cache(key: u64, local: NonNull<()>) {
    CACHE.with(|cache| {
        cache.key.set(key);
        cache.local.set(local);
    });
}

/// Counts a release by this thread without a magazine, and says whether the thread has
/// made enough of them to be given one: a thread that keeps releasing values it did not
/// allocate (a consumer) is worth a magazine, which turns its per-value depot lock into
/// one per batch; one that returns a few handles and exits is not (its values would wait
/// in its magazine instead of the depot).
pub(crate) fn bare_release_wants_magazine() -> bool {
    /// Releases without a magazine before a thread gets one.
    const BARE_RELEASES: u32 = 32;
    CACHE.with(|cache| {
        let n = cache.bare_releases.get().saturating_add(1);
        cache.bare_releases.set(n);
        n > BARE_RELEASES
    })
}

/// This thread's serial (taken on first use), or `None` once the thread has begun to
/// give up its magazines (its guard is being or has been destroyed).
pub(crate) fn serial() -> Option<u64> {
    THREAD
        .try_with(|guard| {
            if guard.serial.get() == 0 {
                let serial = NEXT_SERIAL.fetch_add(1, Relaxed);
                // Registered before the serial can own anything.
                live().insert(serial);
                guard.serial.set(serial);
            }
            guard.serial.get()
        })
        .ok()
}

/// Whether the thread with `serial` may still use the magazines it owns. `false` is
/// final, and everything that thread did to its magazines happens before the return.
pub(crate) fn is_live(serial: u64) -> bool {
    live().contains(&serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_serials_are_unique_and_never_zero() {
        let (a, b) = (new_key(), new_key());
        assert!(a != 0 && b != 0 && a != b);
        let here = serial().unwrap();
        assert_eq!(serial(), Some(here), "stable within a thread");
        let there = std::thread::spawn(|| serial().unwrap()).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn an_exited_thread_is_no_longer_live() {
        let exited = std::thread::spawn(|| {
            let serial = serial().unwrap();
            set_cache(new_key(), NonNull::dangling());
            assert!(is_live(serial));
            serial
        })
        .join()
        .unwrap();
        assert!(!is_live(exited));
        assert!(is_live(serial().unwrap()));
    }

    #[test]
    fn the_cache_answers_only_its_key() {
        let key = new_key();
        let value = 7u8;
        set_cache(key, NonNull::from(&value).cast());
        assert_eq!(cached(key), Some(NonNull::from(&value).cast()));
        assert_eq!(cached(new_key()), None);
        set_cache(0, NonNull::dangling());
    }
}
