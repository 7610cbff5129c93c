//! The resource limiter: a memory budget held for a service's life and a pool of
//! initialisation slots held while its factory runs, admitted in priority order.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::Mutex;

use crate::context::InitializationPriority;
use crate::error::ResourceError;

/// What one initialisation reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceBudget {
    /// Memory reserved from admission until the service is shut down (or its attempt fails).
    pub memory_bytes: u64,
    /// Initialisation slots held while the factory runs (0: never waits for a slot).
    pub init_slots: u32,
}

impl ResourceBudget {
    /// A budget of `memory_bytes` and `init_slots`.
    pub const fn new(memory_bytes: u64, init_slots: u32) -> Self {
        Self {
            memory_bytes,
            init_slots,
        }
    }
}

impl Default for ResourceBudget {
    /// No memory, one slot.
    fn default() -> Self {
        Self::new(0, 1)
    }
}

impl fmt::Display for ResourceBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes and {} slots",
            self.memory_bytes, self.init_slots
        )
    }
}

/// What a [`ResourceLimiter`] has to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceCapacity {
    /// Total memory of all live and initialising services.
    pub memory_bytes: u64,
    /// Initialisation slots: how many factories (of one slot each) run at once.
    pub init_slots: u32,
}

impl ResourceCapacity {
    /// Nothing limited.
    pub const UNLIMITED: Self = Self {
        memory_bytes: u64::MAX,
        init_slots: u32::MAX,
    };

    /// A capacity of `memory_bytes` and `init_slots`.
    pub const fn new(memory_bytes: u64, init_slots: u32) -> Self {
        Self {
            memory_bytes,
            init_slots,
        }
    }
}

impl Default for ResourceCapacity {
    /// Unlimited memory, and four slots per available CPU: initialisation is mostly waiting
    /// on I/O, but a start-up storm should not spawn hundreds of factories at once.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(u64::MAX, u32::try_from(cpus * 4).unwrap_or(u32::MAX))
    }
}

impl fmt::Display for ResourceCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes and {} slots",
            self.memory_bytes, self.init_slots
        )
    }
}

/// A snapshot of a limiter's state and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceUsage {
    /// The limiter's capacity.
    pub capacity: ResourceCapacity,
    /// Memory reserved now.
    pub memory_reserved: u64,
    /// Slots in use now.
    pub init_slots_in_use: u32,
    /// The most slots ever in use at once.
    pub peak_init_slots: u32,
    /// Requests waiting for slots now.
    pub waiting: usize,
    /// Requests admitted so far.
    pub admitted: u64,
    /// Admitted requests that had to wait for slots.
    pub queued: u64,
    /// Requests rejected so far.
    pub rejected: u64,
}

/// Enforces a [`ResourceCapacity`]. Memory is checked at admission and rejected when short
/// (it is held for a service's whole life, so waiting might never end); slots are queued for,
/// highest [`InitializationPriority`] first and first come, first served within a priority.
/// A waiter at the head of the queue that needs more slots than are free blocks those behind
/// it, so a large request is never starved by small ones. Clones share the same budget.
#[derive(Clone)]
pub struct ResourceLimiter {
    inner: Arc<Inner>,
}

impl ResourceLimiter {
    /// A limiter with `capacity`.
    pub fn new(capacity: ResourceCapacity) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A limiter that limits nothing.
    pub fn unlimited() -> Self {
        Self::new(ResourceCapacity::UNLIMITED)
    }

    /// The capacity.
    pub fn capacity(&self) -> ResourceCapacity {
        self.inner.capacity
    }

