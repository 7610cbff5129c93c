//! `PluginMarketplace`: search, download, install, update and uninstall of signed wasm
//! plugins, each verified (scan, resolve, compatibility, compile and a trial run) before it
//! replaces anything, and run in the wasmtime sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use semver::Version;

use crate::compat::CompatibilityChecker;
use crate::download::DownloadManager;
use crate::error::{
    DownloadError, InstallationError, MarketplaceError, PluginError, SearchError, UninstallError,
    UpdateError,
};
use crate::manifest::{Capability, PluginId, PluginManifest, PluginMetadata};
use crate::package::{PackageLimits, PluginPackage};
use crate::registry::{PluginRegistry, RegistrySource};
use crate::sandbox::{CompiledPlugin, PluginInstance, PluginRuntime, RuntimeConfig};
use crate::scanner::{SandboxLimits, SecurityPolicy, SecurityRating, SecurityScanner};
use crate::store::InstallStore;
use crate::version::VersionManager;

/// The host API version this crate implements.
pub const HOST_API_VERSION: Version = Version::new(1, 0, 0);

/// The text a `text_transform` plugin must transform without error during installation.
const TRIAL_TEXT: &str = "fn main() { println!(\"perflab\"); }";

/// How a marketplace is set up.
#[derive(Debug, Clone)]
pub struct MarketplaceConfig {
    /// Where installed plugins live.
    pub install_dir: PathBuf,
    /// The registry.
    pub registry: RegistrySource,
    /// The host API version offered to plugins.
    pub host_api_version: Version,
    /// Capabilities this host grants.
    pub capabilities: BTreeSet<Capability>,
    /// ed25519 public keys trusted to sign plugins.
    pub trusted_keys: Vec<[u8; 32]>,
    /// Resource ceilings for every plugin.
    pub limits: SandboxLimits,
    /// The sandbox.
    pub runtime: RuntimeConfig,
    /// Archive size limits.
    pub package_limits: PackageLimits,
    /// Per-plugin settings, over the manifest's defaults.
    pub plugin_settings: BTreeMap<PluginId, BTreeMap<String, String>>,
}

impl MarketplaceConfig {
    /// Defaults: host API [`HOST_API_VERSION`], every capability, no trusted key (add yours),
    /// default limits and runtime.
    pub fn new(install_dir: impl Into<PathBuf>, registry: RegistrySource) -> Self {
        Self {
            install_dir: install_dir.into(),
            registry,
            host_api_version: HOST_API_VERSION,
            capabilities: Capability::ALL.into_iter().collect(),
            trusted_keys: Vec::new(),
            limits: SandboxLimits::default(),
            runtime: RuntimeConfig::default(),
            package_limits: PackageLimits::default(),
            plugin_settings: BTreeMap::new(),
        }
    }
}

/// A search over the registry. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSearchQuery {
    /// Words that must all appear (case-insensitive) in the id, name, description or tags;
    /// hits in the id or name rank higher.
    pub text: Option<String>,
    /// A tag the plugin must have (case-insensitive).
    pub tag: Option<String>,
    /// The author (case-insensitive, exact).
    pub author: Option<String>,
    /// Only versions this host can run.
    pub compatible_only: bool,
    /// Also consider yanked versions.
    pub include_yanked: bool,
    /// At most this many results.
    pub limit: Option<usize>,
}

/// Time spent in each installation phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallTimings {
    /// Security scan (signature, module properties).
    pub verify: Duration,
    /// Registry lookup (yanked?) and version checks.
    pub resolve: Duration,
    /// Compatibility check.
    pub check: Duration,
    /// Compilation, linking and the trial run.
    pub compile: Duration,
    /// Writing to disk and switching over.
    pub commit: Duration,
}

impl InstallTimings {
    /// The sum of the phases.
    pub fn total(&self) -> Duration {
        self.verify + self.resolve + self.check + self.compile + self.commit
    }
}

