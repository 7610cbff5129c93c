//! The download manager: fetches an archive from the registry, checks its SHA-256 against
//! the index, parses it under size limits and checks that it holds what was asked for.

use std::sync::atomic::{AtomicU64, Ordering};

use semver::Version;
use sha2::{Digest, Sha256};

use crate::error::DownloadError;
use crate::manifest::PluginId;
use crate::package::{PackageLimits, PluginPackage};
use crate::registry::{IndexEntry, PluginRegistry, position_of};

/// Download counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Archives that passed the integrity check.
    pub downloads: u64,
    /// Bytes of those archives.
    pub bytes: u64,
    /// Archives whose hash or contents did not match the index.
    pub integrity_failures: u64,
}

/// Downloads and verifies packages.
#[derive(Debug, Default)]
pub struct DownloadManager {
    limits: PackageLimits,
    downloads: AtomicU64,
    bytes: AtomicU64,
    integrity_failures: AtomicU64,
}

impl DownloadManager {
    /// A download manager applying `limits` to every archive.
    pub fn new(limits: PackageLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The limits.
    pub fn limits(&self) -> &PackageLimits {
        &self.limits
    }

    /// Downloads `id` `version` as listed in a fresh read of the index.
    pub async fn download(
        &self,
        registry: &PluginRegistry,
        id: &PluginId,
        version: &Version,
    ) -> Result<PluginPackage, DownloadError> {
        let index = registry.index().await?;
        let entry = &index[position_of(&index, id, version)?];
        if entry.yanked {
            return Err(DownloadError::Yanked {
                id: id.clone(),
                version: version.clone(),
            });
        }
        self.fetch(registry, entry).await
    }

    /// Downloads the archive of `entry` and verifies it.
    pub async fn fetch(
        &self,
        registry: &PluginRegistry,
        entry: &IndexEntry,
    ) -> Result<PluginPackage, DownloadError> {
        let bytes = registry.fetch_package(entry).await?;
        let result = self.verify(entry, &bytes);
        match &result {
            Ok(_) => {
                self.downloads.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.integrity_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    fn verify(&self, entry: &IndexEntry, bytes: &[u8]) -> Result<PluginPackage, DownloadError> {
        let actual = hex::encode(Sha256::digest(bytes));
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(DownloadError::IntegrityMismatch {
                id: entry.id.clone(),
                version: entry.version.clone(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
        let package = PluginPackage::from_archive(bytes, &self.limits)?;
        let m = package.manifest();
        if m.id != entry.id || m.version != entry.version {
            return Err(DownloadError::ManifestMismatch {
                id: entry.id.clone(),
                version: entry.version.clone(),
                found: format!("{} {}", m.id, m.version),
            });
        }
        Ok(package)
    }

    /// The counters.
    pub fn stats(&self) -> DownloadStats {
        DownloadStats {
            downloads: self.downloads.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            integrity_failures: self.integrity_failures.load(Ordering::Relaxed),
        }
    }
}
