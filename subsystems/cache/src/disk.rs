//! `DiskCache`: the L3 tier, one checksummed file per entry, an in-memory LRU index rebuilt on open.
//!
//! Layout under `disk_path`: `LOCK` (held exclusively while a cache has the directory
//! open), `tmp/` (entries being written), `entries/xx/<32 hex digits>.entry`, named by the
//! 128-bit xxh3 hash of the encoded key and spread over 256 folders.
//!
//! An entry file is a 32-byte header, the encoded key and the encoded value:
//!
//! ```text
//! 0  magic "RAIC"   4  version (1), 3 zero bytes   8  expiry, unix ms (0: none)
//! 16 key length u32 20 value length u32            24 crc32 of bytes 0..24 and 28..
//! 28 zero u32       32 key bytes, then value bytes (all integers little-endian)
//! ```
//!
//! A write goes to `tmp/` first and is renamed into place, so a reader sees the old or
//! the new file whole. A crash can still leave a short or garbled file (the rename reached
//! the disk before the data); opening the cache checks every header against the file's
//! length and reading an entry checks its checksum and its key, so a torn or corrupted
//! entry is dropped (and its file deleted), never returned.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::xxh3_128;

use crate::error::CacheError;
use crate::stats::{Counter, Global, StatsCore, Tier};

const MAGIC: [u8; 4] = *b"RAIC";
const VERSION: u8 = 1;
/// Bytes of an entry header.
pub(crate) const HEADER: usize = 32;
const SUFFIX: &str = ".entry";

/// A value read from disk, with its absolute expiry.
#[derive(Debug)]
pub(crate) struct DiskHit {
    pub(crate) value: Vec<u8>,
    /// Unix milliseconds, `None` for no expiry.
    pub(crate) expires_at_ms: Option<u64>,
}

/// The disk tier.
#[derive(Debug)]
pub(crate) struct DiskCache {
    entries_dir: PathBuf,
    tmp_dir: PathBuf,
    capacity: u64,
    sync: bool,
    index: Mutex<Index>,
    tmp_seq: AtomicU64,
    stats: Arc<StatsCore>,
    /// Held for the cache's lifetime: the OS lock on `LOCK` is released when it closes.
    _lock: File,
}

#[derive(Debug, Default)]
struct Index {
    map: HashMap<u128, Meta>,
    /// Recency order: tick -> key hash; the smallest tick is the least recently used.
    lru: BTreeMap<u64, u128>,
    tick: u64,
    bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    size: u64,
    tick: u64,
    expires_at_ms: u64,
}

impl Index {
    fn insert(&mut self, hash: u128, size: u64, expires_at_ms: u64) {
        self.tick += 1;
        let meta = Meta {
            size,
            tick: self.tick,
            expires_at_ms,
        };
        if let Some(old) = self.map.insert(hash, meta) {
            self.lru.remove(&old.tick);
            self.bytes -= old.size;
        }
        self.lru.insert(self.tick, hash);
        self.bytes += size;
    }

    fn remove(&mut self, hash: u128) -> Option<Meta> {
        let meta = self.map.remove(&hash)?;
        self.lru.remove(&meta.tick);
        self.bytes -= meta.size;
        Some(meta)
    }

    fn touch(&mut self, hash: u128) {
        if let Some(meta) = self.map.get_mut(&hash) {
            self.lru.remove(&meta.tick);
            self.tick += 1;
            meta.tick = self.tick;
            self.lru.insert(self.tick, hash);
        }
    }
}

