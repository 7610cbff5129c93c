//! Memory pools and a virtual memory manager for the Rust AI IDE.
#![doc = include_str!("../README.md")]

mod error;
pub mod pool;
pub mod vmm;

pub use error::MemoryError;
pub use pool::{MemoryPool, PoolBuilder, PoolConfig, PoolHandle, PoolStats, Poolable};
pub use vmm::{
    BackingStore, MappedFile, MemoryPermissions, MemoryRegion, UnreadableFile,
    VirtualMemoryManager, VmmBuilder, VmmStats, WorkspaceMapping,
};
