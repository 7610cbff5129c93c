//! The plugin manifest (identity, host API requirement, capabilities, resource limits) and
//! the metadata the marketplace shows for a plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::error::PackageError;
use crate::scanner::SecurityRating;

/// A plugin identifier: 1 to 64 characters of `[a-z0-9_-]`, starting with a letter or digit.
///
/// The id names the plugin's install directory, so the rule also keeps it a single safe
/// path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PluginId(String);

impl PluginId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, String> {
        let id = id.into();
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(id))
        } else {
            Err(format!(
                "invalid plugin id {id:?}: 1 to 64 characters of [a-z0-9_-], starting with a letter or digit"
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PluginId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::new(value)
    }
}

impl From<PluginId> for String {
    fn from(id: PluginId) -> Self {
        id.0
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a plugin may ask of the host. A plugin gets only the host functions of the
/// capabilities its manifest declares, and only if this host offers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Import `ide.log(level, ptr, len)`: write to the host's log.
    Log,
    /// Import `ide.config_get(key_ptr, key_len, out_ptr, out_cap) -> len`: read its settings.
    Config,
    /// Receive document text: export `memory`, `alloc(len) -> ptr` and
    /// `transform(ptr, len) -> (ptr << 32 | len)`; the host passes text through guest memory.
    TextTransform,
}

impl Capability {
    /// Every capability, in declaration order.
    pub const ALL: [Capability; 3] = [Self::Log, Self::Config, Self::TextTransform];

    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Config => "config",
            Self::TextTransform => "text_transform",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a plugin needs from its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatibilityRequirements {
    /// The host API versions the plugin works with, e.g. `^1.2`.
    pub host_api: VersionReq,
    /// The capabilities it uses.
    #[serde(default)]
    pub capabilities: BTreeSet<Capability>,
}

/// The resources a plugin asks for; the runtime enforces them per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Most bytes of linear memory an instance may have.
    pub memory_bytes: u64,
    /// Most elements any table may have.
    #[serde(default)]
    pub table_elements: u64,
}

/// The manifest inside a package (`manifest.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginManifest {
    /// Unique id.
    pub id: PluginId,
    /// Display name.
    pub name: String,
    /// The plugin's own version.
    pub version: Version,
    /// Who publishes it.
    pub author: String,
    /// One paragraph for search results.
    #[serde(default)]
    pub description: String,
    /// Search tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the host must offer.
    pub compatibility: CompatibilityRequirements,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// Default settings, readable with the `config` capability; the host may override them.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

impl PluginManifest {
    /// Parses a manifest from its TOML bytes.
    pub fn from_toml(bytes: &[u8]) -> Result<Self, PackageError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| PackageError::Manifest(format!("not utf-8: {e}")))?;
        toml::from_str(text).map_err(|e| PackageError::Manifest(e.to_string()))
    }

    /// The manifest as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| unreachable!("a manifest always serializes: {e}"))
    }
}

/// A plugin as the marketplace lists it (the seed's `PluginMetadata`, plus tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMetadata {
    /// Unique id.
    pub id: PluginId,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Publisher.
    pub author: String,
    /// Description.
    pub description: String,
    /// Host requirements.
    pub compatibility: CompatibilityRequirements,
    /// The security rating: from this host's own scan for installed plugins, from the
    /// publisher's scan for search results (re-checked on install).
    pub security_rating: SecurityRating,
    /// Search tags.
    pub tags: Vec<String>,
}

impl PluginMetadata {
    /// The metadata of `manifest` with `security_rating`.
    pub fn from_manifest(manifest: &PluginManifest, security_rating: SecurityRating) -> Self {
        Self {
            id: manifest.id.clone(),
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            author: manifest.author.clone(),
            description: manifest.description.clone(),
            compatibility: manifest.compatibility.clone(),
            security_rating,
            tags: manifest.tags.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_safe_path_components() {
        for good in ["a", "uppercase", "my-plugin_2", "9lives"] {
            assert!(PluginId::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "Upper",
            "-lead",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(PluginId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_round_trips_through_toml() {
        let text = r#"
id = "demo"
name = "Demo"
version = "1.2.3"
author = "perflab"
description = "a demo"
tags = ["text"]

[compatibility]
host_api = "^1.0"
capabilities = ["log", "text_transform"]

[limits]
memory_bytes = 1048576

[config]
prefix = "> "
"#;
        let m = PluginManifest::from_toml(text.as_bytes()).expect("parses");
        assert_eq!(m.id.as_str(), "demo");
        assert_eq!(m.limits.table_elements, 0);
        assert!(
            m.compatibility
                .capabilities
                .contains(&Capability::TextTransform)
        );
        let again = PluginManifest::from_toml(m.to_toml().as_bytes()).expect("round trip");
        assert_eq!(again, m);
    }

    #[test]
    fn bad_manifest_names_the_field() {
        let err = PluginManifest::from_toml(b"id = \"../evil\"\n").expect_err("rejected");
        assert!(err.to_string().contains("invalid plugin id"), "{err}");
    }
}
