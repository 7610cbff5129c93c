//! The virtual memory manager: anonymous and swap-file regions, workspace mapping, prefetch and eviction.
//!
//! # Design
//!
//! The manager owns every mapping it makes, in a map from region id to entry; callers
//! get [`MemoryRegion`] descriptors and reach the bytes through the manager
//! ([`read_at`](VirtualMemoryManager::read_at), [`write_at`](VirtualMemoryManager::write_at),
//! [`with_region_bytes`](VirtualMemoryManager::with_region_bytes),
//! [`with_region_bytes_mut`](VirtualMemoryManager::with_region_bytes_mut)), so no slice can
//! outlive its mapping. Each entry has its own `RwLock`: reads of a region share it, a
//! write or an eviction takes it alone. Anonymous and swap regions use memmap2's
//! anonymous and shared file mappings; `r--` and `r-x` are made with `mprotect` through
//! memmap2's `make_read_only` / `make_exec`.
//!
//! ## Accounting
//!
//! *Held* bytes are the sizes of anonymous regions plus resident swap regions: memory
//! the manager has committed to. [`available_memory`](VirtualMemoryManager::available_memory)
//! is the OS's available memory minus held bytes; this is conservative (pages of a
//! region the program has already touched are counted by the OS and by the manager),
//! which is the safe side for deciding whether to allocate more. Read-only file
//! mappings are tracked separately as resident file bytes: the kernel can reclaim
//! their clean pages at any time, so they do not reduce what is available.
//!
//! ## Eviction
//!
//! [`evict_region`](VirtualMemoryManager::evict_region) gives a region's pages back to
//! the OS. File and swap regions keep their contents (swap regions are flushed first,
//! then `MADV_DONTNEED` drops the pages; the next access reads them back from the
//! file) and stay registered. Anonymous regions have nowhere to keep their contents,
//! so evicting one unmaps it and forgets its id.

mod region;
mod sys;
mod workspace;

use std::collections::HashMap;
use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use memmap2::{MmapMut, MmapOptions};
pub use region::{BackingStore, MemoryPermissions, MemoryRegion};
use region::{Mapping, RegionEntry};
pub use workspace::{MappedFile, UnreadableFile, WorkspaceMapping};

use crate::error::MemoryError;

/// Builder of a [`VirtualMemoryManager`], from [`VirtualMemoryManager::builder`].
#[derive(Debug, Clone, Default)]
pub struct VmmBuilder {
    swap_dir: Option<PathBuf>,
    memory_limit: Option<usize>,
}

impl VmmBuilder {
    /// Directory for the files of swap-backed regions (created if missing).
    pub fn swap_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.swap_dir = Some(dir.into());
        self
    }

    /// Upper bound on held bytes (anonymous plus resident swap regions).
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Builds the manager.
    ///
    /// # Errors
    /// [`MemoryError::Io`] if the swap directory cannot be created, or exists and is
    /// not a directory.
    pub fn build(self) -> Result<VirtualMemoryManager, MemoryError> {
        if let Some(dir) = &self.swap_dir {
            std::fs::create_dir_all(dir)
                .map_err(|err| MemoryError::io("create swap directory", dir, err))?;
        }
        Ok(VirtualMemoryManager::with_parts(
            self.swap_dir,
            self.memory_limit,
        ))
    }
}

/// A snapshot of a manager's accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmmStats {
    /// Regions registered (of every kind, resident or evicted).
    pub regions: usize,
    /// Bytes of anonymous regions and resident swap regions.
    pub held_bytes: usize,
    /// Bytes of file regions whose pages were not evicted since they were last used.
    pub resident_file_bytes: usize,
    /// Successful `evict_region` calls.
    pub evictions: u64,
    /// Successful `prefetch_region` calls.
    pub prefetches: u64,
}

/// Owner of memory-mapped regions: anonymous memory with chosen permissions, regions
/// backed by swap files, and read-only maps of a workspace's files.
/// See the [module documentation](self) for the design.
pub struct VirtualMemoryManager {
    regions: RwLock<HashMap<String, Arc<RegionEntry>>>,
    held_bytes: AtomicUsize,
    resident_file_bytes: AtomicUsize,
    swap_dir: Option<PathBuf>,
    memory_limit: Option<usize>,
    next_id: AtomicU64,
    page_size: usize,
    evictions: AtomicU64,
    prefetches: AtomicU64,
}

impl VirtualMemoryManager {
    /// A manager without swap directory or memory limit.
    pub fn new() -> Self {
        Self::with_parts(None, None)
    }

    /// A builder (swap directory, memory limit).
    pub fn builder() -> VmmBuilder {
        VmmBuilder::default()
    }

