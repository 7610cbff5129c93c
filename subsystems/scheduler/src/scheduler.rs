//! `WorkStealingScheduler`: configuration, start, the seed API (`schedule`,
//! `schedule_with_priority`, `wait_for_completion`, `worker_stats`, `numa_stats`), typed
//! spawning, `install` and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{SchedulingError, WaitError};
use crate::numa::{NodeStats, NumaStats, NumaTopology, pin_current_thread, place_workers};
use crate::stats::{QueueDepths, WorkerStats};
use crate::task::{JoinHandle, OnceFuture, Priority, Task, TaskId, TaskOutput, TaskResult};
use crate::worker::{CANCELLING, DRAINING, RUNNING, Shared, TERMINATED, run_worker};

/// How a scheduler is built.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Worker threads (default: the available parallelism).
    pub worker_threads: usize,
    /// Place workers on NUMA nodes in proportion to their CPUs, pin each to its node's CPUs,
    /// and steal from workers of the same node first.
    pub numa_aware: bool,
    /// The topology to use instead of the OS's (`None`: read `/sys/devices/system/node`).
    pub topology: Option<NumaTopology>,
    /// A worker takes one low-priority task at least every this many dispatches, whatever
    /// else is queued (the anti-starvation rule). Default 32.
    pub low_priority_interval: u32,
    /// Prefix of the worker threads' names.
    pub thread_name: String,
    /// Stack size of the worker threads (default: the platform's).
    pub stack_size: Option<usize>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            worker_threads: std::thread::available_parallelism().map_or(1, usize::from),
            numa_aware: false,
            topology: None,
            low_priority_interval: 32,
            thread_name: "perflab-worker".to_owned(),
            stack_size: None,
        }
    }
}

impl SchedulerConfig {
    /// The default configuration with `n` workers.
    pub fn with_workers(n: usize) -> Self {
        Self {
            worker_threads: n,
            ..Self::default()
        }
    }
}

/// How [`WorkStealingScheduler::shutdown`] treats unfinished work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Refuse new tasks from outside, run everything queued and everything those tasks
    /// spawn, and return once no task is left. A task waiting for a wake that never comes
    /// keeps this waiting.
    Drain,
    /// Refuse new tasks; queued tasks and tasks woken later finish with
    /// [`WaitError::Cancelled`] without running; tasks being polled finish their poll.
    Cancel,
}

/// What a shutdown left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Tasks that finished over the scheduler's life (cancelled ones included).
    pub completed: u64,
    /// Of those, tasks cancelled.
    pub cancelled: u64,
}

/// Placement of one worker.
#[derive(Debug, Clone, Copy)]
struct Placement {
    node_index: Option<usize>,
    pinned: bool,
}

/// A work-stealing scheduler: per-worker deques with a LIFO slot, global queues per priority,
/// batch stealing, parked idle workers. Cheap to share behind an `Arc`; dropping it cancels
/// what is left (`shutdown(ShutdownMode::Cancel)`).
#[derive(Debug)]
pub struct WorkStealingScheduler {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    placements: Vec<Placement>,
    topology: Option<NumaTopology>,
    numa_aware: bool,
    registry: Registry,
    next_id: AtomicU64,
}

