//! The error types of the crate: one per marketplace operation (the seed's names) plus the
//! package, registry, compatibility and sandbox errors they wrap.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;

use crate::manifest::PluginId;
use crate::scanner::SecurityRating;

/// A package archive that cannot be read or is malformed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The archive is bigger than the configured limit.
    #[error("package archive is {size} bytes, over the limit of {limit}")]
    ArchiveTooLarge {
        /// Bytes in the archive.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The tar stream is corrupt.
    #[error("unreadable package archive: {0}")]
    Archive(String),
    /// An entry path climbs out of the package (`..`).
    #[error("package entry {path:?} escapes the package (path traversal)")]
    PathTraversal {
        /// The entry path as stored.
        path: String,
    },
    /// An entry path is absolute.
    #[error("package entry {path:?} is an absolute path")]
    AbsolutePath {
        /// The entry path as stored.
        path: String,
    },
    /// An entry is a link, a directory or a device instead of a regular file.
    #[error("package entry {path:?} is not a regular file")]
    NotAFile {
        /// The entry path as stored.
        path: String,
    },
    /// An entry the format does not define.
    #[error("unexpected package entry {path:?}")]
    UnexpectedEntry {
        /// The entry path as stored.
        path: String,
    },
    /// The same entry appears twice (a later copy could shadow the verified one).
    #[error("duplicate package entry {path:?}")]
    DuplicateEntry {
        /// The entry path.
        path: String,
    },
    /// An entry is bigger than its limit.
    #[error("package entry {path:?} is {size} bytes, over the limit of {limit}")]
    EntryTooLarge {
        /// The entry path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit for that entry.
        limit: u64,
    },
    /// A required entry is absent.
    #[error("package has no {0} entry")]
    MissingEntry(&'static str),
    /// The manifest is not valid TOML for the manifest schema.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// The signature entry is malformed.
    #[error("invalid signature entry: {0}")]
    SignatureFormat(String),
    /// The module text could not be parsed (package building from WAT).
    #[error("invalid module text: {0}")]
    ModuleText(String),
    /// Writing the archive failed.
    #[error("cannot write package archive: {0}")]
    Write(#[source] io::Error),
}

/// A file operation that failed: what was being done, on which path, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed for {}: {source}", path.display())]
pub struct IoFailure {
    /// What was being done.
    pub operation: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl IoFailure {
    /// For `map_err`: the failure of `operation` on `path`.
    pub(crate) fn at(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self {
            operation,
            path,
            source,
        }
    }
}

/// A registry (local directory or HTTP index) that could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A file operation on a local registry failed.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// The HTTP server answered with a non-success status.
    #[error("GET {url} answered {status}")]
    Http {
        /// The requested URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The HTTP request failed before a status came back.
    #[error("GET {url} failed: {message}")]
    Transport {
        /// The requested URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The request did not complete in time.
    #[error("GET {url} timed out after {timeout:?}")]
    Timeout {
        /// The requested URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// A response body was bigger than allowed.
    #[error("response from {url} is over the limit of {limit} bytes")]
    TooLarge {
        /// The requested URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The index document is malformed.
    #[error("invalid registry index {location}: {message}")]
    Index {
        /// Where the index came from.
        location: String,
        /// The parser's message.
        message: String,
    },
    /// The registry URL is not an `http://` URL.
    #[error("invalid registry url {0:?}: only http:// is supported")]
    Url(String),
    /// Publishing or yanking is only possible on a local registry.
    #[error("{0} needs a local registry")]
    ReadOnly(&'static str),
    /// The plugin version is not in the index.
    #[error("{id} {version} is not in the registry")]
    NotFound {
        /// The plugin.
        id: PluginId,
        /// The version asked for.
        version: Version,
    },
    /// The package offered for publishing is malformed.
    #[error("cannot publish: {0}")]
    Package(#[from] PackageError),
}

/// Why a plugin does not fit this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{id} {version} is incompatible with this host: {}", reasons.join("; "))]
pub struct CompatibilityError {
    /// The plugin.
    pub id: PluginId,
    /// Its version.
    pub version: Version,
    /// Each unmet requirement, as a sentence fragment.
    pub reasons: Vec<String>,
}

/// A failure inside the sandbox: compiling, linking, instantiating or calling a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The module failed to compile.
    #[error("module does not compile: {0}")]
    Compile(String),
    /// The module's imports could not be satisfied by the host.
    #[error("module does not link against the host api: {0}")]
    Link(String),
    /// Creating an instance failed (pool exhausted, initial memory over the limit, ...).
    #[error("cannot instantiate plugin: {0}")]
    Instantiate(String),
    /// The call ran past its epoch deadline and was interrupted.
    #[error(
        "plugin ran past its cpu budget of {budget_ticks} epoch ticks ({budget:?}) and was interrupted {overshoot_ticks} ticks after the deadline"
    )]
    Timeout {
        /// The budget, in epoch ticks.
        budget_ticks: u64,
        /// The budget as time (ticks times the tick period).
        budget: Duration,
        /// Whole ticks that passed between the deadline and the stop.
        overshoot_ticks: u64,
        /// Time between the deadline tick and the stop.
        overshoot: Duration,
    },
    /// The call used up its fuel.
    #[error("plugin ran out of fuel ({fuel} units per call)")]
    FuelExhausted {
        /// The fuel given to the call.
        fuel: u64,
    },
    /// The plugin tried to grow its memory beyond the limit.
    #[error("plugin tried to grow its memory to {requested} bytes, over its limit of {limit}")]
    MemoryLimit {
        /// The size asked for.
        requested: u64,
        /// The limit.
        limit: u64,
    },
    /// The plugin tried to grow a table beyond the limit.
    #[error("plugin tried to grow a table to {requested} elements, over its limit of {limit}")]
    TableLimit {
        /// The size asked for.
        requested: u64,
        /// The limit.
        limit: u64,
    },
    /// Any other trap (unreachable, out-of-bounds access, ...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// A required export is absent or has the wrong type.
    #[error("plugin export {name} is missing or has the wrong type: {message}")]
    MissingExport {
        /// The export name.
        name: String,
        /// The engine's message.
        message: String,
    },
    /// The plugin returned something the host cannot use.
    #[error("plugin returned invalid output: {0}")]
    BadOutput(String),
}

/// [`crate::PluginMarketplace::search_plugins`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The registry could not be read.
    #[error("search failed: {0}")]
    Registry(#[from] RegistryError),
}

/// [`crate::PluginMarketplace::download_plugin`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The registry could not be read.
    #[error("download failed: {0}")]
    Registry(#[from] RegistryError),
    /// The version was withdrawn by its publisher.
    #[error("{id} {version} is yanked")]
    Yanked {
        /// The plugin.
        id: PluginId,
        /// The version.
        version: Version,
    },
    /// The archive's SHA-256 differs from the index.
    #[error(
        "integrity check failed for {id} {version}: sha-256 is {actual}, the index says {expected}"
    )]
    IntegrityMismatch {
        /// The plugin.
        id: PluginId,
        /// The version.
        version: Version,
        /// From the index.
        expected: String,
        /// Of the bytes received.
        actual: String,
    },
    /// The archive holds another plugin or version than the one asked for.
    #[error("package for {id} {version} contains {found}")]
    ManifestMismatch {
        /// The plugin asked for.
        id: PluginId,
        /// The version asked for.
        version: Version,
        /// `id version` of the manifest inside.
        found: String,
    },
    /// The archive is malformed.
    #[error("invalid package: {0}")]
    Package(#[from] PackageError),
}

/// [`crate::PluginMarketplace::install_plugin`] failed; nothing installed was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallationError {
    /// The security scan failed.
    #[error("{id} {version} rejected by the security scan: {}", rating.reasons_text())]
    Rejected {
        /// The plugin.
        id: PluginId,
        /// Its version.
        version: Version,
        /// The rating with every finding.
        rating: SecurityRating,
    },
    /// The plugin does not fit this host.
    #[error(transparent)]
    Incompatible(#[from] CompatibilityError),
    /// The version is yanked in the registry.
    #[error("{id} {version} is yanked in the registry")]
    Yanked {
        /// The plugin.
        id: PluginId,
        /// Its version.
        version: Version,
    },
    /// The same version is already installed.
    #[error("{id} {version} is already installed")]
    AlreadyInstalled {
        /// The plugin.
        id: PluginId,
        /// Its version.
        version: Version,
    },
    /// A newer version is installed.
    #[error("{id} {installed} is installed; refusing to downgrade to {offered}")]
    Downgrade {
        /// The plugin.
        id: PluginId,
        /// The installed version.
        installed: Version,
        /// The offered version.
        offered: Version,
    },
    /// Compiling or the trial run in the sandbox failed.
    #[error("{id} {version} failed verification in the sandbox: {source}")]
    Sandbox {
        /// The plugin.
        id: PluginId,
        /// Its version.
        version: Version,
        /// What the sandbox reported.
        #[source]
        source: PluginError,
    },
    /// The registry could not be consulted for yanked versions.
    #[error("cannot resolve against the registry: {0}")]
    Registry(#[from] RegistryError),
    /// Writing the plugin to disk failed.
    #[error(transparent)]
    Io(#[from] IoFailure),
}

/// [`crate::PluginMarketplace::update_plugin`] failed; the installed version is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The plugin is not installed.
    #[error("{0} is not installed")]
    NotInstalled(PluginId),
    /// The registry could not be read.
    #[error("update of {id} failed, {kept} kept: {source}")]
    Registry {
        /// The plugin.
        id: PluginId,
        /// The version still installed.
        kept: Version,
        /// The registry's error.
        #[source]
        source: RegistryError,
    },
    /// The new version could not be downloaded.
    #[error("update of {id} failed, {kept} kept: {source}")]
    Download {
        /// The plugin.
        id: PluginId,
        /// The version still installed.
        kept: Version,
        /// The download error.
        #[source]
        source: DownloadError,
    },
    /// The new version failed verification or installation.
    #[error("update of {id} failed, {kept} kept: {source}")]
    Install {
        /// The plugin.
        id: PluginId,
        /// The version still installed.
        kept: Version,
        /// The installation error.
        #[source]
        source: InstallationError,
    },
}

/// [`crate::PluginMarketplace::uninstall_plugin`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UninstallError {
    /// The plugin is not installed.
    #[error("{0} is not installed")]
    NotInstalled(PluginId),
    /// Removing the files failed.
    #[error(transparent)]
    Io(#[from] IoFailure),
}

/// [`crate::PluginMarketplace::new`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarketplaceError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The sandbox could not be created.
    #[error(transparent)]
    Runtime(#[from] PluginError),
    /// The registry could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The install directory could not be read or created.
    #[error(transparent)]
    Io(#[from] IoFailure),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_fragments_naming_the_problem() {
        let errors: Vec<String> = vec![
            PackageError::PathTraversal {
                path: "../evil".into(),
            }
            .to_string(),
            PluginError::MemoryLimit {
                requested: 2 << 20,
                limit: 1 << 20,
            }
            .to_string(),
            UninstallError::NotInstalled(PluginId::new("demo").expect("valid id")).to_string(),
        ];
        assert!(errors[0].contains("../evil") && errors[0].contains("path traversal"));
        assert!(errors[1].contains("2097152") && errors[1].contains("1048576"));
        for e in &errors {
            assert!(!e.ends_with('.'), "{e}");
            assert!(e.chars().next().is_some_and(|c| !c.is_uppercase()), "{e}");
        }
    }
}
