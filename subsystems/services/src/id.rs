//! Service identifiers and the small, fast hash map keyed by them.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// The name of a registered service. Cheap to clone (a shared `str`); lookups take `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(Arc<str>);

impl ServiceId {
    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for ServiceId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ServiceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ServiceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ServiceId {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for ServiceId {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl From<&ServiceId> for ServiceId {
    fn from(s: &ServiceId) -> Self {
        s.clone()
    }
}

impl PartialEq<str> for ServiceId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ServiceId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A map keyed by service id. The keys are names chosen by the program, not by an attacker,
/// so the warm `get_service` path uses FNV-1a instead of SipHash: a few nanoseconds for a
/// short name instead of about twenty.
pub(crate) type IdMap<V> = HashMap<ServiceId, V, BuildHasherDefault<Fnv1a>>;

/// 64-bit FNV-1a.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_str_find_ids() {
        let mut m: IdMap<u32> = IdMap::default();
        m.insert(ServiceId::from("db"), 1);
        m.insert(ServiceId::from(String::from("cache")), 2);
        assert_eq!(m.get("db"), Some(&1));
        assert_eq!(m.get("cache"), Some(&2));
        assert_eq!(m.get("nope"), None);
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        let hash = |s: &str| {
            let mut h = Fnv1a::default();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn display_and_debug() {
        let id = ServiceId::from("lsp");
        assert_eq!(id.to_string(), "lsp");
        assert_eq!(format!("{id:?}"), "\"lsp\"");
        assert_eq!(id, "lsp");
        assert_eq!(id.len(), 3);
    }
}