impl WorkStealingScheduler {
    /// Starts the workers.
    pub fn new(config: SchedulerConfig) -> Result<Self, SchedulingError> {
        let n = config.worker_threads;
        if n == 0 {
            return Err(SchedulingError::InvalidConfig(
                "worker_threads must be at least 1".to_owned(),
            ));
        }
        if n >= (1 << 16) {
            return Err(SchedulingError::InvalidConfig(
                "worker_threads must be below 65536".to_owned(),
            ));
        }
        let topology = config.topology.clone().or_else(NumaTopology::detect);
        let nodes: Vec<Option<usize>> = match (&topology, config.numa_aware) {
            (Some(t), true) => place_workers(n, t).into_iter().map(Some).collect(),
            _ => vec![None; n],
        };
        let steal_groups: Vec<usize> = nodes.iter().map(|n| n.unwrap_or(0)).collect();
        let (shared, locals) = Shared::new(&steal_groups, config.low_priority_interval);
        let mut scheduler = Self {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::with_capacity(n)),
            placements: nodes
                .iter()
                .map(|&node_index| Placement {
                    node_index,
                    pinned: false,
                })
                .collect(),
            topology,
            numa_aware: config.numa_aware,
            registry: Registry::default(),
            next_id: AtomicU64::new(1),
        };
        // Each worker reports whether the OS pinned it before it starts taking work.
        let (pin_tx, pin_rx) = std::sync::mpsc::channel::<(usize, bool)>();
        for (index, local) in locals.into_iter().enumerate() {
            let cpus: Option<Vec<usize>> = nodes[index].and_then(|node| {
                scheduler
                    .topology
                    .as_ref()
                    .map(|t| t.nodes()[node].cpus.clone())
            });
            let mut builder =
                std::thread::Builder::new().name(format!("{}-{index}", config.thread_name));
            if let Some(size) = config.stack_size {
                builder = builder.stack_size(size);
            }
            let (shared, pin_tx) = (Arc::clone(&shared), pin_tx.clone());
            let spawned = builder.spawn(move || {
                let pinned = cpus.is_some_and(|cpus| pin_current_thread(&cpus));
                // The receiver outlives this send: `new` waits for every worker's report.
                let _ = pin_tx.send((index, pinned));
                drop(pin_tx);
                run_worker(shared, index, local);
            });
            match spawned {
                Ok(handle) => scheduler.threads.lock().push(handle),
                Err(source) => {
                    // The workers already started exit through the normal shutdown; the
                    // ones never started left their (empty) deques behind.
                    scheduler.stop(ShutdownMode::Cancel);
                    return Err(SchedulingError::ThreadSpawn {
                        worker: index,
                        source,
                    });
                }
            }
        }
        drop(pin_tx);
        for (index, pinned) in pin_rx.iter() {
            scheduler.placements[index].pinned = pinned;
        }
        Ok(scheduler)
    }

    /// Schedules `task` at normal priority; its result waits for
    /// [`WorkStealingScheduler::wait_for_completion`] (or [`WorkStealingScheduler::detach`]).
    pub fn schedule(&self, task: Task) -> Result<TaskId, SchedulingError> {
        self.schedule_with_priority(task, Priority::Normal)
    }

    /// Schedules `task` at `priority`.
    pub fn schedule_with_priority(
        &self,
        task: Task,
        priority: Priority,
    ) -> Result<TaskId, SchedulingError> {
        let id = TaskId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let handle = self.shared.spawn(task, priority)?;
        self.registry.insert(id, handle);
        Ok(id)
    }

    /// Waits for task `task_id` and takes its result. The result is handed out once; a
    /// second wait (or a wait for an id never scheduled) gives [`WaitError::UnknownTask`].
    pub async fn wait_for_completion(&self, task_id: TaskId) -> Result<TaskResult, WaitError> {
        let cell = self
            .registry
            .get(task_id)
            .ok_or(WaitError::UnknownTask(task_id))?;
        let result = std::future::poll_fn(|cx| cell.poll_output(cx)).await;
        self.registry.remove(task_id);
        match result {
            Err(WaitError::ResultTaken) => Err(WaitError::UnknownTask(task_id)),
            other => other,
        }
    }

    /// Whether task `task_id` finished; `None` for an unknown id.
    pub fn is_finished(&self, task_id: TaskId) -> Option<bool> {
        self.registry.get(task_id).map(|c| c.is_finished())
    }

    /// Forgets task `task_id`: it still runs, but its result is dropped instead of kept for
    /// a `wait_for_completion` that will never come. Returns whether the id was known.
    pub fn detach(&self, task_id: TaskId) -> bool {
        self.registry.remove(task_id)
    }

    /// Spawns closure `f` at normal priority and returns a typed handle (no registry entry).
    /// From one of this scheduler's workers the task goes to the worker's LIFO slot.
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SchedulingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.spawn(OnceFuture::new(f), Priority::Normal)
    }

    /// Spawns closure `f` at `priority`.
    pub fn spawn_with_priority<F, T>(
        &self,
        f: F,
        priority: Priority,
    ) -> Result<JoinHandle<T>, SchedulingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.spawn(OnceFuture::new(f), priority)
    }

    /// Spawns future `fut` at normal priority; a wake puts it back into a queue.
    pub fn spawn_future<F>(&self, fut: F) -> Result<JoinHandle<F::Output>, SchedulingError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(fut, Priority::Normal)
    }

    /// Spawns future `fut` at `priority`.
    pub fn spawn_future_with_priority<F>(
        &self,
        fut: F,
        priority: Priority,
    ) -> Result<JoinHandle<F::Output>, SchedulingError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(fut, priority)
    }

    /// Runs `f` on a worker and returns its result, blocking the calling thread; inside `f`,
    /// [`crate::join`] runs in parallel. On one of this scheduler's workers, `f` runs in place.
    /// A panic in `f` is resumed here.
    pub fn install<R, F>(&self, f: F) -> Result<R, SchedulingError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        self.shared.install(f)
    }

    /// A cloneable handle that spawns onto this scheduler from anywhere.
    pub fn spawner(&self) -> Spawner {
        Spawner {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Per-worker statistics.
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        let placements = &self.placements;
        self.shared
            .counters
            .iter()
            .enumerate()
            .map(|(worker, c)| {
                let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let placement = placements[worker];
                WorkerStats {
                    worker,
                    numa_node: placement
                        .node_index
                        .and_then(|i| self.topology.as_ref().map(|t| t.nodes()[i].id)),
                    pinned: placement.pinned,
                    executed: load(&c.executed),
                    stolen: load(&c.stolen),
                    steal_attempts: load(&c.steal_attempts),
                    from_global: load(&c.from_global),
                    parks: load(&c.parks),
                    queue_depth: self.shared.local_depth(worker),
                    busy_time: Duration::from_nanos(load(&c.busy_ns)),
                }
            })
            .collect()
    }

    /// Jobs waiting in the global queues.
    pub fn queue_depths(&self) -> QueueDepths {
        QueueDepths {
            high: self.shared.global_depth(Priority::High),
            normal: self.shared.global_depth(Priority::Normal),
            low: self.shared.global_depth(Priority::Low),
        }
    }

    /// The NUMA view: the topology's nodes with their workers and counters. `None` when no
    /// topology is known (not read from the OS and not injected).
    pub fn numa_stats(&self) -> Option<NumaStats> {
        let topology = self.topology.as_ref()?;
        let placements = &self.placements;
        let nodes = topology
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let workers: Vec<usize> = placements
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.node_index == Some(i))
                    .map(|(w, _)| w)
                    .collect();
                let sum = |f: fn(&crate::worker::WorkerCounters) -> &AtomicU64| {
                    workers
                        .iter()
                        .map(|&w| f(&self.shared.counters[w]).load(Ordering::Relaxed))
                        .sum::<u64>()
                };
                let stolen = sum(|c| &c.stolen);
                let cross = sum(|c| &c.stolen_cross_node);
                NodeStats {
                    node: node.id,
                    cpus: node.cpus.clone(),
                    pinned_workers: workers.iter().filter(|&&w| placements[w].pinned).count(),
                    executed: sum(|c| &c.executed),
                    stolen_same_node: stolen - cross,
                    stolen_cross_node: cross,
                    workers,
                }
            })
            .collect();
        Some(NumaStats {
            numa_aware: self.numa_aware,
            nodes,
        })
    }

    /// Worker threads.
    pub fn worker_count(&self) -> usize {
        self.shared.workers()
    }

    /// Stops the scheduler (see [`ShutdownMode`]) and joins the workers. Later calls and
    /// submissions from outside get [`SchedulingError::ShutDown`]; a second shutdown only
    /// reports.
    pub fn shutdown(&self, mode: ShutdownMode) -> ShutdownReport {
        self.stop(mode);
        let (completed, cancelled) = self.shared.completed_and_cancelled();
        ShutdownReport {
            completed,
            cancelled,
        }
    }

    fn stop(&self, mode: ShutdownMode) {
        let target = match mode {
            ShutdownMode::Drain => DRAINING,
            ShutdownMode::Cancel => CANCELLING,
        };
        // Only move forward: a drain may be turned into a cancel, never back.
        let _ = self
            .shared
            .lifecycle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                (cur < target).then_some(target)
            });
        self.shared.sleep.notify_all();
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            // A worker never panics out of its loop (tasks are isolated); if it did, the
            // others still have to be joined.
            let _ = t.join();
        }
        self.shared.lifecycle.store(TERMINATED, Ordering::SeqCst);
        self.shared.cancel_global();
        debug_assert!(self.shared.lifecycle.load(Ordering::SeqCst) != RUNNING);
    }
}

