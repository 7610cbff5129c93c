//! Consistent hashing: a ketama-style ring with virtual nodes per instance.

use std::collections::BTreeMap;

use crate::estimate::mix64;

/// 64-bit FNV-1a, then mixed: stable across runs and platforms, unlike `DefaultHasher`.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h)
}

/// Points on the ring, each owned by an instance id (by name, so positions survive other
/// instances coming and going: adding one instance moves only the keys it now owns,
/// about 1/n of them).
#[derive(Debug, Clone, Default)]
pub(crate) struct HashRing {
    points: BTreeMap<u64, String>,
}

impl HashRing {
    pub(crate) fn add(&mut self, id: &str, replicas: u32) {
        for r in 0..replicas {
            self.points
                .insert(hash_str(&format!("{id}#{r}")), id.to_owned());
        }
    }

    pub(crate) fn remove(&mut self, id: &str) {
        self.points.retain(|_, owner| owner != id);
    }

    /// The first instance clockwise from `key` that `usable` accepts.
    pub(crate) fn lookup(&self, key: &str, usable: impl Fn(&str) -> bool) -> Option<&str> {
        let h = hash_str(key);
        self.points
            .range(h..)
            .chain(self.points.range(..h))
            .map(|(_, id)| id.as_str())
            .find(|id| usable(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_skips_unusable_and_wraps() {
        let mut ring = HashRing::default();
        for id in ["a", "b", "c"] {
            ring.add(id, 50);
        }
        let first = ring.lookup("key", |_| true).map(str::to_owned);
        let first = first.as_deref().unwrap_or("");
        let other = ring.lookup("key", |id| id != first);
        assert!(other.is_some_and(|o| o != first));
        assert_eq!(ring.lookup("key", |_| false), None);
        ring.remove("a");
        assert!(ring.points.values().all(|id| id != "a"));
    }
}
