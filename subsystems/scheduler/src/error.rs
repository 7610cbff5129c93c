//! Errors of scheduling a task and of waiting for its result.

use crate::task::TaskId;

/// Why a task could not be scheduled or the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulingError {
    /// The scheduler is shutting down or shut down: it takes no new tasks from outside.
    #[error("the scheduler is shut down")]
    ShutDown,
    /// The configuration cannot work (zero workers, an empty topology).
    #[error("invalid scheduler configuration: {0}")]
    InvalidConfig(String),
    /// A worker thread could not be started.
    #[error("cannot start worker thread {worker}")]
    ThreadSpawn {
        /// The worker's index.
        worker: usize,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// An ambient function (`spawn`, `spawn_future`) was called outside a worker thread.
    #[error("not on a scheduler worker thread")]
    NotOnWorker,
    /// A NUMA topology description could not be read or parsed.
    #[error("invalid numa topology: {0}")]
    Topology(String),
}

/// Why waiting for a task gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// No task with this id is known (never scheduled, or its result was already taken).
    #[error("unknown task {0}")]
    UnknownTask(TaskId),
    /// The task panicked; the worker that ran it survived.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The task was cancelled by a `ShutdownMode::Cancel` shutdown before it finished.
    #[error("task cancelled by shutdown")]
    Cancelled,
    /// Another waiter already took the result.
    #[error("the result was already taken")]
    ResultTaken,
}
