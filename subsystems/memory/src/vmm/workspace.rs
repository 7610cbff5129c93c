//! Mapping a workspace: walk it honouring ignore files and map each regular file read-only.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::region::Mapping;
use super::{BackingStore, MemoryPermissions, MemoryRegion, VirtualMemoryManager};
use crate::error::MemoryError;

/// The result of [`VirtualMemoryManager::map_workspace_to_disk`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceMapping {
    /// The workspace path as given.
    pub root: PathBuf,
    /// Mapped files, sorted by path, each with its read-only region.
    pub files: Vec<MappedFile>,
    /// Files of length 0 (nothing to map).
    pub empty_files: Vec<PathBuf>,
    /// Files and directories that could not be read or mapped, with the reason.
    pub unreadable: Vec<UnreadableFile>,
    /// Entries that are not regular files (symbolic links, sockets, FIFOs, devices).
    pub skipped: Vec<PathBuf>,
    /// Sum of the sizes of the mapped files.
    pub total_bytes: usize,
}

impl WorkspaceMapping {
    /// The mapped file at `path` (as the walk spelled it: `root` joined with the
    /// relative path).
    pub fn file(&self, path: &Path) -> Option<&MappedFile> {
        self.files.iter().find(|file| file.path == path)
    }

    /// Number of mapped files.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// One mapped file of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    /// The file.
    pub path: PathBuf,
    /// Its read-only region (`BackingStore::File`).
    pub region: MemoryRegion,
}

/// A workspace entry that could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableFile {
    /// The file or directory.
    pub path: PathBuf,
    /// The error, as text.
    pub reason: String,
}

pub(crate) fn map_workspace(
    vmm: &VirtualMemoryManager,
    root: &Path,
) -> Result<WorkspaceMapping, MemoryError> {
    match std::fs::symlink_metadata(root) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(MemoryError::PathNotFound {
                path: root.to_owned(),
            });
        }
        Err(err) => return Err(MemoryError::io("stat workspace", root, err)),
    }
    let mut mapping = WorkspaceMapping {
        root: root.to_owned(),
        ..WorkspaceMapping::default()
    };
    let walk = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    for item in walk {
        let entry = match item {
            Ok(entry) => entry,
            Err(err) => {
                mapping.unreadable.push(UnreadableFile {
                    path: error_path(&err).unwrap_or(root).to_owned(),
                    reason: err.to_string(),
                });
                continue;
            }
        };
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            continue;
        }
        let path = entry.into_path();
        if !file_type.is_file() {
            mapping.skipped.push(path);
            continue;
        }
        match map_file(&path) {
            Ok(Some(map)) => {
                let id = vmm.next_id("file");
                let region = vmm.register(
                    id,
                    Mapping::ReadOnly(map),
                    MemoryPermissions::READ_ONLY,
                    BackingStore::File { path: path.clone() },
                );
                mapping.total_bytes += region.size;
                mapping.files.push(MappedFile { path, region });
            }
            Ok(None) => mapping.empty_files.push(path),
            Err(err) => mapping.unreadable.push(UnreadableFile {
                reason: err.to_string(),
                path,
            }),
        }
    }
    Ok(mapping)
}

/// Maps a regular file read-only; `None` if it is empty.
fn map_file(path: &Path) -> Result<Option<Mmap>, MemoryError> {
    let file = File::open(path).map_err(|err| MemoryError::io("open", path, err))?;
    let len = file
        .metadata()
        .map_err(|err| MemoryError::io("stat", path, err))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the mapping is read-only and shared; the manager only exposes it through
    // copies and short-lived borrows under the region's lock. If another process
    // truncates the file while it is mapped, reads of the lost pages fault (SIGBUS):
    // the hazard every mmap-based reader (ripgrep, git) accepts for workspace files.
    let map = unsafe { Mmap::map(&file) }.map_err(|err| MemoryError::io("mmap", path, err))?;
    Ok(Some(map))
}

/// The path an `ignore` error is about, if it names one.
fn error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child),
        ignore::Error::Partial(errors) => errors.iter().find_map(error_path),
        _ => None,
    }
}
