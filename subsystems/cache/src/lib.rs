//! A multi-level cache for the Rust AI IDE: moka in memory, Redis between processes, checksummed files on disk.
#![doc = include_str!("../README.md")]

mod cache;
mod config;
mod disk;
mod error;
mod l2;
mod stats;
mod ttl;

pub use cache::{CacheKey, CacheValue, ENTRY_OVERHEAD, MultiLevelCache};
pub use config::{CacheConfig, Codec, WritePolicy};
pub use error::CacheError;
pub use stats::{CacheStats, L2State, TierStats};
pub use ttl::{KeyModel, MLTtlPredictor, TtlModelConfig};