    /// Reserves `budget`, waiting in `priority` order for slots. Fails at once when the budget
    /// exceeds the capacity or the memory left. Dropping the future gives everything back.
    pub async fn acquire(
        &self,
        budget: ResourceBudget,
        priority: InitializationPriority,
    ) -> Result<ResourcePermit, ResourceError> {
        let memory = self.reserve_memory(budget)?;
        let key = {
            let mut st = self.inner.state.lock();
            let fits = st.slots_in_use as u64 + u64::from(budget.init_slots)
                <= u64::from(self.inner.capacity.init_slots);
            if budget.init_slots == 0 || (st.queue.is_empty() && fits) {
                st.take_slots(budget.init_slots);
                st.admitted += 1;
                return Ok(ResourcePermit {
                    memory,
                    slots: SlotGuard {
                        inner: Arc::clone(&self.inner),
                        slots: budget.init_slots,
                    },
                });
            }
            let key = (Reverse(priority), st.next_seq);
            st.next_seq += 1;
            st.queue.insert(
                key,
                Waiter {
                    slots: budget.init_slots,
                    granted: false,
                    waker: None,
                },
            );
            key
        };
        let mut waiting = Waiting {
            inner: &self.inner,
            key,
            done: false,
        };
        poll_fn(|cx| {
            let mut st = self.inner.state.lock();
            let w = st
                .queue
                .get_mut(&key)
                .expect("a waiter stays queued until it is done");
            if w.granted {
                st.queue.remove(&key);
                st.admitted += 1;
                st.queued += 1;
                Poll::Ready(())
            } else {
                w.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        waiting.done = true;
        Ok(ResourcePermit {
            memory,
            slots: SlotGuard {
                inner: Arc::clone(&self.inner),
                slots: budget.init_slots,
            },
        })
    }

    /// Reserves `budget` only if it is free now: never waits.
    pub fn try_acquire(&self, budget: ResourceBudget) -> Result<ResourcePermit, ResourceError> {
        let memory = self.reserve_memory(budget)?;
        let mut st = self.inner.state.lock();
        let capacity = self.inner.capacity.init_slots;
        let blocked = budget.init_slots > 0
            && (!st.queue.is_empty()
                || st.slots_in_use as u64 + u64::from(budget.init_slots) > u64::from(capacity));
        if blocked {
            st.rejected += 1;
            return Err(ResourceError::SlotsBusy {
                requested: budget.init_slots,
                in_use: st.slots_in_use,
                capacity,
            });
        }
        st.take_slots(budget.init_slots);
        st.admitted += 1;
        Ok(ResourcePermit {
            memory,
            slots: SlotGuard {
                inner: Arc::clone(&self.inner),
                slots: budget.init_slots,
            },
        })
    }

    /// The current state and counters.
    pub fn usage(&self) -> ResourceUsage {
        let st = self.inner.state.lock();
        ResourceUsage {
            capacity: self.inner.capacity,
            memory_reserved: st.memory_reserved,
            init_slots_in_use: st.slots_in_use,
            peak_init_slots: st.peak_slots,
            waiting: st.queue.values().filter(|w| !w.granted).count(),
            admitted: st.admitted,
            queued: st.queued,
            rejected: st.rejected,
        }
    }

    fn reserve_memory(&self, budget: ResourceBudget) -> Result<MemoryReservation, ResourceError> {
        let cap = self.inner.capacity;
        let mut st = self.inner.state.lock();
        if budget.memory_bytes > cap.memory_bytes || budget.init_slots > cap.init_slots {
            st.rejected += 1;
            return Err(ResourceError::ExceedsCapacity {
                requested: budget,
                capacity: cap,
            });
        }
        let available = cap.memory_bytes - st.memory_reserved;
        if budget.memory_bytes > available {
            st.rejected += 1;
            return Err(ResourceError::MemoryExhausted {
                requested: budget.memory_bytes,
                available,
                capacity: cap.memory_bytes,
            });
        }
        st.memory_reserved += budget.memory_bytes;
        Ok(MemoryReservation {
            inner: Arc::clone(&self.inner),
            bytes: budget.memory_bytes,
        })
    }
}

impl Default for ResourceLimiter {
    fn default() -> Self {
        Self::new(ResourceCapacity::default())
    }
}

impl fmt::Debug for ResourceLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceLimiter")
            .field("usage", &self.usage())
            .finish()
    }
}

/// An admitted budget: memory and slots, both given back on drop.
#[derive(Debug)]
pub struct ResourcePermit {
    memory: MemoryReservation,
    slots: SlotGuard,
}

impl ResourcePermit {
    /// What this permit holds.
    pub fn budget(&self) -> ResourceBudget {
        ResourceBudget::new(self.memory.bytes, self.slots.slots)
    }