impl DiskCache {
    /// Opens (or creates) the cache at `root`, rebuilding the index from the entry files.
    pub(crate) fn open(
        root: &Path,
        capacity: u64,
        sync: bool,
        stats: Arc<StatsCore>,
    ) -> Result<Self, CacheError> {
        fs::create_dir_all(root).map_err(|e| CacheError::io("create cache directory", root, e))?;
        let lock_path = root.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| CacheError::io("open lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(CacheError::DiskInUse {
                    path: root.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(CacheError::io("lock", &lock_path, e));
            }
        }
        let tmp_dir = root.join("tmp");
        match fs::remove_dir_all(&tmp_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(CacheError::io("clean tmp directory", &tmp_dir, e)),
        }
        fs::create_dir_all(&tmp_dir)
            .map_err(|e| CacheError::io("create directory", &tmp_dir, e))?;
        let entries_dir = root.join("entries");
        for i in 0..256 {
            let d = entries_dir.join(format!("{i:02x}"));
            fs::create_dir_all(&d).map_err(|e| CacheError::io("create directory", &d, e))?;
        }
        let cache = Self {
            entries_dir,
            tmp_dir,
            capacity,
            sync,
            index: Mutex::new(Index::default()),
            tmp_seq: AtomicU64::new(0),
            stats,
            _lock: lock,
        };
        cache.rebuild_index()?;
        Ok(cache)
    }

    /// The value stored for `key`, if there is a valid, unexpired entry.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<DiskHit>, CacheError> {
        let hash = xxh3_128(key);
        let Some(meta) = self.lock().map.get(&hash).copied() else {
            return Ok(None);
        };
        if is_expired(meta.expires_at_ms, now_ms()) {
            self.remove_hash(hash)?;
            return Ok(None);
        }
        let path = self.path_of(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Deleted under us (eviction, invalidation): a miss.
                self.lock().remove(hash);
                return Ok(None);
            }
            Err(e) => return Err(CacheError::io("read entry", &path, e)),
        };
        match decode_entry(&bytes) {
            Some(entry) if entry.key == key => {
                self.lock().touch(hash);
                self.stats
                    .add(Tier::L3, Counter::BytesRead, bytes.len() as u64);
                Ok(Some(DiskHit {
                    value: entry.value.to_vec(),
                    expires_at_ms: (entry.expires_at_ms != 0).then_some(entry.expires_at_ms),
                }))
            }
            // A 128-bit hash collision: another key owns the file.
            Some(_) => Ok(None),
            None => {
                tracing::warn!(path = %path.display(), "corrupt disk cache entry dropped");
                self.stats.global(Global::Corrupt);
                self.stats.incr(Tier::L3, Counter::Errors);
                self.remove_hash(hash)?;
                Ok(None)
            }
        }
    }

    /// Stores `value` for `key`; `false` when the entry is larger than the whole tier.
    pub(crate) fn put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at_ms: Option<u64>,
    ) -> Result<bool, CacheError> {
        let expires = expires_at_ms.unwrap_or(0);
        let data = encode_entry(key, value, expires);
        let size = data.len() as u64;
        if size > self.capacity {
            return Ok(false);
        }
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp_dir.join(format!("{seq}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&data)?;
            if self.sync {
                f.sync_data()?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::io("write entry", &tmp, e));
        }
        let hash = xxh3_128(key);
        let path = self.path_of(hash);
        let mut index = self.lock();
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::io("rename entry", &path, e));
        }
        index.insert(hash, size, expires);
        self.stats.add(Tier::L3, Counter::BytesWritten, size);
        self.evict_over_capacity(&mut index, hash)?;
        Ok(true)
    }

    /// Deletes the entry of `key`; `true` if there was one.
    pub(crate) fn remove(&self, key: &[u8]) -> Result<bool, CacheError> {
        self.remove_hash(xxh3_128(key))
    }

    /// Deletes every entry.
    pub(crate) fn clear(&self) -> Result<(), CacheError> {
        let mut index = self.lock();
        let hashes: Vec<u128> = index.map.keys().copied().collect();
        for hash in hashes {
            index.remove(hash);
            self.delete_file(hash)?;
        }
        Ok(())
    }

    /// `(entries, bytes)` held now.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let index = self.lock();
        (index.map.len() as u64, index.bytes)
    }

    /// The file of the entry of `key` (whether or not it exists).
    pub(crate) fn entry_path(&self, key: &[u8]) -> PathBuf {
        self.path_of(xxh3_128(key))
    }

    fn remove_hash(&self, hash: u128) -> Result<bool, CacheError> {
        let mut index = self.lock();
        let had = index.remove(hash).is_some();
        self.delete_file(hash)?;
        Ok(had)
    }

    fn evict_over_capacity(&self, index: &mut Index, keep: u128) -> Result<(), CacheError> {
        while index.bytes > self.capacity {
            let Some((&tick, &victim)) = index.lru.iter().next() else {
                break;
            };
            if victim == keep {
                // Only the newest entry is left; it fits (checked in `put`).
                index.lru.remove(&tick);
                index.lru.insert(tick, victim);
                break;
            }
            index.remove(victim);
            self.delete_file(victim)?;
            self.stats.incr(Tier::L3, Counter::Evictions);
        }
        Ok(())
    }

    fn delete_file(&self, hash: u128) -> Result<(), CacheError> {
        let path = self.path_of(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CacheError::io("delete entry", &path, e)),
        }
    }

    fn path_of(&self, hash: u128) -> PathBuf {
        let name = format!("{hash:032x}");
        self.entries_dir.join(&name[..2]).join(name + SUFFIX)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // The index is consistent after every statement that can panic, so a poisoned
        // lock still guards a valid index.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scans the entry files: checks each header against the file length, drops torn,
    /// misnamed and expired files, and orders the rest by modification time.
    fn rebuild_index(&self) -> Result<(), CacheError> {
        let now = now_ms();
        let mut found: Vec<(SystemTime, u128, u64, u64)> = Vec::new();
        let read_dir =
            |d: &Path| fs::read_dir(d).map_err(|e| CacheError::io("read directory", d, e));
        for sub in read_dir(&self.entries_dir)? {
            let sub = sub.map_err(|e| CacheError::io("read directory", &self.entries_dir, e))?;
            let sub_path = sub.path();
            if !sub_path.is_dir() {
                continue;
            }
            for file in read_dir(&sub_path)? {
                let file = file.map_err(|e| CacheError::io("read directory", &sub_path, e))?;
                let path = file.path();
                let Some(hash) = parse_name(&path) else {
                    remove_quietly(&path);
                    continue;
                };
                match read_header(&path) {
                    Some((header, len, mtime)) if header.total_len() == len => {
                        if is_expired(header.expires_at_ms, now) {
                            remove_quietly(&path);
                        } else {
                            found.push((mtime, hash, len, header.expires_at_ms));
                        }
                    }
                    _ => {
                        tracing::warn!(path = %path.display(), "torn disk cache entry dropped on open");
                        self.stats.global(Global::Corrupt);
                        self.stats.incr(Tier::L3, Counter::Errors);
                        remove_quietly(&path);
                    }
                }
            }
        }
        found.sort_by_key(|&(mtime, hash, ..)| (mtime, hash));
        let mut index = self.lock();
        for (_, hash, size, expires) in found {
            index.insert(hash, size, expires);
        }
        self.evict_over_capacity(&mut index, 0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Header {
    expires_at_ms: u64,
    key_len: u32,
    value_len: u32,
    crc: u32,
}

impl Header {
    fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; HEADER] = b.get(..HEADER)?.try_into().ok()?;
        if b[..4] != MAGIC || b[4] != VERSION {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&b[8..16]);
        Some(Self {
            expires_at_ms: u64::from_le_bytes(exp),
            key_len: u32_at(16),
            value_len: u32_at(20),
            crc: u32_at(24),
        })
    }

    fn total_len(&self) -> u64 {
        HEADER as u64 + u64::from(self.key_len) + u64::from(self.value_len)
    }
}

struct Entry<'a> {
    key: &'a [u8],
    value: &'a [u8],
    expires_at_ms: u64,
}

