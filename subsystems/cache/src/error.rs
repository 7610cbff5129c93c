//! The one error type of the crate: what a cache call can report to its caller.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a [`crate::MultiLevelCache`] call can fail with.
///
/// Failures of a lower tier during `get` and `insert` are not errors: the cache keeps
/// serving from the tiers that work and counts the failure in [`crate::CacheStats`].
/// Messages are lowercase fragments without a trailing period.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A configuration that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A Redis tier was configured but the cache was created outside a tokio runtime.
    #[error("no tokio runtime: a cache with a redis tier must be created inside one")]
    NoRuntime,
    /// A key or value could not be serialized with the configured codec.
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// "key" or "value".
        what: &'static str,
        /// The codec's error, rendered.
        message: String,
    },
    /// Bytes could not be deserialized with the configured codec.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// "key" or "value".
        what: &'static str,
        /// The codec's error, rendered.
        message: String,
    },
    /// A file operation of the disk tier failed.
    #[error("{operation} failed for {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "create cache directory".
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another cache (in this or another process) has the disk directory open.
    #[error("disk cache {} is in use by another cache", path.display())]
    DiskInUse {
        /// The directory.
        path: PathBuf,
    },
    /// A Redis command failed.
    #[error("redis {operation} failed: {source}")]
    Redis {
        /// What was being done, e.g. "invalidate".
        operation: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// A Redis command did not answer in time.
    #[error("redis {operation} timed out after {timeout:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The configured limit.
        timeout: Duration,
    },
    /// Redis is marked down after repeated failures and is not being tried right now.
    #[error("redis is unavailable: {operation} skipped until the next retry")]
    RedisUnavailable {
        /// What was skipped.
        operation: &'static str,
    },
    /// The cache did not connect to Redis and subscribe in time (see `MultiLevelCache::ready`).
    #[error("redis tier not ready after {0:?}")]
    NotReady(Duration),
}

impl CacheError {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_fragments() {
        let e = CacheError::io(
            "read entry",
            "/tmp/x.entry",
            io::Error::from(io::ErrorKind::NotFound),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("read entry failed for /tmp/x.entry"),
            "{text}"
        );
        assert!(!text.ends_with('.'));
        let e = CacheError::Timeout {
            operation: "get",
            timeout: Duration::from_millis(50),
        };
        assert_eq!(e.to_string(), "redis get timed out after 50ms");
    }
}
