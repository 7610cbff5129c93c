//! A work-stealing task scheduler for the Rust AI IDE: per-worker crossbeam deques, priorities, fork-join, NUMA placement.
#![doc = include_str!("../README.md")]

mod error;
mod job;
mod latch;
mod numa;
mod scheduler;
mod sleep;
mod state;
mod stats;
mod sync;
mod task;
mod worker;

pub use error::{SchedulingError, WaitError};
pub use numa::{NodeStats, NumaNode, NumaStats, NumaTopology, current_thread_cpus};
pub use scheduler::{
    SchedulerConfig, ShutdownMode, ShutdownReport, Spawner, WorkStealingScheduler,
};
pub use stats::{QueueDepths, WorkerStats};
pub use task::{JoinHandle, Priority, Task, TaskId, TaskResult, YieldNow, yield_now};
pub use worker::{block_on, join, spawn, spawn_future};
