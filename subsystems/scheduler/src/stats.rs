//! Statistics of the workers and the global queues.

use std::time::Duration;

/// What one worker did so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's index.
    pub worker: usize,
    /// The NUMA node it was placed on (`None` unless `numa_aware`).
    pub numa_node: Option<usize>,
    /// Whether the OS pinned it to that node's CPUs.
    pub pinned: bool,
    /// Jobs it ran: task polls and the halves of `join` it took.
    pub executed: u64,
    /// Successful steals from other workers (each takes a batch of up to half a deque).
    pub stolen: u64,
    /// Steal attempts (one per victim looked at).
    pub steal_attempts: u64,
    /// Jobs taken from the global queues.
    pub from_global: u64,
    /// Times it parked for lack of work.
    pub parks: u64,
    /// Jobs in its deque now (stealable ones; the LIFO slot is not counted).
    pub queue_depth: usize,
    /// Time spent awake (running or looking for work), as opposed to parked.
    pub busy_time: Duration,
}

/// Jobs waiting in the global queues, per priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepths {
    /// High-priority queue.
    pub high: usize,
    /// Normal-priority queue (submissions from outside the workers, and yields).
    pub normal: usize,
    /// Low-priority queue.
    pub low: usize,
}
