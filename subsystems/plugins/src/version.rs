//! The version manager: semver resolution over a registry index, with yanked versions
//! skipped by resolution and downgrades refused.

use semver::{Version, VersionReq};

use crate::compat::CompatibilityChecker;
use crate::manifest::PluginId;
use crate::registry::IndexEntry;

/// Resolves plugin versions against an index.
#[derive(Debug, Clone, Copy, Default)]
pub struct VersionManager;

impl VersionManager {
    /// A version manager.
    pub fn new() -> Self {
        Self
    }

    /// Every version of `id` in `entries`, newest first.
    pub fn versions<'a>(&self, entries: &'a [IndexEntry], id: &PluginId) -> Vec<&'a IndexEntry> {
        let mut v: Vec<&IndexEntry> = entries.iter().filter(|e| &e.id == id).collect();
        v.sort_by(|a, b| b.version.cmp(&a.version));
        v
    }

    /// The newest version of `id` that matches `req`, is not yanked and fits `checker`'s
    /// host. Pre-releases are only chosen when `req` names one, as semver's matching rules say.
    pub fn resolve<'a>(
        &self,
        entries: &'a [IndexEntry],
        id: &PluginId,
        req: &VersionReq,
        checker: &CompatibilityChecker,
    ) -> Option<&'a IndexEntry> {
        self.versions(entries, id).into_iter().find(|e| {
            !e.yanked && req.matches(&e.version) && checker.is_compatible(&e.compatibility)
        })
    }

    /// The update target for `id` at `installed`: the newest compatible, non-yanked version
    /// newer than it, if any.
    pub fn newest_update<'a>(
        &self,
        entries: &'a [IndexEntry],
        id: &PluginId,
        installed: &Version,
        checker: &CompatibilityChecker,
    ) -> Option<&'a IndexEntry> {
        self.resolve(entries, id, &VersionReq::STAR, checker)
            .filter(|e| e.version > *installed)
            .or_else(|| {
                // `*` never matches pre-releases; an installed pre-release may still move to
                // a newer pre-release of the same plugin.
                self.versions(entries, id).into_iter().find(|e| {
                    !e.yanked
                        && !e.version.pre.is_empty()
                        && e.version > *installed
                        && !installed.pre.is_empty()
                        && checker.is_compatible(&e.compatibility)
                })
            })
    }

    /// Whether `version` of `id` is yanked in `entries`.
    pub fn is_yanked(&self, entries: &[IndexEntry], id: &PluginId, version: &Version) -> bool {
        entries
            .iter()
            .any(|e| &e.id == id && &e.version == version && e.yanked)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::manifest::{Capability, CompatibilityRequirements};
    use crate::scanner::{SecurityLevel, SecurityRating};

    fn entry(v: &str, yanked: bool, host: &str) -> IndexEntry {
        IndexEntry {
            id: PluginId::new("p").expect("id"),
            version: Version::parse(v).expect("version"),
            name: "P".into(),
            author: "a".into(),
            description: String::new(),
            tags: vec![],
            compatibility: CompatibilityRequirements {
                host_api: VersionReq::parse(host).expect("req"),
                capabilities: [Capability::Log].into(),
            },
            sha256: String::new(),
            size: 0,
            yanked,
            security_rating: SecurityRating {
                level: SecurityLevel::Trusted,
                findings: vec![],
            },
            path: String::new(),
        }
    }

    fn checker() -> CompatibilityChecker {
        CompatibilityChecker::new(Version::new(1, 0, 0), [Capability::Log])
    }

    #[test]
    fn resolution_skips_yanked_incompatible_and_prerelease() {
        let entries = vec![
            entry("1.0.0", false, "^1"),
            entry("1.1.0", false, "^1"),
            entry("1.2.0", true, "^1"),
            entry("1.3.0", false, "^2"),
            entry("1.4.0-beta.1", false, "^1"),
        ];
        let id = PluginId::new("p").expect("id");
        let vm = VersionManager::new();
        let got = vm.newest_update(&entries, &id, &Version::new(1, 0, 0), &checker());
        assert_eq!(got.map(|e| e.version.to_string()), Some("1.1.0".into()));
        assert!(
            vm.newest_update(&entries, &id, &Version::new(1, 1, 0), &checker())
                .is_none()
        );
        let pre = VersionReq::parse(">=1.4.0-beta.1").expect("req");
        assert_eq!(
            vm.resolve(&entries, &id, &pre, &checker())
                .map(|e| e.version.to_string()),
            Some("1.4.0-beta.1".into())
        );
        assert!(vm.is_yanked(&entries, &id, &Version::new(1, 2, 0)));
    }

    proptest! {
        /// Whatever the index, resolution returns the maximum of the eligible versions.
        #[test]
        fn resolve_returns_the_newest_eligible(vs in prop::collection::vec((0u64..4, 0u64..4, 0u64..4, any::<bool>()), 0..12)) {
            let entries: Vec<IndexEntry> = vs.iter().map(|(a, b, c, y)| entry(&format!("{a}.{b}.{c}"), *y, "*")).collect();
            let id = PluginId::new("p").expect("id");
            let got = VersionManager::new().resolve(&entries, &id, &VersionReq::STAR, &checker());
            let best = entries.iter().filter(|e| !e.yanked).map(|e| e.version.clone()).max();
            prop_assert_eq!(got.map(|e| e.version.clone()), best);
        }
    }
}