/// What an installation did.
#[derive(Debug, Clone)]
pub struct InstallationResult {
    /// The installed plugin.
    pub metadata: PluginMetadata,
    /// Its directory.
    pub path: PathBuf,
    /// The version it replaced, if any.
    pub replaced: Option<Version>,
    /// Per-phase time.
    pub timings: InstallTimings,
}

/// What an update did.
#[derive(Debug, Clone)]
pub enum UpdateResult {
    /// A newer compatible version was installed.
    Updated {
        /// The old version.
        from: Version,
        /// The new version.
        to: Version,
        /// The installation of the new version (boxed: it is much larger than `UpToDate`).
        installation: Box<InstallationResult>,
    },
    /// No newer compatible, non-yanked version exists.
    UpToDate {
        /// The installed version.
        version: Version,
    },
}

/// Counters of the marketplace and figures of the registry's last index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Plugins installed now.
    pub installed: usize,
    /// Distinct plugins in the last index read.
    pub available_plugins: usize,
    /// Versions in the last index read.
    pub available_versions: usize,
    /// Yanked versions among them.
    pub yanked_versions: usize,
    /// Searches run.
    pub searches: u64,
    /// Verified downloads.
    pub downloads: u64,
    /// Bytes of verified downloads.
    pub downloaded_bytes: u64,
    /// Downloads that failed the integrity check.
    pub integrity_failures: u64,
    /// Successful installations (updates included).
    pub installs: u64,
    /// Successful updates.
    pub updates: u64,
    /// Updates that failed and kept the old version.
    pub failed_updates: u64,
    /// Installations refused (scan, compatibility, sandbox, yanked).
    pub rejected: u64,
    /// Uninstallations.
    pub uninstalls: u64,
    /// Installed plugins that failed to load when the marketplace opened.
    pub load_failures: usize,
}

/// An installed plugin, ready to run.
#[derive(Debug)]
pub struct InstalledPlugin {
    metadata: PluginMetadata,
    compiled: CompiledPlugin,
    path: PathBuf,
}

impl InstalledPlugin {
    /// Its metadata, with this host's security rating.
    pub fn metadata(&self) -> &PluginMetadata {
        &self.metadata
    }

    /// Its install directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs its `transform` on `text` in a fresh sandboxed instance.
    pub fn transform(&self, text: &str) -> Result<String, PluginError> {
        self.compiled.transform(text)
    }

    /// A live instance, for repeated calls.
    pub fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        self.compiled.instantiate()
    }
}

/// The plugin marketplace of the 2025 API document.
pub struct PluginMarketplace {
    plugin_registry: PluginRegistry,
    version_manager: VersionManager,
    security_scanner: SecurityScanner,
    compatibility_checker: CompatibilityChecker,
    download_manager: DownloadManager,
    runtime: PluginRuntime,
    store: InstallStore,
    settings: BTreeMap<PluginId, BTreeMap<String, String>>,
    installed: RwLock<BTreeMap<PluginId, Arc<InstalledPlugin>>>,
    /// Installs, updates and uninstalls run one at a time, so two never race on one plugin.
    ops: tokio::sync::Mutex<()>,
    load_failures: Vec<(PathBuf, String)>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    searches: AtomicU64,
    installs: AtomicU64,
    updates: AtomicU64,
    failed_updates: AtomicU64,
    rejected: AtomicU64,
    uninstalls: AtomicU64,
}

impl std::fmt::Debug for PluginMarketplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMarketplace")
            .field("registry", &self.plugin_registry)
            .field("stats", &self.registry_stats())
            .finish_non_exhaustive()
    }
}

/// A package that passed every check, compiled, not yet committed.
struct Prepared {
    package: PluginPackage,
    rating: SecurityRating,
    compiled: CompiledPlugin,
    timings: InstallTimings,
}

