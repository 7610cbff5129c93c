//! The compatibility checker: does a plugin's host API requirement match this host's API
//! version, and does this host offer every capability the plugin asks for?

use std::collections::BTreeSet;

use semver::Version;

use crate::error::CompatibilityError;
use crate::manifest::{Capability, CompatibilityRequirements, PluginId};

/// The host's API version and the capabilities it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityChecker {
    host_api: Version,
    available: BTreeSet<Capability>,
}

impl CompatibilityChecker {
    /// A host at API version `host_api` offering `available`.
    pub fn new(host_api: Version, available: impl IntoIterator<Item = Capability>) -> Self {
        Self {
            host_api,
            available: available.into_iter().collect(),
        }
    }

    /// The host API version.
    pub fn host_api(&self) -> &Version {
        &self.host_api
    }

    /// The capabilities this host offers.
    pub fn available(&self) -> &BTreeSet<Capability> {
        &self.available
    }

    /// Whether `req` fits this host.
    pub fn is_compatible(&self, req: &CompatibilityRequirements) -> bool {
        self.reasons(req).is_empty()
    }

    /// Checks `req` of plugin `id` `version`; the error lists every unmet requirement.
    pub fn check(
        &self,
        id: &PluginId,
        version: &Version,
        req: &CompatibilityRequirements,
    ) -> Result<(), CompatibilityError> {
        let reasons = self.reasons(req);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(CompatibilityError {
                id: id.clone(),
                version: version.clone(),
                reasons,
            })
        }
    }

    fn reasons(&self, req: &CompatibilityRequirements) -> Vec<String> {
        let mut out = Vec::new();
        if !req.host_api.matches(&self.host_api) {
            out.push(format!(
                "requires host api {}, this host provides {}",
                req.host_api, self.host_api
            ));
        }
        for cap in req.capabilities.difference(&self.available) {
            out.push(format!(
                "requires capability `{cap}`, which this host does not offer"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use semver::VersionReq;

    use super::*;

    fn req(host: &str, caps: &[Capability]) -> CompatibilityRequirements {
        CompatibilityRequirements {
            host_api: VersionReq::parse(host).expect("req"),
            capabilities: caps.iter().copied().collect(),
        }
    }

    #[test]
    fn host_version_and_capabilities_are_both_checked() {
        let c = CompatibilityChecker::new(Version::new(1, 4, 0), [Capability::Log]);
        let id = PluginId::new("p").expect("id");
        let v = Version::new(1, 0, 0);
        assert!(c.check(&id, &v, &req("^1.2", &[Capability::Log])).is_ok());
        let err = c
            .check(&id, &v, &req("^2", &[Capability::Config]))
            .expect_err("incompatible");
        assert_eq!(err.reasons.len(), 2, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("requires host api ^2, this host provides 1.4.0"),
            "{text}"
        );
        assert!(text.contains("`config`"), "{text}");
        assert!(!c.is_compatible(&req(">=1.5", &[])));
    }
}
