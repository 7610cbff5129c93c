//! Sample plugins shipped with the crate (WAT sources and their manifests): the reference
//! for plugin authors, and the fixtures of the tests, the README example and the benches.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};

use crate::manifest::{
    Capability, CompatibilityRequirements, PluginId, PluginManifest, ResourceLimits,
};

/// A well-behaved text transformer: upper-cases ASCII text after its `prefix` setting and
/// logs once. Also exports `add(i32, i32) -> i32` and `spin(n) -> i32` (an `n`-step loop).
pub const UPPERCASE_WAT: &str = include_str!("../plugins/uppercase.wat");

/// A plugin whose `transform` and `run` loop forever.
pub const RUNAWAY_WAT: &str = include_str!("../plugins/runaway.wat");

/// The manifest of [`UPPERCASE_WAT`]: id `uppercase`, version 1.0.0, host API `^1`,
/// capabilities log, config and text_transform, 1 MiB of memory, empty `prefix`.
pub fn uppercase_manifest() -> PluginManifest {
    manifest(
        "uppercase",
        "Uppercase",
        "Upper-cases the selected text",
        &[
            Capability::Log,
            Capability::Config,
            Capability::TextTransform,
        ],
        1 << 20,
        [("prefix".to_owned(), String::new())].into(),
    )
}

/// The manifest of [`RUNAWAY_WAT`]: id `runaway`, capability text_transform, 64 KiB.
pub fn runaway_manifest() -> PluginManifest {
    manifest(
        "runaway",
        "Runaway",
        "Never returns",
        &[Capability::TextTransform],
        64 << 10,
        BTreeMap::new(),
    )
}

fn manifest(
    id: &str,
    name: &str,
    description: &str,
    caps: &[Capability],
    memory_bytes: u64,
    config: BTreeMap<String, String>,
) -> PluginManifest {
    PluginManifest {
        id: PluginId::new(id).unwrap_or_else(|e| unreachable!("sample ids are valid: {e}")),
        name: name.to_owned(),
        version: Version::new(1, 0, 0),
        author: "perflab".to_owned(),
        description: description.to_owned(),
        tags: vec!["text".to_owned(), "sample".to_owned()],
        compatibility: CompatibilityRequirements {
            host_api: VersionReq::parse("^1")
                .unwrap_or_else(|e| unreachable!("a valid requirement: {e}")),
            capabilities: caps.iter().copied().collect(),
        },
        limits: ResourceLimits {
            memory_bytes,
            table_elements: 0,
        },
        config,
    }
}