    /// The machine's available memory as the OS reports it (`MemAvailable` on Linux),
    /// minus the bytes this manager holds. See the module docs for what "held" means.
    pub fn available_memory(&self) -> usize {
        self.available_from(sys::os_available_memory())
    }

    /// The page size regions are rounded to.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The swap directory, if one was configured.
    pub fn swap_dir(&self) -> Option<&Path> {
        self.swap_dir.as_deref()
    }

    /// Maps `size` bytes (rounded up to whole pages) of zero-filled anonymous memory with
    /// the given permissions.
    ///
    /// # Errors
    /// [`MemoryError::InvalidSize`] for 0 or a size that overflows when rounded;
    /// [`MemoryError::UnsupportedPermissions`] for permissions without read, or with
    /// write and execute together; [`MemoryError::Exhausted`] over the available memory
    /// or the manager's limit; [`MemoryError::Os`] if `mmap`/`mprotect` fail.
    pub fn allocate_region(
        &self,
        size: usize,
        permissions: MemoryPermissions,
    ) -> Result<MemoryRegion, MemoryError> {
        let size = self.checked_region_size(size, permissions)?;
        let reservation = self.reserve(size)?;
        let map = MmapOptions::new()
            .len(size)
            .map_anon()
            .map_err(|err| MemoryError::os(format!("anonymous mmap of {size} bytes"), err))?;
        let mapping = protect(map, permissions)
            .map_err(|err| MemoryError::os(format!("mprotect to {permissions}"), err))?;
        let id = self.next_id("anon");
        let region = self.register(id, mapping, permissions, BackingStore::Anonymous);
        reservation.commit();
        Ok(region)
    }