    /// Gives the slots back and keeps the memory: what a service holds once initialised.
    pub fn into_memory_reservation(self) -> MemoryReservation {
        self.memory
    }
}

/// Memory reserved from a [`ResourceLimiter`], given back on drop.
pub struct MemoryReservation {
    inner: Arc<Inner>,
    bytes: u64,
}

impl MemoryReservation {
    /// Bytes reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.inner.state.lock().memory_reserved -= self.bytes;
    }
}

impl fmt::Debug for MemoryReservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

struct Inner {
    capacity: ResourceCapacity,
    state: Mutex<State>,
}

/// Queue key: highest priority first, then arrival order.
type Key = (Reverse<InitializationPriority>, u64);

#[derive(Default)]
struct State {
    memory_reserved: u64,
    slots_in_use: u32,
    peak_slots: u32,
    queue: BTreeMap<Key, Waiter>,
    next_seq: u64,
    admitted: u64,
    queued: u64,
    rejected: u64,
}

struct Waiter {
    slots: u32,
    /// Slots already handed over; the waiter takes them on its next poll.
    granted: bool,
    waker: Option<Waker>,
}

impl State {
    fn take_slots(&mut self, n: u32) {
        self.slots_in_use += n;
        self.peak_slots = self.peak_slots.max(self.slots_in_use);
    }

    /// Gives `n` slots back and hands free slots to the waiters at the head of the queue.
    fn release_slots(&mut self, n: u32, capacity: u32) {
        self.slots_in_use -= n;
        let mut wake = Vec::new();
        for w in self.queue.values_mut() {
            if w.granted {
                continue;
            }
            if self.slots_in_use as u64 + u64::from(w.slots) > u64::from(capacity) {
                break;
            }
            w.granted = true;
            self.slots_in_use += w.slots;
            self.peak_slots = self.peak_slots.max(self.slots_in_use);
            wake.extend(w.waker.take());
        }
        for w in wake {
            w.wake();
        }
    }
}

/// Slots held by a permit.
struct SlotGuard {
    inner: Arc<Inner>,
    slots: u32,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.slots > 0 {
            let cap = self.inner.capacity.init_slots;
            self.inner.state.lock().release_slots(self.slots, cap);
        }
    }
}

impl fmt::Debug for SlotGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotGuard")
            .field("slots", &self.slots)
            .finish()
    }
}