fn encode_entry(key: &[u8], value: &[u8], expires_at_ms: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER + key.len() + value.len());
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&[VERSION, 0, 0, 0]);
    buf.extend_from_slice(&expires_at_ms.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 8]);
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    let crc = checksum(&buf);
    buf[24..28].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn checksum(entry: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&entry[..24]);
    h.update(&entry[28..]);
    h.finalize()
}

/// The entry in `bytes`, or `None` if anything about it is wrong.
fn decode_entry(bytes: &[u8]) -> Option<Entry<'_>> {
    let h = Header::parse(bytes)?;
    if h.total_len() != bytes.len() as u64 || checksum(bytes) != h.crc {
        return None;
    }
    let (key, value) = bytes[HEADER..].split_at(h.key_len as usize);
    Some(Entry {
        key,
        value,
        expires_at_ms: h.expires_at_ms,
    })
}

fn read_header(path: &Path) -> Option<(Header, u64, SystemTime)> {
    let mut f = File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    let mut buf = [0u8; HEADER];
    f.read_exact(&mut buf).ok()?;
    Some((Header::parse(&buf)?, meta.len(), meta.modified().ok()?))
}

fn parse_name(path: &Path) -> Option<u128> {
    let name = path.file_name()?.to_str()?.strip_suffix(SUFFIX)?;
    if name.len() != 32 {
        return None;
    }
    u128::from_str_radix(name, 16).ok()
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot delete disk cache file");
    }
}

fn is_expired(expires_at_ms: u64, now: u64) -> bool {
    expires_at_ms != 0 && expires_at_ms <= now
}