impl PluginMarketplace {
    /// Opens the marketplace: creates the sandbox, opens the registry and loads every
    /// installed plugin (each scanned and compiled again: nothing on disk is trusted). A
    /// plugin that fails to load is reported in [`Self::load_failures`] and left on disk.
    pub fn new(config: MarketplaceConfig) -> Result<Self, MarketplaceError> {
        if config.trusted_keys.is_empty() {
            return Err(MarketplaceError::Config(
                "no trusted keys: every plugin would be rejected".into(),
            ));
        }
        let runtime = PluginRuntime::new(config.runtime, config.limits)?;
        let plugin_registry = PluginRegistry::new(
            config.registry.clone(),
            config.package_limits.max_archive_bytes,
        )?;
        let store = InstallStore::open(config.install_dir.clone())?;
        let mut market = Self {
            plugin_registry,
            version_manager: VersionManager::new(),
            security_scanner: SecurityScanner::new(SecurityPolicy {
                trusted_keys: config.trusted_keys.clone(),
                limits: config.limits,
            }),
            compatibility_checker: CompatibilityChecker::new(
                config.host_api_version.clone(),
                config.capabilities.iter().copied(),
            ),
            download_manager: DownloadManager::new(config.package_limits),
            runtime,
            store,
            settings: config.plugin_settings,
            installed: RwLock::new(BTreeMap::new()),
            ops: tokio::sync::Mutex::new(()),
            load_failures: Vec::new(),
            counters: Counters::default(),
        };
        market.load_installed()?;
        Ok(market)
    }