    /// Like [`allocate_region`](Self::allocate_region), but backed by a new file in the
    /// swap directory, mapped shared: under memory pressure (or on
    /// [`evict_region`](Self::evict_region)) its pages go to the file instead of being
    /// lost, and come back on access. The file is removed when the region is freed or
    /// the manager is dropped.
    ///
    /// # Errors
    /// [`MemoryError::NoSwapDir`] without a swap directory; [`MemoryError::Io`] naming the
    /// file if it cannot be created, sized or mapped; otherwise as `allocate_region`.
    pub fn allocate_swap_region(
        &self,
        size: usize,
        permissions: MemoryPermissions,
    ) -> Result<MemoryRegion, MemoryError> {
        let dir = self.swap_dir.as_ref().ok_or(MemoryError::NoSwapDir)?;
        let size = self.checked_region_size(size, permissions)?;
        let reservation = self.reserve(size)?;
        let id = self.next_id("swap");
        let path = dir.join(format!("rust-ai-ide-vmm-{}-{id}.swap", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|err| MemoryError::io("create swap file", &path, err))?;
        let remove_on_error = |err| {
            let _ = std::fs::remove_file(&path);
            err
        };
        file.set_len(size as u64)
            .map_err(|err| remove_on_error(MemoryError::io("size swap file", &path, err)))?;
        // SAFETY: the file was just created by this process (`create_new`) in the
        // manager's swap directory and is only written through this mapping. Another
        // process truncating it would be outside the manager's contract (as with any
        // mmap, such access would fault).
        let map = unsafe { MmapOptions::new().len(size).map_mut(&file) }
            .map_err(|err| remove_on_error(MemoryError::io("mmap swap file", &path, err)))?;
        let mapping = protect(map, permissions)
            .map_err(|err| remove_on_error(MemoryError::io("mprotect swap file", &path, err)))?;
        let region = self.register(id, mapping, permissions, BackingStore::SwapFile { path });
        reservation.commit();
        Ok(region)
    }

    /// Walks `workspace_path` honouring `.gitignore`, `.ignore` and `.git/info/exclude`
    /// (inside or outside a git repository; hidden files are included, `.git` is not) and
    /// maps every regular file read-only. Empty files, unreadable files and entries that
    /// are not regular files are reported in the mapping, not errors.
    ///
    /// # Errors
    /// [`MemoryError::PathNotFound`] if the path does not exist; [`MemoryError::Io`] if it
    /// cannot be inspected.
    pub fn map_workspace_to_disk(
        &self,
        workspace_path: &Path,
    ) -> Result<WorkspaceMapping, MemoryError> {
        workspace::map_workspace(self, workspace_path)
    }

    /// Asks the OS to read a region's pages in ahead of use (`MADV_WILLNEED`) and counts
    /// the region as resident again if it was evicted.
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`] if the region is not (or no longer) held by this
    /// manager, including a stale descriptor whose address no longer matches;
    /// [`MemoryError::Os`] if `madvise` fails.
    pub fn prefetch_region(&self, region: &MemoryRegion) -> Result<(), MemoryError> {
        let entry = self.entry(&region.id)?;
        if entry.region.start_address != region.start_address {
            return Err(MemoryError::unknown_region(&region.id));
        }
        read_lock(&entry.mapping, REGION)?
            .will_need()
            .map_err(|err| {
                MemoryError::os(
                    format!("madvise(MADV_WILLNEED) on region `{}`", region.id),
                    err,
                )
            })?;
        self.mark_resident(&entry);
        self.prefetches.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Gives a region's pages back to the OS. File and swap regions keep their contents
    /// (swap regions are flushed to their file first) and their id; anonymous regions
    /// are unmapped and their id forgotten. Held bytes drop by the region's size.
    ///
    /// Do not call it from inside `with_region_bytes*` on the same region: it waits for
    /// that region's lock.
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`] for an unknown id; [`MemoryError::Io`] if flushing
    /// or `madvise` fails; [`MemoryError::Poisoned`] if a writer panicked.
    pub fn evict_region(&self, region_id: &str) -> Result<(), MemoryError> {
        let entry = self.entry(region_id)?;
        match &entry.region.backing_store {
            BackingStore::Anonymous => {
                self.remove(region_id)?;
            }
            BackingStore::File { path } | BackingStore::SwapFile { path } => {
                let mut mapping = entry.mapping.write().map_err(|_| poisoned_region())?;
                mapping
                    .flush()
                    .map_err(|err| MemoryError::io("msync", path, err))?;
                mapping
                    .drop_file_pages()
                    .map_err(|err| MemoryError::io("madvise(MADV_DONTNEED)", path, err))?;
                drop(mapping);
                self.mark_evicted(&entry);
            }
        }
        self.evictions.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Unmaps a region of any kind and forgets its id (a swap region's file is removed).
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`] for an unknown id.
    pub fn free_region(&self, region_id: &str) -> Result<(), MemoryError> {
        self.remove(region_id)
    }

    /// Frees every region of a workspace mapping that is still held; returns how many.
    ///
    /// # Errors
    /// [`MemoryError::Poisoned`] if the region table is poisoned.
    pub fn unmap_workspace(&self, mapping: &WorkspaceMapping) -> Result<usize, MemoryError> {
        let mut regions = self.regions.write().map_err(|_| poisoned_table())?;
        let mut removed = Vec::with_capacity(mapping.files.len());
        for file in &mapping.files {
            if let Some(entry) = regions.remove(&file.region.id) {
                removed.push(entry);
            }
        }
        drop(regions);
        for entry in &removed {
            self.mark_evicted(entry);
        }
        Ok(removed.len())
    }

    /// Writes a swap region's dirty pages to its file (`msync`); a no-op for other kinds.
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`], or [`MemoryError::Io`] naming the file.
    pub fn flush_region(&self, region_id: &str) -> Result<(), MemoryError> {
        let entry = self.entry(region_id)?;
        if let BackingStore::SwapFile { path } = &entry.region.backing_store {
            read_lock(&entry.mapping, REGION)?
                .flush()
                .map_err(|err| MemoryError::io("msync", path, err))?;
        }
        Ok(())
    }

    /// Copies bytes of a region from `offset` into `buf`, like `pread`: returns how many
    /// were copied, fewer than `buf.len()` at the end of the region and 0 at or past it.
    /// No allocation; one lookup and one shared lock per call.
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`], [`MemoryError::Poisoned`].
    pub fn read_at(
        &self,
        region_id: &str,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<usize, MemoryError> {
        let regions = read_lock(&self.regions, TABLE)?;
        let entry = regions
            .get(region_id)
            .ok_or_else(|| MemoryError::unknown_region(region_id))?;
        let mapping = read_lock(&entry.mapping, REGION)?;
        let bytes = mapping.bytes();
        let Some(available) = bytes.len().checked_sub(offset) else {
            return Ok(0);
        };
        let n = available.min(buf.len());
        buf[..n].copy_from_slice(&bytes[offset..offset + n]);
        drop(mapping);
        self.mark_resident(entry);
        Ok(n)
    }

    /// Copies `data` into a writable region at `offset`.
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`]; [`MemoryError::PermissionDenied`] if the region is
    /// not writable; [`MemoryError::OutOfBounds`] if the write passes the region's end.
    pub fn write_at(&self, region_id: &str, offset: usize, data: &[u8]) -> Result<(), MemoryError> {
        self.with_region_bytes_mut(region_id, |bytes| {
            let end = offset
                .checked_add(data.len())
                .filter(|&end| end <= bytes.len())
                .ok_or_else(|| MemoryError::OutOfBounds {
                    id: region_id.to_owned(),
                    offset,
                    len: data.len(),
                    size: bytes.len(),
                })?;
            bytes[offset..end].copy_from_slice(data);
            Ok(())
        })?
    }

