//! The plugin registry: an index of published versions (`index.json`) and their package
//! archives, in a local directory (the default) or behind an HTTP server with the same layout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{IoFailure, RegistryError};
use crate::manifest::{CompatibilityRequirements, PluginId};
use crate::package::PluginPackage;
use crate::scanner::{SecurityRating, SecurityScanner};

/// The index file name, at the registry root.
pub const INDEX_FILE: &str = "index.json";
/// Version of the index format this crate writes and reads.
const INDEX_FORMAT: u32 = 1;
/// Largest index accepted.
const MAX_INDEX_BYTES: u64 = 32 << 20;

/// One published version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Plugin id.
    pub id: PluginId,
    /// Version.
    pub version: Version,
    /// Display name.
    pub name: String,
    /// Publisher.
    pub author: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Host requirements.
    pub compatibility: CompatibilityRequirements,
    /// SHA-256 of the archive, hex.
    pub sha256: String,
    /// Archive size in bytes.
    pub size: u64,
    /// Withdrawn by the publisher: never chosen by resolution, not downloadable.
    pub yanked: bool,
    /// The publisher's scan result (a hint for search; installs scan again).
    pub security_rating: SecurityRating,
    /// The archive's path relative to the registry root.
    pub path: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    format: u32,
    plugins: Vec<IndexEntry>,
}

