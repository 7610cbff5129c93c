//! Region descriptors: `MemoryRegion`, `MemoryPermissions`, `BackingStore`, and the mapping a region owns.

use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::AtomicBool;

use memmap2::{Advice, Mmap, MmapMut, UncheckedAdvice};

/// A region of virtual memory held by a [`VirtualMemoryManager`](super::VirtualMemoryManager).
///
/// This is a descriptor: the memory stays owned by the manager, which keeps the mapping
/// under [`id`](MemoryRegion::id) until the region is freed (or, for anonymous memory,
/// evicted). Read and write it through the manager (`read_at`, `with_region_bytes`, ..).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryRegion {
    /// The manager's key for the region: `anon-N`, `swap-N` or `file-N`.
    pub id: String,
    /// Address of the first byte of the mapping in this process.
    pub start_address: usize,
    /// Bytes accessible: the requested size rounded up to pages for anonymous and swap
    /// regions, the file's length for file regions.
    pub size: usize,
    /// Protection of the mapping.
    pub permissions: MemoryPermissions,
    /// What backs the pages.
    pub backing_store: BackingStore,
}

/// Page protection of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemoryPermissions {
    /// Pages can be read.
    pub read: bool,
    /// Pages can be written.
    pub write: bool,
    /// Pages can be executed.
    pub execute: bool,
}

impl MemoryPermissions {
    /// `r--`
    pub const READ_ONLY: Self = Self::new(true, false, false);
    /// `rw-`
    pub const READ_WRITE: Self = Self::new(true, true, false);
    /// `r-x`
    pub const READ_EXECUTE: Self = Self::new(true, false, true);

    /// Permissions from the three flags.
    pub const fn new(read: bool, write: bool, execute: bool) -> Self {
        Self {
            read,
            write,
            execute,
        }
    }
}

impl fmt::Display for MemoryPermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |on: bool, c: char| if on { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            flag(self.read, 'r'),
            flag(self.write, 'w'),
            flag(self.execute, 'x')
        )
    }
}

/// What backs a region's pages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackingStore {
    /// Anonymous memory: zero-filled, lost when the region goes.
    Anonymous,
    /// A file mapped read-only (workspace mapping); pages are re-read from it on demand.
    File {
        /// The mapped file.
        path: PathBuf,
    },
    /// A file in the manager's swap directory, mapped shared, so that pages written to
    /// the region can leave memory and come back from the file; removed with the region.
    SwapFile {
        /// The swap file.
        path: PathBuf,
    },
}

/// A region and the mapping that holds its memory.
pub(crate) struct RegionEntry {
    pub(crate) region: MemoryRegion,
    pub(crate) mapping: RwLock<Mapping>,
    /// Whether the region's size is counted as resident in the manager's accounting.
    pub(crate) resident: AtomicBool,
}

impl Drop for RegionEntry {
    fn drop(&mut self) {
        if let BackingStore::SwapFile { path } = &self.region.backing_store {
            // Best effort: the mapping stays valid without the directory entry, and a
            // leftover file in the swap directory is harmless.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The owned mapping of a region.
pub(crate) enum Mapping {
    /// `r--` or `r-x`.
    ReadOnly(Mmap),
    /// `rw-`.
    ReadWrite(MmapMut),
}

impl Mapping {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Mapping::ReadOnly(map) => map,
            Mapping::ReadWrite(map) => map,
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Mapping::ReadOnly(_) => None,
            Mapping::ReadWrite(map) => Some(map),
        }
    }

    pub(crate) fn will_need(&self) -> std::io::Result<()> {
        match self {
            Mapping::ReadOnly(map) => map.advise(Advice::WillNeed),
            Mapping::ReadWrite(map) => map.advise(Advice::WillNeed),
        }
    }

    /// Writes dirty pages of a shared file mapping back to the file.
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        match self {
            Mapping::ReadOnly(_) => Ok(()),
            Mapping::ReadWrite(map) => map.flush(),
        }
    }

    /// Drops the pages of a *file-backed shared* mapping from this process (MADV_DONTNEED).
    ///
    /// Taking `&mut self` means no slice of the mapping is borrowed while the pages go.
    /// The caller must only call this for mappings of files (`BackingStore::File` or
    /// `SwapFile`), where the next access reads the pages back from the page cache or
    /// the file, so the contents do not change.
    pub(crate) fn drop_file_pages(&mut self) -> std::io::Result<()> {
        match self {
            // SAFETY: `&mut self` proves no borrow of the bytes exists, and the caller
            // guarantees a MAP_SHARED file mapping, for which MADV_DONTNEED keeps the
            // contents (they come back from the page cache or the file on access).
            Mapping::ReadOnly(map) => unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) },
            // SAFETY: as above.
            Mapping::ReadWrite(map) => unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) },
        }
    }
}
