//! The one error type of the crate: every failure of the pools and of the virtual memory manager.

use std::io;
use std::path::PathBuf;

use crate::vmm::MemoryPermissions;

/// Everything that can go wrong in [`crate::pool`] and [`crate::vmm`].
///
/// Messages are lowercase fragments without a trailing period; OS failures name the
/// operation and, where there is one, the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// A memory budget (the manager's limit or the machine's available memory) cannot
    /// hold the request.
    #[error("memory budget exhausted: requested {requested} bytes, {available} bytes available")]
    Exhausted {
        /// Bytes asked for.
        requested: usize,
        /// Bytes the budget still had.
        available: usize,
    },
    /// The allocator could not provide a value of this capacity.
    #[error("allocation of a value with capacity {capacity} failed")]
    AllocationFailed {
        /// Capacity asked for, in the value's units.
        capacity: usize,
    },
    /// `allocate_exact` asked for more than the largest size class.
    #[error("size {size} is over the largest size class ({largest})")]
    SizeTooLarge {
        /// Capacity asked for.
        size: usize,
        /// The largest size class of the pool.
        largest: usize,
    },
    /// A size that makes no sense for the operation (zero, overflowing a page count).
    #[error("invalid size {size}: {reason}")]
    InvalidSize {
        /// The size given.
        size: usize,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A pool or manager configuration that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A lock was poisoned by a panic in another thread while it was held.
    #[error("{what} is poisoned: a thread panicked while holding its lock")]
    Poisoned {
        /// What the lock protects.
        what: &'static str,
    },
    /// No region of the manager has this id (never mapped, freed or evicted).
    #[error("unknown memory region `{id}`")]
    UnknownRegion {
        /// The id looked up.
        id: String,
    },
    /// A path that should exist does not.
    #[error("path not found: {}", path.display())]
    PathNotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// An OS call on a file or directory failed.
    #[error("{operation} failed for {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "mmap", "create swap file".
        operation: &'static str,
        /// The file or directory it was done on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An OS call that has no path (anonymous mmap, madvise, mprotect) failed.
    #[error("{operation} failed: {source}")]
    Os {
        /// The operation, e.g. "anonymous mmap of 4096 bytes".
        operation: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A region was read or written against its permissions.
    #[error("region `{id}` does not allow {access} access")]
    PermissionDenied {
        /// The region.
        id: String,
        /// "read" or "write".
        access: &'static str,
    },
    /// A permission combination the manager refuses to map.
    #[error("unsupported permissions {permissions}: {reason}")]
    UnsupportedPermissions {
        /// What was asked for.
        permissions: MemoryPermissions,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A read or write reaching past the end of a region.
    #[error(
        "access of {len} bytes at offset {offset} is out of bounds for region `{id}` of {size} bytes"
    )]
    OutOfBounds {
        /// The region.
        id: String,
        /// Start of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Size of the region.
        size: usize,
    },
    /// A swap-backed region was asked of a manager built without a swap directory.
    #[error("no swap directory configured")]
    NoSwapDir,
    /// `deallocate` was given a handle that another pool handed out.
    #[error("handle belongs to a different pool")]
    ForeignHandle,
    /// A handle no longer holds its value.
    #[error("handle no longer holds a value")]
    HandleReleased,
}

impl MemoryError {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            operation,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn os(operation: impl Into<String>, source: io::Error) -> Self {
        Self::Os {
            operation: operation.into(),
            source,
        }
    }

    pub(crate) fn unknown_region(id: &str) -> Self {
        Self::UnknownRegion { id: id.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_fragments_that_name_the_path() {
        let err = MemoryError::io(
            "mmap",
            "/tmp/x.bin",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        let text = err.to_string();
        assert!(text.starts_with("mmap failed for /tmp/x.bin"), "{text}");
        assert!(!text.ends_with('.'));
        let err = MemoryError::SizeTooLarge {
            size: 10,
            largest: 8,
        };
        assert_eq!(
            err.to_string(),
            "size 10 is over the largest size class (8)"
        );
        assert_eq!(
            MemoryError::unknown_region("anon-3").to_string(),
            "unknown memory region `anon-3`"
        );
    }
}