    /// Runs `f` on a region's bytes, under the region's shared lock (other readers go on;
    /// writers and evictions of this region wait).
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`], [`MemoryError::Poisoned`].
    pub fn with_region_bytes<R>(
        &self,
        region_id: &str,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, MemoryError> {
        let entry = self.entry(region_id)?;
        let result = f(read_lock(&entry.mapping, REGION)?.bytes());
        self.mark_resident(&entry);
        Ok(result)
    }

    /// Runs `f` on a writable region's bytes, under the region's exclusive lock. A panic
    /// in `f` poisons the region: later accesses to it return [`MemoryError::Poisoned`].
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`]; [`MemoryError::PermissionDenied`] if the region is
    /// not writable; [`MemoryError::Poisoned`].
    pub fn with_region_bytes_mut<R>(
        &self,
        region_id: &str,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, MemoryError> {
        let entry = self.entry(region_id)?;
        let mut mapping = entry.mapping.write().map_err(|_| poisoned_region())?;
        let bytes = mapping
            .bytes_mut()
            .ok_or_else(|| MemoryError::PermissionDenied {
                id: region_id.to_owned(),
                access: "write",
            })?;
        let result = f(bytes);
        drop(mapping);
        self.mark_resident(&entry);
        Ok(result)
    }

    /// The descriptor of a held region.
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`].
    pub fn region(&self, region_id: &str) -> Result<MemoryRegion, MemoryError> {
        Ok(self.entry(region_id)?.region.clone())
    }

    /// Whether a region is counted as resident (not evicted since its last use).
    ///
    /// # Errors
    /// [`MemoryError::UnknownRegion`].
    pub fn is_resident(&self, region_id: &str) -> Result<bool, MemoryError> {
        Ok(self.entry(region_id)?.resident.load(Relaxed))
    }

    /// Descriptors of every held region, sorted by id.
    pub fn regions(&self) -> Vec<MemoryRegion> {
        let mut regions: Vec<MemoryRegion> = read_lock(&self.regions, TABLE)
            .map(|map| map.values().map(|entry| entry.region.clone()).collect())
            .unwrap_or_default();
        regions.sort_by(|a, b| a.id.cmp(&b.id));
        regions
    }

    /// A snapshot of the accounting.
    pub fn stats(&self) -> VmmStats {
        VmmStats {
            regions: read_lock(&self.regions, TABLE).map_or(0, |map| map.len()),
            held_bytes: self.held_bytes.load(Relaxed),
            resident_file_bytes: self.resident_file_bytes.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            prefetches: self.prefetches.load(Relaxed),
        }
    }

    fn with_parts(swap_dir: Option<PathBuf>, memory_limit: Option<usize>) -> Self {
        Self {
            regions: RwLock::new(HashMap::new()),
            held_bytes: AtomicUsize::new(0),
            resident_file_bytes: AtomicUsize::new(0),
            swap_dir,
            memory_limit,
            next_id: AtomicU64::new(1),
            page_size: sys::page_size(),
            evictions: AtomicU64::new(0),
            prefetches: AtomicU64::new(0),
        }
    }

    /// `os_available` less the held bytes.
    fn available_from(&self, os_available: usize) -> usize {
        os_available.saturating_sub(self.held_bytes.load(Relaxed))
    }

    /// Validates permissions and rounds `size` to pages.
    fn checked_region_size(
        &self,
        size: usize,
        permissions: MemoryPermissions,
    ) -> Result<usize, MemoryError> {
        if !permissions.read {
            return Err(MemoryError::UnsupportedPermissions {
                permissions,
                reason: "regions must be readable",
            });
        }
        if permissions.write && permissions.execute {
            return Err(MemoryError::UnsupportedPermissions {
                permissions,
                reason: "write and execute together are refused (W^X)",
            });
        }
        if size == 0 {
            return Err(MemoryError::InvalidSize {
                size,
                reason: "a region must have at least one byte",
            });
        }
        sys::round_to_pages(size, self.page_size).ok_or(MemoryError::InvalidSize {
            size,
            reason: "overflows when rounded up to whole pages",
        })
    }

    /// Reserves `size` held bytes against the OS's available memory and the limit.
    fn reserve(&self, size: usize) -> Result<Reservation<'_>, MemoryError> {
        let available = self.available_memory();
        if size > available {
            return Err(MemoryError::Exhausted {
                requested: size,
                available,
            });
        }
        let before = self.held_bytes.fetch_add(size, Relaxed);
        if let Some(limit) = self.memory_limit
            && before.saturating_add(size) > limit
        {
            self.held_bytes.fetch_sub(size, Relaxed);
            return Err(MemoryError::Exhausted {
                requested: size,
                available: limit.saturating_sub(before),
            });
        }
        Ok(Reservation {
            held: &self.held_bytes,
            size,
            committed: false,
        })
    }

    fn next_id(&self, kind: &str) -> String {
        format!("{kind}-{}", self.next_id.fetch_add(1, Relaxed))
    }

    /// Adds a new, resident region to the table and returns its descriptor.
    fn register(
        &self,
        id: String,
        mapping: Mapping,
        permissions: MemoryPermissions,
        backing_store: BackingStore,
    ) -> MemoryRegion {
        let region = MemoryRegion {
            id,
            start_address: mapping.bytes().as_ptr() as usize,
            size: mapping.bytes().len(),
            permissions,
            backing_store,
        };
        let entry = Arc::new(RegionEntry {
            region: region.clone(),
            mapping: RwLock::new(mapping),
            resident: AtomicBool::new(true),
        });
        if let BackingStore::File { .. } = region.backing_store {
            self.resident_file_bytes.fetch_add(region.size, Relaxed);
        }
        // A poisoned table still holds whole entries (every update is a single insert or
        // remove), so it is used as is rather than leaking the new mapping.
        self.regions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(region.id.clone(), entry);
        region
    }

    fn entry(&self, region_id: &str) -> Result<Arc<RegionEntry>, MemoryError> {
        read_lock(&self.regions, TABLE)?
            .get(region_id)
            .cloned()
            .ok_or_else(|| MemoryError::unknown_region(region_id))
    }

    fn remove(&self, region_id: &str) -> Result<(), MemoryError> {
        let entry = self
            .regions
            .write()
            .map_err(|_| poisoned_table())?
            .remove(region_id)
            .ok_or_else(|| MemoryError::unknown_region(region_id))?;
        self.mark_evicted(&entry);
        // The mapping is unmapped when the last `Arc` (this one, or a reader's) goes.
        Ok(())
    }

    fn mark_resident(&self, entry: &RegionEntry) {
        if !entry.resident.load(Relaxed) && !entry.resident.swap(true, Relaxed) {
            self.account(entry, true);
        }
    }

    fn mark_evicted(&self, entry: &RegionEntry) {
        if entry.resident.swap(false, Relaxed) {
            self.account(entry, false);
        }
    }

    fn account(&self, entry: &RegionEntry, add: bool) {
        let counter = match entry.region.backing_store {
            BackingStore::File { .. } => &self.resident_file_bytes,
            BackingStore::Anonymous | BackingStore::SwapFile { .. } => &self.held_bytes,
        };
        if add {
            counter.fetch_add(entry.region.size, Relaxed);
        } else {
            counter.fetch_sub(entry.region.size, Relaxed);
        }
    }
}

impl Default for VirtualMemoryManager {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for VirtualMemoryManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualMemoryManager")
            .field("swap_dir", &self.swap_dir)
            .field("memory_limit", &self.memory_limit)
            .field("page_size", &self.page_size)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Held bytes reserved for a region being made; given back unless committed.
struct Reservation<'a> {
    held: &'a AtomicUsize,
    size: usize,
    committed: bool,
}

impl Reservation<'_> {
    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.held.fetch_sub(self.size, Relaxed);
        }
    }
}

/// Applies `permissions` (already validated: readable, not writable and executable).
fn protect(map: MmapMut, permissions: MemoryPermissions) -> std::io::Result<Mapping> {
    Ok(if permissions.write {
        Mapping::ReadWrite(map)
    } else if permissions.execute {
        Mapping::ReadOnly(map.make_exec()?)
    } else {
        Mapping::ReadOnly(map.make_read_only()?)
    })
}

const REGION: &str = "memory region";
const TABLE: &str = "region table";

fn read_lock<'a, T>(
    lock: &'a RwLock<T>,
    what: &'static str,
) -> Result<RwLockReadGuard<'a, T>, MemoryError> {
    lock.read().map_err(|_| MemoryError::Poisoned { what })
}

fn poisoned_region() -> MemoryError {
    MemoryError::Poisoned { what: REGION }
}

fn poisoned_table() -> MemoryError {
    MemoryError::Poisoned { what: TABLE }
}

#[cfg(test)]
mod tests;
