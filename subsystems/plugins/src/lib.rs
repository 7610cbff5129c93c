//! WebAssembly plugin marketplace for the Rust AI IDE: signed packages, security scanning, and sandboxed execution on wasmtime.
#![doc = include_str!("../README.md")]

mod compat;
mod download;
mod error;
mod manifest;
mod marketplace;
mod package;
mod registry;
pub mod samples;
mod sandbox;
mod scanner;
mod store;
mod version;

pub use compat::CompatibilityChecker;
pub use download::{DownloadManager, DownloadStats};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{
    CompatibilityError, DownloadError, InstallationError, IoFailure, MarketplaceError,
    PackageError, PluginError, RegistryError, SearchError, UninstallError, UpdateError,
};
pub use manifest::{
    Capability, CompatibilityRequirements, PluginId, PluginManifest, PluginMetadata, ResourceLimits,
};
pub use marketplace::{
    HOST_API_VERSION, InstallTimings, InstallationResult, InstalledPlugin, MarketplaceConfig,
    PluginMarketplace, PluginSearchQuery, RegistryStats, UpdateResult,
};
pub use package::{
    MANIFEST_ENTRY, MODULE_ENTRY, PackageLimits, PackageSignature, PluginPackage, SIGNATURE_ENTRY,
};
pub use registry::{INDEX_FILE, IndexEntry, PluginRegistry, RegistrySource};
pub use sandbox::{
    CompiledPlugin, LogLevel, LogRecord, PluginFunc, PluginInstance, PluginRuntime, RuntimeConfig,
};
pub use scanner::{
    HOST_MODULE, SandboxLimits, SecurityCheck, SecurityFinding, SecurityLevel, SecurityPolicy,
    SecurityRating, SecurityScanner, Severity,
};
pub use semver::{Version, VersionReq};
pub use version::VersionManager;