impl Drop for WorkStealingScheduler {
    fn drop(&mut self) {
        self.stop(ShutdownMode::Cancel);
    }
}

/// Spawns onto one scheduler from any thread.
#[derive(Debug, Clone)]
pub struct Spawner {
    shared: Arc<Shared>,
}

impl Spawner {
    /// As [`WorkStealingScheduler::spawn_with_priority`].
    pub fn spawn<F, T>(&self, f: F, priority: Priority) -> Result<JoinHandle<T>, SchedulingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.spawn(OnceFuture::new(f), priority)
    }

    /// As [`WorkStealingScheduler::spawn_future_with_priority`].
    pub fn spawn_future<F>(
        &self,
        fut: F,
        priority: Priority,
    ) -> Result<JoinHandle<F::Output>, SchedulingError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(fut, priority)
    }
}

/// Results of `schedule`d tasks by id, sharded so that submitters on different threads
/// rarely share a lock.
#[derive(Default)]
struct Registry {
    shards: [Mutex<HashMap<TaskId, ResultCell>>; 16],
}

/// A scheduled task's result, seen without its future type.
type ResultCell = Arc<dyn TaskOutput<TaskResult>>;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.shards.iter().map(|s| s.lock().len()).sum();
        f.debug_struct("Registry").field("tasks", &n).finish()
    }
}

impl Registry {
    fn shard(&self, id: TaskId) -> &Mutex<HashMap<TaskId, ResultCell>> {
        &self.shards[(id.0 % 16) as usize]
    }

    fn insert(&self, id: TaskId, handle: JoinHandle<TaskResult>) {
        self.shard(id).lock().insert(id, handle.into_cell());
    }

    fn get(&self, id: TaskId) -> Option<ResultCell> {
        self.shard(id).lock().get(&id).cloned()
    }

    fn remove(&self, id: TaskId) -> bool {
        self.shard(id).lock().remove(&id).is_some()
    }
}