/// Where a registry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrySource {
    /// A local directory holding `index.json` and `packages/`.
    Local(PathBuf),
    /// An `http://` base URL serving the same layout.
    Remote(String),
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A registry client: reads (and, when local, writes) the index and the archives.
pub struct PluginRegistry {
    source: RegistrySource,
    http: Option<HttpClient>,
    timeout: Duration,
    max_package_bytes: u64,
    cached: RwLock<Option<Arc<Vec<IndexEntry>>>>,
    publish_lock: Mutex<()>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl PluginRegistry {
    /// A registry over `source`; a local directory is created with an empty index if absent.
    /// `max_package_bytes` bounds every archive (and HTTP body) read.
    pub fn new(source: RegistrySource, max_package_bytes: u64) -> Result<Self, RegistryError> {
        let http = match &source {
            RegistrySource::Local(dir) => {
                let index = dir.join(INDEX_FILE);
                if !index.exists() {
                    std::fs::create_dir_all(dir)
                        .map_err(IoFailure::at("create registry directory", dir))?;
                    write_index(dir, &[])?;
                }
                None
            }
            RegistrySource::Remote(url) => {
                if !url.starts_with("http://") || url.parse::<hyper::Uri>().is_err() {
                    return Err(RegistryError::Url(url.clone()));
                }
                Some(Client::builder(TokioExecutor::new()).build_http())
            }
        };
        Ok(Self {
            source,
            http,
            timeout: Duration::from_secs(30),
            max_package_bytes,
            cached: RwLock::new(None),
            publish_lock: Mutex::new(()),
        })
    }

    /// A local registry in `dir`.
    pub fn local(dir: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        Self::new(RegistrySource::Local(dir.into()), 16 << 20)
    }

    /// A remote registry at `base_url` (`http://host:port/prefix`).
    pub fn remote(base_url: impl Into<String>) -> Result<Self, RegistryError> {
        Self::new(RegistrySource::Remote(base_url.into()), 16 << 20)
    }

    /// Where the registry lives.
    pub fn source(&self) -> &RegistrySource {
        &self.source
    }

    /// Reads the index afresh (and caches it).
    pub async fn index(&self) -> Result<Arc<Vec<IndexEntry>>, RegistryError> {
        let bytes = self.read(INDEX_FILE, MAX_INDEX_BYTES).await?;
        let file: IndexFile = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Index {
            location: self.location(INDEX_FILE),
            message: e.to_string(),
        })?;
        if file.format != INDEX_FORMAT {
            return Err(RegistryError::Index {
                location: self.location(INDEX_FILE),
                message: format!("format {} (this host reads {INDEX_FORMAT})", file.format),
            });
        }
        let entries = Arc::new(file.plugins);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&entries));
        Ok(entries)
    }

    /// The last index read, or a fresh one if none was read yet.
    pub async fn cached_index(&self) -> Result<Arc<Vec<IndexEntry>>, RegistryError> {
        let cached = self
            .cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match cached {
            Some(c) => Ok(c),
            None => self.index().await,
        }
    }

    /// `(plugins, versions, yanked versions)` of the cached index.
    pub(crate) fn cached_counts(&self) -> (usize, usize, usize) {
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().map_or((0, 0, 0), |c| {
            let ids: std::collections::BTreeSet<&PluginId> = c.iter().map(|e| &e.id).collect();
            (ids.len(), c.len(), c.iter().filter(|e| e.yanked).count())
        })
    }

    /// The archive bytes of `entry` (not yet verified).
    pub async fn fetch_package(&self, entry: &IndexEntry) -> Result<Vec<u8>, RegistryError> {
        self.read(&entry.path, self.max_package_bytes).await
    }

    /// Publishes `package` into a local registry, with the publisher-side scan result.
    /// Re-publishing an existing version is refused, as crates.io does.
    pub fn publish(
        &self,
        package: &PluginPackage,
        scanner: &SecurityScanner,
    ) -> Result<IndexEntry, RegistryError> {
        let dir = self.local_dir("publish")?;
        let _guard = self.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = read_local_index(dir)?;
        let m = package.manifest();
        if entries
            .iter()
            .any(|e| e.id == m.id && e.version == m.version)
        {
            return Err(RegistryError::Index {
                location: dir.join(INDEX_FILE).display().to_string(),
                message: format!("{} {} is already published", m.id, m.version),
            });
        }
        let archive = package.to_archive()?;
        let rel = format!("packages/{}/{}.tar", m.id, m.version);
        let path = dir.join(&rel);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .map_err(IoFailure::at("create package directory", parent))?;
        write_atomic(&path, &archive)?;
        let entry = IndexEntry {
            id: m.id.clone(),
            version: m.version.clone(),
            name: m.name.clone(),
            author: m.author.clone(),
            description: m.description.clone(),
            tags: m.tags.clone(),
            compatibility: m.compatibility.clone(),
            sha256: hex::encode(Sha256::digest(&archive)),
            size: archive.len() as u64,
            yanked: false,
            security_rating: scanner.scan(package),
            path: rel,
        };
        entries.push(entry.clone());
        write_index(dir, &entries)?;
        Ok(entry)
    }

    /// Marks `id` `version` yanked in a local registry.
    pub fn yank(&self, id: &PluginId, version: &Version) -> Result<(), RegistryError> {
        let dir = self.local_dir("yank")?;
        let _guard = self.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = read_local_index(dir)?;
        let at = position_of(&entries, id, version)?;
        entries[at].yanked = true;
        write_index(dir, &entries)
    }

    /// Rewrites one index entry of a local registry (tests use it to play a compromised
    /// registry; publishers to fix metadata).
    pub fn replace_entry(&self, entry: IndexEntry) -> Result<(), RegistryError> {
        let dir = self.local_dir("replace_entry")?;
        let _guard = self.publish_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = read_local_index(dir)?;
        let at = position_of(&entries, &entry.id, &entry.version)?;
        entries[at] = entry;
        write_index(dir, &entries)
    }

    fn local_dir(&self, what: &'static str) -> Result<&Path, RegistryError> {
        match &self.source {
            RegistrySource::Local(d) => Ok(d),
            RegistrySource::Remote(_) => Err(RegistryError::ReadOnly(what)),
        }
    }

    fn location(&self, rel: &str) -> String {
        match &self.source {
            RegistrySource::Local(d) => d.join(rel).display().to_string(),
            RegistrySource::Remote(u) => format!("{}/{rel}", u.trim_end_matches('/')),
        }
    }

    async fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
        if !is_safe_relative(rel) {
            return Err(RegistryError::Index {
                location: self.location(INDEX_FILE),
                message: format!("unsafe package path {rel:?}"),
            });
        }
        match (&self.source, &self.http) {
            (RegistrySource::Remote(_), Some(client)) => {
                let url = self.location(rel);
                tokio::time::timeout(self.timeout, http_get(client, &url, limit))
                    .await
                    .map_err(|_| RegistryError::Timeout {
                        url: url.clone(),
                        timeout: self.timeout,
                    })?
            }
            _ => {
                let path = PathBuf::from(self.location(rel));
                let len = std::fs::metadata(&path)
                    .map_err(IoFailure::at("read", &path))?
                    .len();
                if len > limit {
                    return Err(RegistryError::TooLarge {
                        url: path.display().to_string(),
                        limit,
                    });
                }
                Ok(std::fs::read(&path).map_err(IoFailure::at("read", &path))?)
            }
        }
    }
}