/// Leaves the queue when an `acquire` is dropped before it finished, giving back slots that
/// were already granted to it.
struct Waiting<'a> {
    inner: &'a Inner,
    key: Key,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.inner.state.lock();
        if let Some(w) = st.queue.remove(&self.key) {
            if w.granted {
                st.release_slots(w.slots, self.inner.capacity.init_slots);
            } else {
                // Leaving the head of the queue may unblock the waiters behind it.
                st.release_slots(0, self.inner.capacity.init_slots);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn memory_is_rejected_not_queued() {
        let l = ResourceLimiter::new(ResourceCapacity::new(100, 4));
        let a = l.try_acquire(ResourceBudget::new(60, 1)).expect("fits");
        let kept = a.into_memory_reservation();
        assert_eq!(l.usage().init_slots_in_use, 0);
        assert_eq!(l.usage().memory_reserved, 60);
        let e = l
            .try_acquire(ResourceBudget::new(50, 1))
            .expect_err("short");
        assert_eq!(
            e,
            ResourceError::MemoryExhausted {
                requested: 50,
                available: 40,
                capacity: 100
            }
        );
        drop(kept);
        assert!(l.try_acquire(ResourceBudget::new(50, 1)).is_ok());
        assert_eq!(l.usage().memory_reserved, 0);
        assert_eq!(l.usage().rejected, 1);
    }

    #[test]
    fn budgets_above_capacity_are_refused() {
        let l = ResourceLimiter::new(ResourceCapacity::new(100, 2));
        assert!(matches!(
            l.try_acquire(ResourceBudget::new(101, 1)),
            Err(ResourceError::ExceedsCapacity { .. })
        ));
        assert!(matches!(
            l.try_acquire(ResourceBudget::new(0, 3)),
            Err(ResourceError::ExceedsCapacity { .. })
        ));
        let _a = l.try_acquire(ResourceBudget::new(0, 2)).expect("fits");
        assert!(matches!(
            l.try_acquire(ResourceBudget::new(0, 1)),
            Err(ResourceError::SlotsBusy { in_use: 2, .. })
        ));
        assert!(l.try_acquire(ResourceBudget::new(10, 0)).is_ok());
    }

    #[tokio::test]
    async fn waiters_are_admitted_by_priority_then_arrival() {
        let l = ResourceLimiter::new(ResourceCapacity::new(u64::MAX, 1));
        let first = l.try_acquire(ResourceBudget::default()).expect("free");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, p) in [
            ("low", InitializationPriority::Low),
            ("normal1", InitializationPriority::Normal),
            ("critical", InitializationPriority::Critical),
            ("normal2", InitializationPriority::Normal),
        ] {
            let limiter = l.clone();
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let permit = limiter
                    .acquire(ResourceBudget::default(), p)
                    .await
                    .expect("fits");
                order.lock().push(name);
                tokio::task::yield_now().await;
                drop(permit);
            }));
            // Let the task enqueue before the next one arrives.
            while l.usage().waiting < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*order.lock(), ["critical", "normal1", "normal2", "low"]);
        let u = l.usage();
        assert_eq!(
            (u.admitted, u.queued, u.init_slots_in_use, u.peak_init_slots),
            (5, 4, 0, 1)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slots_bound_concurrency_and_cancellation_returns_them() {
        let l = ResourceLimiter::new(ResourceCapacity::new(u64::MAX, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..40u32 {
            let (l, running, peak) = (l.clone(), Arc::clone(&running), Arc::clone(&peak));
            tasks.push(tokio::spawn(async move {
                let slots = 1 + i % 2;
                let acquire = l.acquire(
                    ResourceBudget::new(0, slots),
                    InitializationPriority::Normal,
                );
                // Every fifth request gives up while it may still be queued.
                let permit = if i % 5 == 0 {
                    match tokio::time::timeout(Duration::from_micros(50), acquire).await {
                        Ok(p) => p.expect("fits"),
                        Err(_) => return,
                    }
                } else {
                    acquire.await.expect("fits")
                };
                let now = running.fetch_add(slots as usize, Ordering::SeqCst) + slots as usize;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(200)).await;
                running.fetch_sub(slots as usize, Ordering::SeqCst);
                drop(permit);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        let u = l.usage();
        assert_eq!((u.init_slots_in_use, u.waiting), (0, 0));
        assert!(u.peak_init_slots <= 3);
    }

    #[tokio::test]
    async fn a_large_head_waiter_is_not_starved() {
        let l = ResourceLimiter::new(ResourceCapacity::new(u64::MAX, 2));
        let a = l.try_acquire(ResourceBudget::new(0, 1)).expect("free");
        let big = {
            let l = l.clone();
            tokio::spawn(async move {
                l.acquire(ResourceBudget::new(0, 2), InitializationPriority::Normal)
                    .await
                    .map(|p| p.budget())
            })
        };
        while l.usage().waiting == 0 {
            tokio::task::yield_now().await;
        }
        // One slot is free, but the big waiter is ahead: a small request must not jump it.
        assert!(matches!(
            l.try_acquire(ResourceBudget::new(0, 1)),
            Err(ResourceError::SlotsBusy { .. })
        ));
        drop(a);
        assert_eq!(
            big.await.expect("task").expect("fits"),
            ResourceBudget::new(0, 2)
        );
    }
}