    fn load_installed(&mut self) -> Result<(), MarketplaceError> {
        let loaded = self.store.load_all()?;
        let mut installed = BTreeMap::new();
        for item in loaded {
            let (package, path) = match item {
                Ok(x) => x,
                Err(failure) => {
                    tracing::warn!(path = %failure.0.display(), "installed plugin unreadable: {}", failure.1);
                    self.load_failures.push(failure);
                    continue;
                }
            };
            let id = package.manifest().id.clone();
            let settings = self.settings_for(package.manifest());
            match verify_and_compile(
                package,
                None,
                &self.security_scanner,
                &self.compatibility_checker,
                &self.runtime,
                settings,
                InstallTimings::default(),
            ) {
                Ok(p) => {
                    let metadata = PluginMetadata::from_manifest(p.package.manifest(), p.rating);
                    installed.insert(
                        id,
                        Arc::new(InstalledPlugin {
                            metadata,
                            compiled: p.compiled,
                            path,
                        }),
                    );
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "installed plugin failed verification: {e}");
                    self.load_failures.push((path, e.to_string()));
                }
            }
        }
        *self.installed.write().unwrap_or_else(|e| e.into_inner()) = installed;
        Ok(())
    }

    /// Searches the registry (a fresh index read); one result per plugin, its newest version
    /// that passes the filters, best matches first.
    pub async fn search_plugins(
        &self,
        query: PluginSearchQuery,
    ) -> Result<Vec<PluginMetadata>, SearchError> {
        self.counters.searches.fetch_add(1, Ordering::Relaxed);
        let index = self.plugin_registry.index().await?;
        let terms: Vec<String> = query
            .text
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let mut best: BTreeMap<&PluginId, (u32, &crate::registry::IndexEntry)> = BTreeMap::new();
        for e in index.iter() {
            if e.yanked && !query.include_yanked {
                continue;
            }
            if query.compatible_only && !self.compatibility_checker.is_compatible(&e.compatibility)
            {
                continue;
            }
            if let Some(tag) = &query.tag
                && !e.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
            {
                continue;
            }
            if let Some(author) = &query.author
                && !e.author.eq_ignore_ascii_case(author)
            {
                continue;
            }
            let Some(score) = text_score(e, &terms) else {
                continue;
            };
            let slot = best.entry(&e.id).or_insert((score, e));
            if e.version > slot.1.version {
                *slot = (score, e);
            }
        }
        let mut hits: Vec<(u32, &crate::registry::IndexEntry)> = best.into_values().collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        Ok(hits
            .into_iter()
            .take(query.limit.unwrap_or(usize::MAX))
            .map(|(_, e)| PluginMetadata {
                id: e.id.clone(),
                name: e.name.clone(),
                version: e.version.clone(),
                author: e.author.clone(),
                description: e.description.clone(),
                compatibility: e.compatibility.clone(),
                security_rating: e.security_rating.clone(),
                tags: e.tags.clone(),
            })
            .collect())
    }

    /// Downloads `plugin_id` `version`: the archive's SHA-256 must match the index and its
    /// manifest must name that plugin and version. Yanked versions are refused.
    pub async fn download_plugin(
        &self,
        plugin_id: &PluginId,
        version: &Version,
    ) -> Result<PluginPackage, DownloadError> {
        self.download_manager
            .download(&self.plugin_registry, plugin_id, version)
            .await
    }

    /// Installs `package`: verify (security scan), resolve (not yanked, not a downgrade or
    /// reinstall), check (compatibility), compile (plus a trial run), then commit atomically.
    /// A newer version of an installed plugin replaces the old one only once all of that
    /// succeeded; on any error nothing installed changes.
    pub async fn install_plugin(
        &self,
        package: PluginPackage,
    ) -> Result<InstallationResult, InstallationError> {
        let _ops = self.ops.lock().await;
        let result = self.install_locked(package).await;
        if let Err(e) = &result
            && is_rejection(e)
        {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn install_locked(
        &self,
        package: PluginPackage,
    ) -> Result<InstallationResult, InstallationError> {
        let mut timings = InstallTimings::default();
        let m = package.manifest().clone();

        let t = Instant::now();
        let rating = self.security_scanner.scan(&package);
        timings.verify = t.elapsed();
        if !rating.is_acceptable() {
            return Err(InstallationError::Rejected {
                id: m.id,
                version: m.version,
                rating,
            });
        }

        let t = Instant::now();
        let index = self.plugin_registry.cached_index().await?;
        if self.version_manager.is_yanked(&index, &m.id, &m.version) {
            return Err(InstallationError::Yanked {
                id: m.id,
                version: m.version,
            });
        }
        let previous = self.plugin(&m.id).map(|p| p.metadata.version.clone());
        match &previous {
            Some(v) if *v == m.version => {
                return Err(InstallationError::AlreadyInstalled {
                    id: m.id,
                    version: m.version,
                });
            }
            Some(v) if *v > m.version => {
                return Err(InstallationError::Downgrade {
                    id: m.id,
                    installed: v.clone(),
                    offered: m.version,
                });
            }
            _ => {}
        }
        timings.resolve = t.elapsed();

        let scanner = self.security_scanner.clone();
        let checker = self.compatibility_checker.clone();
        let runtime = self.runtime.clone();
        let settings = self.settings_for(&m);
        let prepared = tokio::task::spawn_blocking(move || {
            verify_and_compile(
                package,
                Some(rating),
                &scanner,
                &checker,
                &runtime,
                settings,
                timings,
            )
        })
        .await
        .map_err(|e| InstallationError::Sandbox {
            id: m.id.clone(),
            version: m.version.clone(),
            source: PluginError::Engine(format!("verification task failed: {e}")),
        })??;
        self.commit(prepared, previous)
    }

    /// Writes the package, switches `current` to it, swaps the running plugin, then removes
    /// the old version's files.
    fn commit(
        &self,
        prepared: Prepared,
        previous: Option<Version>,
    ) -> Result<InstallationResult, InstallationError> {
        let t = Instant::now();
        let m = prepared.package.manifest();
        let path = self.store.write_version(&prepared.package)?;
        if let Err(f) = self.store.set_current(&m.id, &m.version) {
            let _ = self.store.remove_version(&m.id, &m.version);
            return Err(f.into());
        }
        let metadata = PluginMetadata::from_manifest(m, prepared.rating);
        let plugin = Arc::new(InstalledPlugin {
            metadata: metadata.clone(),
            compiled: prepared.compiled,
            path: path.clone(),
        });
        self.installed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(m.id.clone(), plugin);
        if let Some(old) = &previous
            && let Err(f) = self.store.remove_version(&m.id, old)
        {
            // The switch is done; a leftover directory only costs disk space.
            tracing::warn!(path = %f.path.display(), "cannot remove replaced version: {}", f.source);
        }
        self.counters.installs.fetch_add(1, Ordering::Relaxed);
        let mut timings = prepared.timings;
        timings.commit = t.elapsed();
        Ok(InstallationResult {
            metadata,
            path,
            replaced: previous,
            timings,
        })
    }

    /// Updates `plugin_id` to the newest compatible, non-yanked version in the registry.
    /// The installed version keeps serving calls throughout and stays installed if anything
    /// fails (download, verification, compilation, trial run, disk).
    pub async fn update_plugin(&self, plugin_id: &PluginId) -> Result<UpdateResult, UpdateError> {
        let current = self
            .plugin(plugin_id)
            .ok_or_else(|| UpdateError::NotInstalled(plugin_id.clone()))?;
        let kept = current.metadata.version.clone();
        let result = self.update_from(plugin_id, &kept).await;
        if result.is_err() {
            self.counters.failed_updates.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn update_from(
        &self,
        id: &PluginId,
        kept: &Version,
    ) -> Result<UpdateResult, UpdateError> {
        let index = self
            .plugin_registry
            .index()
            .await
            .map_err(|source| UpdateError::Registry {
                id: id.clone(),
                kept: kept.clone(),
                source,
            })?;
        let Some(entry) =
            self.version_manager
                .newest_update(&index, id, kept, &self.compatibility_checker)
        else {
            return Ok(UpdateResult::UpToDate {
                version: kept.clone(),
            });
        };
        let package = self
            .download_manager
            .fetch(&self.plugin_registry, entry)
            .await
            .map_err(|source| UpdateError::Download {
                id: id.clone(),
                kept: kept.clone(),
                source,
            })?;
        let to = package.manifest().version.clone();
        let installation =
            self.install_plugin(package)
                .await
                .map_err(|source| UpdateError::Install {
                    id: id.clone(),
                    kept: kept.clone(),
                    source,
                })?;
        self.counters.updates.fetch_add(1, Ordering::Relaxed);
        Ok(UpdateResult::Updated {
            from: kept.clone(),
            to,
            installation: Box::new(installation),
        })
    }

    /// Uninstalls `plugin_id`: it stops being callable at once, then its files are removed.
    /// Handles obtained earlier keep working until dropped.
    pub async fn uninstall_plugin(&self, plugin_id: &PluginId) -> Result<(), UninstallError> {
        let _ops = self.ops.lock().await;
        if self.plugin(plugin_id).is_none() {
            return Err(UninstallError::NotInstalled(plugin_id.clone()));
        }
        self.store.uninstall(plugin_id)?;
        self.installed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(plugin_id);
        self.counters.uninstalls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counters and the last index's figures.
    pub fn registry_stats(&self) -> RegistryStats {
        let (available_plugins, available_versions, yanked_versions) =
            self.plugin_registry.cached_counts();
        let d = self.download_manager.stats();
        let c = &self.counters;
        RegistryStats {
            installed: self
                .installed
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
            available_plugins,
            available_versions,
            yanked_versions,
            searches: c.searches.load(Ordering::Relaxed),
            downloads: d.downloads,
            downloaded_bytes: d.bytes,
            integrity_failures: d.integrity_failures,
            installs: c.installs.load(Ordering::Relaxed),
            updates: c.updates.load(Ordering::Relaxed),
            failed_updates: c.failed_updates.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            uninstalls: c.uninstalls.load(Ordering::Relaxed),
            load_failures: self.load_failures.len(),
        }
    }

    /// The installed plugin `id`.
    pub fn plugin(&self, id: &PluginId) -> Option<Arc<InstalledPlugin>> {
        self.installed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Metadata of every installed plugin.
    pub fn installed(&self) -> Vec<PluginMetadata> {
        self.installed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| p.metadata.clone())
            .collect()
    }

    /// Installed plugins that could not be loaded on open: `(path, reason)`.
    pub fn load_failures(&self) -> &[(PathBuf, String)] {
        &self.load_failures
    }

    /// The registry.
    pub fn registry(&self) -> &PluginRegistry {
        &self.plugin_registry
    }

    /// The security scanner.
    pub fn security_scanner(&self) -> &SecurityScanner {
        &self.security_scanner
    }

    /// The compatibility checker.
    pub fn compatibility_checker(&self) -> &CompatibilityChecker {
        &self.compatibility_checker
    }

    /// The version manager.
    pub fn version_manager(&self) -> &VersionManager {
        &self.version_manager
    }

    /// The download manager.
    pub fn download_manager(&self) -> &DownloadManager {
        &self.download_manager
    }

    /// The sandbox runtime.
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    fn settings_for(&self, m: &PluginManifest) -> BTreeMap<String, String> {
        let mut s = m.config.clone();
        if let Some(over) = self.settings.get(&m.id) {
            s.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        s
    }
}

/// Scan (unless `rating` is the scan already done), compatibility, compilation and trial
/// run: everything short of touching the disk.
fn verify_and_compile(
    package: PluginPackage,
    rating: Option<SecurityRating>,
    scanner: &SecurityScanner,
    checker: &CompatibilityChecker,
    runtime: &PluginRuntime,
    settings: BTreeMap<String, String>,
    mut timings: InstallTimings,
) -> Result<Prepared, InstallationError> {
    let m = package.manifest();
    let rating = rating.unwrap_or_else(|| {
        let t = Instant::now();
        let r = scanner.scan(&package);
        timings.verify = t.elapsed();
        r
    });
    if !rating.is_acceptable() {
        return Err(InstallationError::Rejected {
            id: m.id.clone(),
            version: m.version.clone(),
            rating,
        });
    }
    let t = Instant::now();
    checker.check(&m.id, &m.version, &m.compatibility)?;
    timings.check = t.elapsed();
    let t = Instant::now();
    let sandbox = |source| InstallationError::Sandbox {
        id: m.id.clone(),
        version: m.version.clone(),
        source,
    };
    let compiled = runtime
        .compile(m, package.module(), settings)
        .map_err(sandbox)?;
    let mut trial = compiled.instantiate().map_err(sandbox)?;
    if m.compatibility
        .capabilities
        .contains(&Capability::TextTransform)
    {
        trial.transform(TRIAL_TEXT).map_err(sandbox)?;
    }
    drop(trial);
    timings.compile = t.elapsed();
    Ok(Prepared {
        package,
        rating,
        compiled,
        timings,
    })
}

fn is_rejection(e: &InstallationError) -> bool {
    matches!(
        e,
        InstallationError::Rejected { .. }
            | InstallationError::Incompatible(_)
            | InstallationError::Sandbox { .. }
            | InstallationError::Yanked { .. }
    )
}

/// `None` when a term is missing; otherwise 3 points per term found in the id or name, 1 per
/// term found only in the description or tags.
fn text_score(e: &crate::registry::IndexEntry, terms: &[String]) -> Option<u32> {
    let head = format!("{} {}", e.id, e.name).to_lowercase();
    let body = format!("{} {}", e.description, e.tags.join(" ")).to_lowercase();
    terms.iter().try_fold(0, |score, t| {
        if head.contains(t.as_str()) {
            Some(score + 3)
        } else if body.contains(t.as_str()) {
            Some(score + 1)
        } else {
            None
        }
    })
}