async fn http_get(client: &HttpClient, url: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
    let transport = |message: String| RegistryError::Transport {
        url: url.to_owned(),
        message,
    };
    let uri: hyper::Uri = url.parse().map_err(|e| transport(format!("{e}")))?;
    let resp = client
        .get(uri)
        .await
        .map_err(|e| transport(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(RegistryError::Http {
            url: url.to_owned(),
            status: resp.status().as_u16(),
        });
    }
    let body = Limited::new(
        resp.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .collect()
    .await
    .map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            RegistryError::TooLarge {
                url: url.to_owned(),
                limit,
            }
        } else {
            transport(e.to_string())
        }
    })?;
    Ok(body.to_bytes().to_vec())
}

/// A path of `[A-Za-z0-9._+/-]` with no empty, `.` or `..` component and no leading `/`:
/// joined to the registry root (directory or URL), it cannot leave it.
fn is_safe_relative(rel: &str) -> bool {
    !rel.is_empty()
        && rel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'/' | b'-'))
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Where `id` `version` is in `entries`, or `NotFound`.
pub(crate) fn position_of(
    entries: &[IndexEntry],
    id: &PluginId,
    version: &Version,
) -> Result<usize, RegistryError> {
    entries
        .iter()
        .position(|e| &e.id == id && &e.version == version)
        .ok_or_else(|| RegistryError::NotFound {
            id: id.clone(),
            version: version.clone(),
        })
}

fn read_local_index(dir: &Path) -> Result<Vec<IndexEntry>, RegistryError> {
    let path = dir.join(INDEX_FILE);
    let bytes = std::fs::read(&path).map_err(IoFailure::at("read", &path))?;
    let file: IndexFile = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Index {
        location: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(file.plugins)
}

fn write_index(dir: &Path, entries: &[IndexEntry]) -> Result<(), RegistryError> {
    let file = IndexFile {
        format: INDEX_FORMAT,
        plugins: entries.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| RegistryError::Index {
        location: dir.join(INDEX_FILE).display().to_string(),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join(INDEX_FILE), &json)
}

/// Temporary file in the same directory, fsync, rename: readers never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(IoFailure::at("create temporary file", dir))?;
    tmp.write_all(bytes).map_err(IoFailure::at("write", path))?;
    tmp.as_file()
        .sync_all()
        .map_err(IoFailure::at("fsync", path))?;
    tmp.persist(path)
        .map_err(|e| IoFailure::at("rename", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contained_relative_paths_are_safe() {
        assert!(is_safe_relative("packages/a/1.0.0.tar"));
        assert!(is_safe_relative("index.json"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a//b",
            "http://evil/x",
            "a\\b",
            "./a",
        ] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
    }

    #[test]
    fn remote_urls_must_be_http() {
        assert!(matches!(
            PluginRegistry::remote("ftp://x"),
            Err(RegistryError::Url(_))
        ));
        assert!(PluginRegistry::remote("http://127.0.0.1:1/reg").is_ok());
    }
}