/// Milliseconds since the Unix epoch (the disk tier's clock: it must survive restarts).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn open(dir: &Path, capacity: u64) -> DiskCache {
        DiskCache::open(dir, capacity, false, Arc::new(StatsCore::default())).expect("opens")
    }

    #[test]
    fn round_trip_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let d = open(dir.path(), 1 << 20);
            assert!(d.put(b"k1", b"v1", None).expect("put"));
            assert!(
                d.put(b"k2", b"v2", Some(now_ms() + 3_600_000))
                    .expect("put")
            );
            assert_eq!(d.get(b"k1").expect("get").expect("hit").value, b"v1");
            assert_eq!(d.usage().0, 2);
        }
        let d = open(dir.path(), 1 << 20);
        assert_eq!(d.usage().0, 2);
        let hit = d.get(b"k2").expect("get").expect("hit after reopen");
        assert_eq!(hit.value, b"v2");
        assert!(hit.expires_at_ms.is_some());
        assert!(d.get(b"nope").expect("get").is_none());
        assert!(d.remove(b"k1").expect("remove"));
        assert!(d.get(b"k1").expect("get").is_none());
        d.clear().expect("clear");
        assert_eq!(d.usage(), (0, 0));
    }

    #[test]
    fn a_second_open_of_one_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = open(dir.path(), 1 << 20);
        let err = DiskCache::open(dir.path(), 1 << 20, false, Arc::new(StatsCore::default()))
            .expect_err("locked");
        assert!(matches!(err, CacheError::DiskInUse { .. }), "{err}");
    }

    #[test]
    fn capacity_evicts_least_recently_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(StatsCore::default());
        let entry = (HEADER + 2 + 100) as u64;
        let d = DiskCache::open(dir.path(), 3 * entry, false, Arc::clone(&stats)).expect("opens");
        for k in [b"k1", b"k2", b"k3"] {
            d.put(k, &[7; 100], None).expect("put");
        }
        assert!(d.get(b"k1").expect("get").is_some()); // k2 is now the oldest
        d.put(b"k4", &[7; 100], None).expect("put");
        assert!(d.get(b"k2").expect("get").is_none());
        assert!(d.get(b"k1").expect("get").is_some());
        assert_eq!(d.usage(), (3, 3 * entry));
        assert_eq!(stats.tier(Tier::L3).evictions, Some(1));
        assert!(
            !d.put(b"big", &[0; 1000], None).expect("put"),
            "larger than the tier"
        );
    }

    #[test]
    fn expired_entries_are_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = open(dir.path(), 1 << 20);
        d.put(b"old", b"v", Some(now_ms().saturating_sub(1)))
            .expect("put");
        assert!(d.get(b"old").expect("get").is_none());
        assert_eq!(d.usage().0, 0);
    }

    #[test]
    fn corrupt_and_torn_entries_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(StatsCore::default());
        {
            let d = DiskCache::open(dir.path(), 1 << 20, false, Arc::clone(&stats)).expect("opens");
            d.put(b"flip", b"value-bytes", None).expect("put");
            d.put(b"torn", b"value-bytes", None).expect("put");
            // A flipped bit in the value: caught by the checksum on read.
            let p = d.entry_path(b"flip");
            let mut bytes = fs::read(&p).expect("read");
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            fs::write(&p, bytes).expect("write");
            assert!(d.get(b"flip").expect("get").is_none());
            assert!(!p.exists(), "the corrupt file is deleted");
            // A truncated file: caught on open by the header/length check.
            let t = d.entry_path(b"torn");
            let bytes = fs::read(&t).expect("read");
            fs::write(&t, &bytes[..bytes.len() - 3]).expect("write");
        }
        let d = DiskCache::open(dir.path(), 1 << 20, false, Arc::clone(&stats)).expect("opens");
        assert!(d.get(b"torn").expect("get").is_none());
        assert_eq!(stats.global_sum(Global::Corrupt), 2);
        assert_eq!(d.usage(), (0, 0));
    }

    proptest! {
        #[test]
        fn entries_round_trip_and_any_flip_is_caught(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::collection::vec(any::<u8>(), 0..256),
            flip in any::<prop::sample::Index>(),
        ) {
            let bytes = encode_entry(&key, &value, 5);
            let e = decode_entry(&bytes).expect("valid");
            prop_assert_eq!(e.key, &key[..]);
            prop_assert_eq!(e.value, &value[..]);
            prop_assert_eq!(e.expires_at_ms, 5);
            let mut bad = bytes.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 0x10;
            prop_assert!(decode_entry(&bad).is_none());
            prop_assert!(decode_entry(&bytes[..bytes.len() - 1]).is_none());
        }
    }
}
