//! `DiskCache`: the L3 tier, a log of checksummed records in append-only segment files, an in-memory index and one background writer.
//!
//! Layout under `disk_path`: `LOCK` (held exclusively while a cache has the directory
//! open) and `segments/<20-digit id>.log`, numbered in the order they were started. A
//! record is a 32-byte header, the encoded key and the encoded value:
//!
//! ```text
//! 0  magic "RAIC"   4  version (2), flags (1: tombstone), 2 zero bytes
//! 8  expiry, unix ms (0: none)     16 key length u32    20 value length u32
//! 24 crc32 of bytes 0..24 and 28.. 28 zero u32          32 key bytes, then value bytes
//! ```
//!
//! (all integers little-endian; a tombstone has no value and hides the older records of
//! its key).
//!
//! **Writes are queued** (write-behind): `put` encodes the record, appends it to a queue
//! bounded in bytes (a full queue blocks the caller: backpressure) and to the `pending`
//! map, which `get` reads first, so a read right after a write sees it. One writer thread
//! drains the whole queue at a time and appends it with one `pwrite` per segment it
//! touches (and one `fsync` with `l3_sync`), then publishes the records' places in the
//! index. Dropping the cache writes what is queued and joins the writer; a crash loses
//! only the operations still queued (writes, tombstones, a clear).
//!
//! **Reads** look the key's 128-bit xxh3 up in the index (segment, offset, length, expiry)
//! and read the record with one `pread` from the segment's open file; the checksum and the
//! key are checked on every read, so a corrupted record is counted, dropped from the index
//! (with a tombstone, so a restart does not bring an older version back) and never
//! returned.
//!
//! **Capacity** (`l3_capacity`) bounds the segment files, live and dead records alike.
//! Segments are a sixteenth of it (at most 8 MiB); when the files outgrow it the oldest
//! segment is reclaimed whole (FIFO, like foyer's regions). Its live records that were
//! read since they were written are first appended again (reinsertion: hot entries stay,
//! each gets one more round), up to half the segment's size so that every reclaim frees
//! at least half a segment; the others are evictions.
//!
//! **Opening** scans the segments in order, later records and tombstones winning, expired
//! ones dropped. A record that cannot be read whole (a torn tail after a crash, or a
//! garbled header, after which nothing in that segment can be trusted) is cut off with
//! the rest of its segment; a record with a bad checksum is skipped and, if its key can
//! still be read, hides that key's older records. Each is counted as corrupt.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::xxh3_128;

use crate::error::CacheError;
use crate::stats::{Counter, Global, StatsCore, Tier};

const MAGIC: [u8; 4] = *b"RAIC";
/// Version 1 was the one-file-per-entry layout (no flags).
const VERSION: u8 = 2;
const FLAG_TOMBSTONE: u8 = 1;
/// Bytes of a record header.
const HEADER: usize = 32;
const SEGMENT_SUFFIX: &str = ".log";
/// A segment is this fraction of `l3_capacity`: a reclaim drops about 6% of the tier.
const SEGMENTS_PER_CAPACITY: u64 = 16;
const MAX_SEGMENT: u64 = 8 << 20;
/// Bounds of the write queue, in bytes (it is one segment's worth in between).
const MIN_QUEUE: u64 = 64 << 10;
const MAX_QUEUE: u64 = 4 << 20;

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
    shared: Arc<Shared>,
    segments_dir: PathBuf,
    capacity: u64,
    writer: Option<JoinHandle<()>>,
    /// Held for the cache's lifetime: the OS lock on `LOCK` is released when it closes.
    _lock: File,
}

/// What the callers and the writer share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The writer waits here for work.
    work: Condvar,
    /// Writers wait here for room in the queue, `flush` for the writer's progress.
    progress: Condvar,
    queue_limit: u64,
    stats: Arc<StatsCore>,
}

#[derive(Debug)]
struct State {
    index: HashMap<u128, Loc>,
    /// Bytes of the records the index points at.
    live_bytes: u64,
    /// Queued or being written: the newest write of each key, ahead of the index.
    pending: HashMap<u128, Pending>,
    queue: VecDeque<Op>,
    queued_bytes: u64,
    /// Sequence number of the next queued operation (from 1).
    next_seq: u64,
    /// Every operation up to this one is on disk and in the index.
    done_seq: u64,
    /// Open segment files by id, for reads.
    files: HashMap<u64, Arc<File>>,
    writer_idle: bool,
    writer_alive: bool,
    shutdown: bool,
}

/// Where a record is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
    expires_at_ms: u64,
    /// Read since it was written: reinserted rather than evicted when its segment goes.
    read: bool,
}

impl Loc {
    fn same_place(&self, other: &Self) -> bool {
        self.segment == other.segment && self.offset == other.offset
    }
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    record: Arc<Vec<u8>>,
}

/// A queued operation.
#[derive(Debug)]
enum Op {
    Put {
        seq: u64,
        hash: u128,
        record: Arc<Vec<u8>>,
        expires_at_ms: u64,
    },
    Tombstone {
        seq: u64,
        record: Vec<u8>,
    },
    Clear {
        seq: u64,
    },
}

impl Op {
    fn seq(&self) -> u64 {
        match self {
            Self::Put { seq, .. } | Self::Tombstone { seq, .. } | Self::Clear { seq } => *seq,
        }
    }
}

impl State {
    fn install(&mut self, hash: u128, loc: Loc) {
        if let Some(old) = self.index.insert(hash, loc) {
            self.live_bytes -= u64::from(old.len);
        }
        self.live_bytes += u64::from(loc.len);
    }

    fn remove_index(&mut self, hash: u128) -> Option<Loc> {
        let loc = self.index.remove(&hash)?;
        self.live_bytes -= u64::from(loc.len);
        Some(loc)
    }

    /// Removes `hash` from the index if it still points at `at`.
    fn remove_if_at(&mut self, hash: u128, at: &Loc) -> bool {
        if self.index.get(&hash).is_some_and(|l| l.same_place(at)) {
            self.remove_index(hash);
            true
        } else {
            false
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every statement that can panic leaves the state consistent, so a poisoned lock
        // still guards a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the queue has room for `bytes` (an empty queue takes anything).
    fn wait_for_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        bytes: u64,
    ) -> Option<MutexGuard<'a, State>> {
        while st.writer_alive && st.queued_bytes > 0 && st.queued_bytes + bytes > self.queue_limit {
            st = self
                .progress
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.writer_alive.then_some(st)
    }

    fn push(&self, st: &mut State, op: Op, bytes: u64) {
        st.queue.push_back(op);
        st.queued_bytes += bytes;
        if st.writer_idle {
            st.writer_idle = false;
            self.work.notify_one();
        }
    }

    fn corrupt(&self) {
        self.stats.global(Global::Corrupt);
        self.stats.incr(Tier::L3, Counter::Errors);
    }
}

impl DiskCache {
    /// Opens (or creates) the cache at `root`, rebuilding the index from the segments, and
    /// starts its writer thread.
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
        // The one-file-per-entry layout of earlier versions: a cache, so dropped.
        for legacy in ["tmp", "entries"] {
            let d = root.join(legacy);
            match fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io("remove old cache directory", &d, e)),
            }
        }
        let segments_dir = root.join("segments");
        fs::create_dir_all(&segments_dir)
            .map_err(|e| CacheError::io("create directory", &segments_dir, e))?;
        let (sealed, index) = scan(&segments_dir, &stats)?;
        let next_id = sealed.last().map_or(0, |s| s.id + 1);
        let active = Segment::create(&segments_dir, next_id, sync)?;
        let segment_size = (capacity / SEGMENTS_PER_CAPACITY).clamp(1, MAX_SEGMENT);
        let mut state = State {
            index: HashMap::new(),
            live_bytes: 0,
            pending: HashMap::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_seq: 1,
            done_seq: 0,
            files: sealed
                .iter()
                .chain([&active])
                .map(|s| (s.id, Arc::clone(&s.file)))
                .collect(),
            writer_idle: false,
            writer_alive: true,
            shutdown: false,
        };
        for (hash, loc) in index {
            state.install(hash, loc);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            work: Condvar::new(),
            progress: Condvar::new(),
            queue_limit: segment_size.clamp(MIN_QUEUE, MAX_QUEUE),
            stats,
        });
        let mut log = Log {
            dir: segments_dir.clone(),
            segment_size,
            capacity,
            sync,
            total: sealed.iter().map(|s| s.size).sum(),
            sealed: sealed.into(),
            active,
            buf: Vec::new(),
            buf_keys: Vec::new(),
            flushes: 0,
            failed: Vec::new(),
        };
        // A smaller budget than the last run's.
        log.reclaim(&shared);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("rust-ai-ide-cache-l3".to_owned())
            .spawn(move || run_writer(&writer_shared, log))
            .map_err(|e| CacheError::io("start disk writer", root, e))?;
        Ok(Self {
            shared,
            segments_dir,
            capacity,
            writer: Some(writer),
            _lock: lock,
        })
    }

    /// The value stored for `key`, if there is a valid, unexpired entry.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<DiskHit>, CacheError> {
        let hash = xxh3_128(key);
        let now = now_ms();
        let (file, loc) = {
            let mut st = self.shared.lock();
            if let Some(p) = st.pending.get(&hash) {
                let record = Arc::clone(&p.record);
                drop(st);
                let r = split_record(&record);
                return Ok(
                    (r.key == key && !is_expired(r.expires_at_ms, now)).then(|| DiskHit {
                        value: r.value.to_vec(),
                        expires_at_ms: (r.expires_at_ms != 0).then_some(r.expires_at_ms),
                    }),
                );
            }
            let Some(loc) = st.index.get_mut(&hash) else {
                return Ok(None);
            };
            loc.read = true;
            let loc = *loc;
            let file = st.files.get(&loc.segment).cloned();
            match file {
                Some(file) if !is_expired(loc.expires_at_ms, now) => (file, loc),
                _ => {
                    st.remove_index(hash);
                    return Ok(None);
                }
            }
        };
        let mut bytes = vec![0; loc.len as usize];
        match file.read_exact_at(&mut bytes, loc.offset) {
            Ok(()) => {}
            // Shorter than the index says: as good as corrupt.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => bytes.clear(),
            Err(e) => {
                return Err(CacheError::io(
                    "read entry",
                    segment_path(&self.segments_dir, loc.segment),
                    e,
                ));
            }
        }
        match decode_record(&bytes) {
            Some(r) if r.key == key && !r.tombstone => {
                self.shared
                    .stats
                    .add(Tier::L3, Counter::BytesRead, bytes.len() as u64);
                let expires_at_ms = (r.expires_at_ms != 0).then_some(r.expires_at_ms);
                let value_start = HEADER + key.len();
                bytes.drain(..value_start);
                Ok(Some(DiskHit {
                    value: bytes,
                    expires_at_ms,
                }))
            }
            // A 128-bit hash collision: another key owns the record.
            Some(_) => Ok(None),
            None => {
                tracing::warn!(
                    segment = loc.segment,
                    offset = loc.offset,
                    "corrupt disk cache entry dropped"
                );
                self.shared.corrupt();
                let st = self.shared.lock();
                if st.index.get(&hash).is_some_and(|l| l.same_place(&loc)) {
                    // A tombstone, so that a restart does not find an older record instead.
                    self.remove_and_bury(st, key, hash)?;
                }
                Ok(None)
            }
        }
    }

    /// Queues `value` for `key`; `false` when the entry is larger than the whole tier.
    pub(crate) fn put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at_ms: Option<u64>,
    ) -> Result<bool, CacheError> {
        let expires = expires_at_ms.unwrap_or(0);
        let record = Arc::new(encode_record(key, value, expires, 0));
        let len = record.len() as u64;
        if len > self.capacity {
            return Ok(false);
        }
        let hash = xxh3_128(key);
        let st = self.shared.lock();
        let mut st = self
            .shared
            .wait_for_room(st, len)
            .ok_or_else(|| self.writer_stopped())?;
        let seq = st.take_seq();
        st.pending.insert(
            hash,
            Pending {
                seq,
                record: Arc::clone(&record),
            },
        );
        let op = Op::Put {
            seq,
            hash,
            record,
            expires_at_ms: expires,
        };
        self.shared.push(&mut st, op, len);
        Ok(true)
    }

    /// Deletes the entry of `key`; `true` if there was one.
    pub(crate) fn remove(&self, key: &[u8]) -> Result<bool, CacheError> {
        let hash = xxh3_128(key);
        let st = self.shared.lock();
        if !st.index.contains_key(&hash) && !st.pending.contains_key(&hash) {
            // Nothing on disk or on its way there can bring the key back.
            return Ok(false);
        }
        self.remove_and_bury(st, key, hash)?;
        Ok(true)
    }

    /// Deletes every entry: the index and the queue now, the segment files in the writer.
    pub(crate) fn clear(&self) -> Result<(), CacheError> {
        let mut st = self.shared.lock();
        if !st.writer_alive {
            return Err(self.writer_stopped());
        }
        st.index.clear();
        st.live_bytes = 0;
        st.pending.clear();
        st.queue.clear();
        st.queued_bytes = 0;
        let seq = st.take_seq();
        self.shared.push(&mut st, Op::Clear { seq }, 0);
        drop(st);
        self.shared.progress.notify_all();
        Ok(())
    }

    /// `(entries, bytes)` held now, queued writes included.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let st = self.shared.lock();
        let (mut entries, mut bytes) = (st.index.len() as u64, st.live_bytes);
        for (hash, p) in &st.pending {
            if !st.index.contains_key(hash) {
                entries += 1;
                bytes += p.record.len() as u64;
            }
        }
        (entries, bytes)
    }

    /// Waits until every operation queued so far is on disk and in the index.
    pub(crate) fn flush(&self) -> Result<(), CacheError> {
        let mut st = self.shared.lock();
        let target = st.next_seq - 1;
        while st.writer_alive && st.done_seq < target {
            st = self
                .shared
                .progress
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if st.done_seq < target {
            return Err(self.writer_stopped());
        }
        Ok(())
    }

    /// After a flush: the segment file holding the entry of `key` and the byte range of
    /// its value there; `None` if there is no such entry.
    pub(crate) fn value_location(
        &self,
        key: &[u8],
    ) -> Result<Option<(PathBuf, Range<u64>)>, CacheError> {
        self.flush()?;
        let st = self.shared.lock();
        Ok(st.index.get(&xxh3_128(key)).map(|loc| {
            let start = loc.offset + (HEADER + key.len()) as u64;
            (
                segment_path(&self.segments_dir, loc.segment),
                start..loc.offset + u64::from(loc.len),
            )
        }))
    }

    /// Drops `key` from the index and the pending writes and queues its tombstone.
    fn remove_and_bury(
        &self,
        st: MutexGuard<'_, State>,
        key: &[u8],
        hash: u128,
    ) -> Result<(), CacheError> {
        let record = encode_record(key, &[], 0, FLAG_TOMBSTONE);
        let len = record.len() as u64;
        // The removal and the tombstone's place in the queue happen under one lock, after
        // any wait: a write of the key queued meanwhile stays before the tombstone.
        let mut st = self
            .shared
            .wait_for_room(st, len)
            .ok_or_else(|| self.writer_stopped())?;
        st.remove_index(hash);
        st.pending.remove(&hash);
        let seq = st.take_seq();
        self.shared
            .push(&mut st, Op::Tombstone { seq, record }, len);
        Ok(())
    }

    fn writer_stopped(&self) -> CacheError {
        CacheError::io(
            "queue disk write",
            &self.segments_dir,
            io::Error::other("the disk writer thread stopped"),
        )
    }
}

impl Drop for DiskCache {
    /// Writes what is queued and waits for the writer, so that a reopen sees every write.
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        if let Some(w) = self.writer.take()
            && w.join().is_err()
        {
            tracing::error!("disk cache writer panicked");
        }
    }
}

/// One segment file, as the writer knows it.
#[derive(Debug)]
struct Segment {
    id: u64,
    file: Arc<File>,
    /// Bytes written (the file's length).
    size: u64,
    /// `(key hash, offset)` of every value record, in order: what a reclaim looks at.
    keys: Vec<(u128, u64)>,
}

impl Segment {
    fn create(dir: &Path, id: u64, sync: bool) -> Result<Self, CacheError> {
        let path = segment_path(dir, id);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| CacheError::io("create segment", &path, e))?;
        if sync {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| CacheError::io("sync directory", dir, e))?;
        }
        Ok(Self {
            id,
            file: Arc::new(file),
            size: 0,
            keys: Vec::new(),
        })
    }
}

/// The writer's side: the segments, the active one's buffer, the byte budget.
#[derive(Debug)]
struct Log {
    dir: PathBuf,
    segment_size: u64,
    capacity: u64,
    sync: bool,
    /// Full segments, oldest first.
    sealed: VecDeque<Segment>,
    active: Segment,
    /// Bytes of all segment files.
    total: u64,
    /// Records placed at the end of the active segment and not yet written.
    buf: Vec<u8>,
    buf_keys: Vec<(u128, u64)>,
    /// Number of the buffer being filled (counts the writes of `buf`).
    flushes: u64,
    /// Buffers of this batch whose write failed: their records are not in the log.
    failed: Vec<u64>,
}

/// A value record of the current batch and its place.
#[derive(Debug)]
struct Placed {
    seq: u64,
    hash: u128,
    loc: Loc,
    flush: u64,
}

/// The writer thread: drains the queue in batches until the cache is dropped.
fn run_writer(shared: &Shared, mut log: Log) {
    /// Marks the writer gone (also when it panics), so callers stop waiting on it.
    struct Exit<'a>(&'a Shared);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            let mut st = self.0.lock();
            st.writer_alive = false;
            st.queue.clear();
            st.queued_bytes = 0;
            st.pending.clear();
            drop(st);
            self.0.progress.notify_all();
        }
    }
    let _exit = Exit(shared);
    let mut batch = Vec::new();
    loop {
        {
            let mut st = shared.lock();
            while st.queue.is_empty() && !st.shutdown {
                st.writer_idle = true;
                st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            st.writer_idle = false;
            if st.queue.is_empty() {
                return;
            }
            batch.extend(st.queue.drain(..));
            st.queued_bytes = 0;
        }
        shared.progress.notify_all();
        let last = batch.last().map_or(0, Op::seq);
        log.write_batch(shared, &mut batch);
        log.reclaim(shared);
        shared.lock().done_seq = last;
        shared.progress.notify_all();
    }
}

impl Log {
    /// Appends the batch (one write per segment it reaches) and publishes its records in
    /// the index, unless a later operation of the same key superseded them.
    fn write_batch(&mut self, shared: &Shared, batch: &mut Vec<Op>) {
        let mut placed = Vec::with_capacity(batch.len());
        for op in batch.drain(..) {
            match op {
                Op::Put {
                    seq,
                    hash,
                    record,
                    expires_at_ms,
                } => {
                    let (segment, offset) = self.append(shared, &record, Some(hash));
                    placed.push(Placed {
                        seq,
                        hash,
                        loc: Loc {
                            segment,
                            offset,
                            len: record.len() as u32,
                            expires_at_ms,
                            read: false,
                        },
                        flush: self.flushes,
                    });
                }
                Op::Tombstone { record, .. } => {
                    self.append(shared, &record, None);
                }
                Op::Clear { .. } => {
                    self.flush(shared);
                    self.clear(shared);
                }
            }
        }
        self.flush(shared);
        let mut st = shared.lock();
        for p in placed {
            if st.pending.get(&p.hash).is_none_or(|q| q.seq != p.seq) {
                // A later write, removal or clear of the key superseded this record.
                continue;
            }
            st.pending.remove(&p.hash);
            if self.failed.contains(&p.flush) {
                // Lost: neither this value nor the older one on disk may be served.
                st.remove_index(p.hash);
            } else {
                st.install(p.hash, p.loc);
            }
        }
        self.failed.clear();
    }

    /// Places `record` after everything else (in `buf`), starting a new segment when the
    /// active one is full; returns `(segment, offset)`.
    fn append(&mut self, shared: &Shared, record: &[u8], hash: Option<u128>) -> (u64, u64) {
        let used = self.active.size + self.buf.len() as u64;
        if used > 0 && used + record.len() as u64 > self.segment_size {
            self.flush(shared);
            self.roll(shared);
        }
        let offset = self.active.size + self.buf.len() as u64;
        self.buf.extend_from_slice(record);
        if let Some(hash) = hash {
            self.buf_keys.push((hash, offset));
        }
        (self.active.id, offset)
    }

    /// Writes `buf` to the end of the active segment.
    fn flush(&mut self, shared: &Shared) {
        if self.buf.is_empty() {
            return;
        }
        let len = self.buf.len() as u64;
        let file = &self.active.file;
        let res = file
            .write_all_at(&self.buf, self.active.size)
            .and_then(|()| if self.sync { file.sync_data() } else { Ok(()) });
        match res {
            Ok(()) => {
                self.active.size += len;
                self.total += len;
                self.active.keys.append(&mut self.buf_keys);
                shared.stats.add(Tier::L3, Counter::BytesWritten, len);
            }
            Err(e) => {
                tracing::warn!(segment = self.active.id, error = %e, "disk cache write failed");
                shared.stats.incr(Tier::L3, Counter::Errors);
                self.failed.push(self.flushes);
                self.buf_keys.clear();
                // Whatever part of it landed would read as a torn record on open.
                if let Err(e) = file.set_len(self.active.size) {
                    tracing::warn!(segment = self.active.id, error = %e, "cannot cut a failed write");
                }
            }
        }
        self.buf.clear();
        self.flushes += 1;
    }

    /// Seals the active segment and starts the next one (if it cannot, the active one
    /// grows past its nominal size).
    fn roll(&mut self, shared: &Shared) {
        match Segment::create(&self.dir, self.active.id + 1, self.sync) {
            Ok(next) => {
                shared.lock().files.insert(next.id, Arc::clone(&next.file));
                let full = std::mem::replace(&mut self.active, next);
                self.sealed.push_back(full);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a disk cache segment");
                shared.stats.incr(Tier::L3, Counter::Errors);
            }
        }
    }

    /// Deletes every segment (the index was emptied by `DiskCache::clear`).
    fn clear(&mut self, shared: &Shared) {
        self.roll(shared);
        let old: Vec<Segment> = self.sealed.drain(..).collect();
        let mut st = shared.lock();
        for s in &old {
            st.files.remove(&s.id);
        }
        drop(st);
        for s in old {
            self.total -= s.size;
            remove_quietly(&segment_path(&self.dir, s.id));
        }
    }

    /// Reclaims the oldest segments while the files exceed the budget: read entries are
    /// appended again (up to half the segment), the other live ones are evicted.
    fn reclaim(&mut self, shared: &Shared) {
        while self.total > self.capacity {
            let Some(victim) = self.sealed.pop_front() else {
                break;
            };
            let now = now_ms();
            let mut hot = Vec::new();
            {
                let mut st = shared.lock();
                let mut budget = victim.size / 2;
                for &(hash, offset) in &victim.keys {
                    let Some(loc) = st.index.get(&hash).copied() else {
                        continue;
                    };
                    if loc.segment != victim.id || loc.offset != offset {
                        continue;
                    }
                    let expired = is_expired(loc.expires_at_ms, now);
                    if loc.read && !expired && u64::from(loc.len) <= budget {
                        budget -= u64::from(loc.len);
                        hot.push((hash, loc));
                    } else {
                        st.remove_index(hash);
                        if !expired {
                            shared.stats.incr(Tier::L3, Counter::Evictions);
                        }
                    }
                }
            }
            let mut moved = Vec::with_capacity(hot.len());
            let mut record = Vec::new();
            for (hash, old) in hot {
                record.resize(old.len as usize, 0);
                let intact = victim.file.read_exact_at(&mut record, old.offset).is_ok()
                    && decode_record(&record).is_some_and(|r| xxh3_128(r.key) == hash);
                if intact {
                    let (segment, offset) = self.append(shared, &record, Some(hash));
                    let new = Loc {
                        segment,
                        offset,
                        read: false,
                        ..old
                    };
                    moved.push((hash, old, new, self.flushes));
                } else {
                    tracing::warn!(segment = victim.id, "corrupt disk cache entry dropped");
                    shared.corrupt();
                }
            }
            self.flush(shared);
            let mut st = shared.lock();
            for (hash, old, new, flush) in moved {
                if !self.failed.contains(&flush)
                    && st.index.get(&hash).is_some_and(|l| l.same_place(&old))
                {
                    st.index.insert(hash, new);
                }
            }
            for &(hash, offset) in &victim.keys {
                let at = Loc {
                    segment: victim.id,
                    offset,
                    len: 0,
                    expires_at_ms: 0,
                    read: false,
                };
                st.remove_if_at(hash, &at);
            }
            st.files.remove(&victim.id);
            drop(st);
            self.failed.clear();
            self.total -= victim.size;
            remove_quietly(&segment_path(&self.dir, victim.id));
        }
    }
}

/// Reads every segment in order: the surviving segments (torn tails cut off) and the index.
fn scan(dir: &Path, stats: &StatsCore) -> Result<(Vec<Segment>, HashMap<u128, Loc>), CacheError> {
    let read_err = |e| CacheError::io("read directory", dir, e);
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        match parse_segment_name(&path) {
            Some(id) => ids.push(id),
            None => remove_quietly(&path),
        }
    }
    ids.sort_unstable();
    let now = now_ms();
    let mut index: HashMap<u128, Loc> = HashMap::new();
    let mut segments = Vec::with_capacity(ids.len());
    let mut bytes = Vec::new();
    for id in ids {
        let path = segment_path(dir, id);
        let mut file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| CacheError::io("open segment", &path, e))?;
        bytes.clear();
        file.read_to_end(&mut bytes)
            .map_err(|e| CacheError::io("read segment", &path, e))?;
        let mut keys = Vec::new();
        let mut off = 0;
        while off < bytes.len() {
            let rest = &bytes[off..];
            let Some(h) = Header::parse(rest).filter(|h| h.total_len() <= rest.len() as u64) else {
                tracing::warn!(path = %path.display(), offset = off, "torn disk cache segment cut");
                stats.global(Global::Corrupt);
                stats.incr(Tier::L3, Counter::Errors);
                file.set_len(off as u64)
                    .map_err(|e| CacheError::io("truncate segment", &path, e))?;
                bytes.truncate(off);
                break;
            };
            let len = h.total_len() as usize;
            let record = &rest[..len];
            let loc = Loc {
                segment: id,
                offset: off as u64,
                len: len as u32,
                expires_at_ms: h.expires_at_ms,
                read: false,
            };
            off += len;
            let Some(r) = decode_record(record) else {
                tracing::warn!(path = %path.display(), offset = loc.offset, "corrupt disk cache entry dropped on open");
                stats.global(Global::Corrupt);
                stats.incr(Tier::L3, Counter::Errors);
                // Its key, if intact, must not fall back to an older record.
                index.remove(&xxh3_128(&record[HEADER..HEADER + h.key_len as usize]));
                if off == bytes.len() {
                    // The last record: a torn tail, cut off.
                    file.set_len(loc.offset)
                        .map_err(|e| CacheError::io("truncate segment", &path, e))?;
                    bytes.truncate(loc.offset as usize);
                }
                continue;
            };
            let hash = xxh3_128(r.key);
            if r.tombstone || is_expired(r.expires_at_ms, now) {
                index.remove(&hash);
            } else {
                index.insert(hash, loc);
                keys.push((hash, loc.offset));
            }
        }
        if bytes.is_empty() {
            drop(file);
            remove_quietly(&path);
            continue;
        }
        segments.push(Segment {
            id,
            file: Arc::new(file),
            size: bytes.len() as u64,
            keys,
        });
    }
    Ok((segments, index))
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.strip_suffix(SEGMENT_SUFFIX)?;
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[derive(Debug, Clone, Copy)]
struct Header {
    flags: u8,
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
            flags: b[5],
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

#[derive(Debug)]
struct Record<'a> {
    key: &'a [u8],
    value: &'a [u8],
    expires_at_ms: u64,
    tombstone: bool,
}

fn encode_record(key: &[u8], value: &[u8], expires_at_ms: u64, flags: u8) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER + key.len() + value.len());
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&[VERSION, flags, 0, 0]);
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

fn checksum(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[..24]);
    h.update(&record[28..]);
    h.finalize()
}

/// The record in `bytes`, or `None` if anything about it is wrong.
fn decode_record(bytes: &[u8]) -> Option<Record<'_>> {
    let h = Header::parse(bytes)?;
    if h.total_len() != bytes.len() as u64 || checksum(bytes) != h.crc {
        return None;
    }
    Some(split(bytes, &h))
}

/// The parts of a record this process encoded (nothing to verify).
fn split_record(bytes: &[u8]) -> Record<'_> {
    let h = Header::parse(bytes).expect("records are encoded with a valid header");
    split(bytes, &h)
}

fn split<'a>(bytes: &'a [u8], h: &Header) -> Record<'a> {
    let (key, value) = bytes[HEADER..].split_at(h.key_len as usize);
    Record {
        key,
        value,
        expires_at_ms: h.expires_at_ms,
        tombstone: h.flags & FLAG_TOMBSTONE != 0,
    }
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
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn open(dir: &Path, capacity: u64) -> DiskCache {
        DiskCache::open(dir, capacity, false, Arc::new(StatsCore::default())).expect("opens")
    }

    fn value(d: &DiskCache, key: &[u8]) -> Option<Vec<u8>> {
        d.get(key).expect("get").map(|h| h.value)
    }

    /// Bytes of the segment files now (what the capacity bounds).
    fn disk_bytes(dir: &Path) -> u64 {
        fs::read_dir(dir.join("segments"))
            .expect("segments")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .sum()
    }

    fn newest_segment(dir: &Path) -> PathBuf {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir.join("segments"))
            .expect("segments")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.metadata().expect("metadata").len() > 0)
            .collect();
        paths.sort();
        paths.pop().expect("a non-empty segment")
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
            // Read right after the write, whether or not the writer got to it yet.
            assert_eq!(value(&d, b"k1").as_deref(), Some(&b"v1"[..]));
            assert_eq!(d.usage().0, 2);
            d.flush().expect("flush");
            assert_eq!(value(&d, b"k1").as_deref(), Some(&b"v1"[..]));
            let stored = d.usage().1;
            assert_eq!(stored, 2 * (HEADER as u64 + 4));
        }
        let d = open(dir.path(), 1 << 20);
        assert_eq!(d.usage().0, 2);
        let hit = d.get(b"k2").expect("get").expect("hit after reopen");
        assert_eq!(hit.value, b"v2");
        assert!(hit.expires_at_ms.is_some());
        assert!(d.get(b"nope").expect("get").is_none());
        assert!(d.remove(b"k1").expect("remove"));
        assert!(!d.remove(b"k1").expect("remove"), "already gone");
        assert!(d.get(b"k1").expect("get").is_none());
        d.clear().expect("clear");
        assert_eq!(d.usage(), (0, 0));
        assert!(d.get(b"k2").expect("get").is_none());
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
    fn overwrites_win_in_memory_and_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let d = open(dir.path(), 1 << 20);
            d.put(b"k", b"old", None).expect("put");
            d.flush().expect("flush");
            d.put(b"k", b"new", None).expect("put");
            assert_eq!(value(&d, b"k").as_deref(), Some(&b"new"[..]));
        }
        let d = open(dir.path(), 1 << 20);
        assert_eq!(value(&d, b"k").as_deref(), Some(&b"new"[..]));
        assert_eq!(d.usage().0, 1);
    }

    #[test]
    fn capacity_reclaims_the_oldest_segment_and_reinserts_read_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(StatsCore::default());
        let record = (HEADER + 3 + 100) as u64;
        // Segments of four records, sixteen of them.
        let capacity = SEGMENTS_PER_CAPACITY * 4 * record;
        let d = DiskCache::open(dir.path(), capacity, false, Arc::clone(&stats)).expect("opens");
        let key = |i: u32| format!("{i:03}").into_bytes();
        for i in 0..64 {
            d.put(&key(i), &[7; 100], None).expect("put");
        }
        d.flush().expect("flush");
        assert_eq!(disk_bytes(dir.path()), capacity, "exactly full");
        assert!(value(&d, &key(1)).is_some(), "k1 is read: hot");
        d.put(&key(64), &[7; 100], None).expect("put");
        d.flush().expect("flush");
        // The first segment (k0..k3) went; k1 was appended again, the others evicted.
        assert!(value(&d, &key(0)).is_none());
        assert!(value(&d, &key(1)).is_some(), "reinserted");
        assert!(value(&d, &key(2)).is_none());
        assert!(value(&d, &key(4)).is_some());
        assert_eq!(stats.tier(Tier::L3).evictions, Some(3));
        assert_eq!(d.usage(), (62, 62 * record));
        assert!(disk_bytes(dir.path()) <= capacity);
        assert_eq!(stats.tier(Tier::L3).bytes_written, 66 * record);
        // Many more writes: the budget holds and the oldest keys go.
        for i in 100..300 {
            d.put(&key(i), &[1; 100], None).expect("put");
        }
        d.flush().expect("flush");
        assert!(disk_bytes(dir.path()) <= capacity);
        assert!(value(&d, &key(5)).is_none());
        assert!(value(&d, &key(299)).is_some());
        assert!(
            !d.put(b"big", &vec![0; capacity as usize], None)
                .expect("put"),
            "larger than the tier"
        );
        drop(d);
        let d = open(dir.path(), capacity);
        assert!(value(&d, &key(299)).is_some(), "kept across a restart");
        assert!(value(&d, &key(0)).is_none());
        // A smaller budget on reopen reclaims at once.
        drop(d);
        let d = open(dir.path(), capacity / 4);
        assert!(disk_bytes(dir.path()) <= capacity / 4);
        assert!(value(&d, &key(299)).is_some());
    }

    #[test]
    fn expired_entries_are_misses_now_and_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let d = open(dir.path(), 1 << 20);
            d.put(b"old", b"v", Some(now_ms().saturating_sub(1)))
                .expect("put");
            assert!(d.get(b"old").expect("get").is_none(), "pending, expired");
            d.put(b"soon", b"v", Some(now_ms() + 50)).expect("put");
            d.flush().expect("flush");
            assert!(d.get(b"old").expect("get").is_none());
            assert_eq!(d.usage().0, 1);
        }
        std::thread::sleep(std::time::Duration::from_millis(60));
        let d = open(dir.path(), 1 << 20);
        assert_eq!(d.usage(), (0, 0));
    }

    #[test]
    fn a_torn_tail_is_cut_off_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(StatsCore::default());
        {
            let d = open(dir.path(), 1 << 20);
            d.put(b"whole", b"value-bytes", None).expect("put");
            d.put(b"torn", b"value-bytes", None).expect("put");
        }
        let seg = newest_segment(dir.path());
        let len = seg.metadata().expect("metadata").len();
        File::options()
            .write(true)
            .open(&seg)
            .and_then(|f| f.set_len(len - 3))
            .expect("tear the last record");
        let d = DiskCache::open(dir.path(), 1 << 20, false, Arc::clone(&stats)).expect("opens");
        assert_eq!(value(&d, b"whole").as_deref(), Some(&b"value-bytes"[..]));
        assert!(d.get(b"torn").expect("get").is_none());
        assert_eq!(stats.global_sum(Global::Corrupt), 1);
        assert_eq!(stats.tier(Tier::L3).errors, 1);
        let whole = (HEADER + 5 + 11) as u64;
        assert_eq!(seg.metadata().expect("metadata").len(), whole, "cut");
        d.put(b"after", b"v", None).expect("put");
        drop(d);
        let d = open(dir.path(), 1 << 20);
        assert_eq!(d.usage().0, 2);
        assert!(value(&d, b"after").is_some());
    }

    #[test]
    fn a_bad_checksum_is_caught_on_read_and_stays_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(StatsCore::default());
        {
            let d = DiskCache::open(dir.path(), 1 << 20, false, Arc::clone(&stats)).expect("opens");
            d.put(b"flip", b"old-value", None).expect("put");
            d.flush().expect("flush");
            d.put(b"flip", b"value-bytes", None).expect("put");
            d.put(b"fine", b"value-bytes", None).expect("put");
            let (path, range) = d.value_location(b"flip").expect("flush").expect("on disk");
            let f = File::options().write(true).open(&path).expect("segment");
            f.write_all_at(b"X", range.start + 2)
                .expect("flip a value byte");
            assert!(d.get(b"flip").expect("get").is_none(), "never returned");
            assert_eq!(stats.global_sum(Global::Corrupt), 1);
            assert_eq!(stats.tier(Tier::L3).errors, 1);
            assert_eq!(d.usage().0, 1);
            assert!(d.get(b"flip").expect("get").is_none());
            assert_eq!(value(&d, b"fine").as_deref(), Some(&b"value-bytes"[..]));
        }
        // The older record of the key is not resurrected, and the record after the bad one
        // is still found.
        let d = open(dir.path(), 1 << 20);
        assert!(d.get(b"flip").expect("get").is_none());
        assert_eq!(value(&d, b"fine").as_deref(), Some(&b"value-bytes"[..]));
    }

    #[test]
    fn a_bad_checksum_found_on_open_hides_older_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(StatsCore::default());
        let (path, range) = {
            let d = open(dir.path(), 1 << 20);
            d.put(b"k", b"first", None).expect("put");
            d.flush().expect("flush");
            d.put(b"k", b"second", None).expect("put");
            d.put(b"other", b"v", None).expect("put");
            d.value_location(b"k").expect("flush").expect("on disk")
        };
        let f = File::options().write(true).open(&path).expect("segment");
        f.write_all_at(b"S", range.start)
            .expect("flip a value byte");
        let d = DiskCache::open(dir.path(), 1 << 20, false, Arc::clone(&stats)).expect("opens");
        assert!(d.get(b"k").expect("get").is_none(), "neither value");
        assert!(value(&d, b"other").is_some());
        assert_eq!(stats.global_sum(Global::Corrupt), 1);
    }

    #[test]
    fn removals_and_clear_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let d = open(dir.path(), 1 << 20);
            for k in [&b"a"[..], b"b", b"c"] {
                d.put(k, b"v", None).expect("put");
            }
            d.flush().expect("flush");
            assert!(d.remove(b"a").expect("remove"));
            // Removed while its write is still queued.
            d.put(b"q", b"v", None).expect("put");
            assert!(d.remove(b"q").expect("remove"));
            assert!(d.get(b"q").expect("get").is_none());
        }
        {
            let d = open(dir.path(), 1 << 20);
            assert!(d.get(b"a").expect("get").is_none());
            assert!(d.get(b"q").expect("get").is_none());
            assert!(value(&d, b"b").is_some());
            assert_eq!(d.usage().0, 2);
            d.clear().expect("clear");
            d.put(b"new", b"v", None).expect("put");
        }
        let d = open(dir.path(), 1 << 20);
        assert_eq!(d.usage().0, 1);
        assert!(d.get(b"b").expect("get").is_none());
        assert!(value(&d, b"new").is_some());
        assert_eq!(disk_bytes(dir.path()), (HEADER + 3 + 1) as u64);
    }

    #[test]
    fn a_burst_of_writes_is_readable_and_drains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = open(dir.path(), 64 << 20);
        for i in 0u32..20_000 {
            d.put(&i.to_le_bytes(), &[3; 64], None).expect("put");
        }
        d.flush().expect("flush");
        for i in (0u32..20_000).step_by(997) {
            assert_eq!(value(&d, &i.to_le_bytes()), Some(vec![3; 64]));
        }
        let st = d.shared.lock();
        assert_eq!(st.index.len(), 20_000);
        assert_eq!(st.queued_bytes, 0);
    }

    proptest! {
        #[test]
        fn records_round_trip_and_any_flip_is_caught(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::collection::vec(any::<u8>(), 0..256),
            tombstone in any::<bool>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let flags = if tombstone { FLAG_TOMBSTONE } else { 0 };
            let bytes = encode_record(&key, &value, 5, flags);
            let r = decode_record(&bytes).expect("valid");
            prop_assert_eq!(r.key, &key[..]);
            prop_assert_eq!(r.value, &value[..]);
            prop_assert_eq!(r.expires_at_ms, 5);
            prop_assert_eq!(r.tombstone, tombstone);
            let mut bad = bytes.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 0x10;
            prop_assert!(decode_record(&bad).is_none());
            prop_assert!(decode_record(&bytes[..bytes.len() - 1]).is_none());
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Put(u8, Vec<u8>),
        Remove(u8),
        Get(u8),
        Flush,
        Clear,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u8..8, proptest::collection::vec(any::<u8>(), 0..48))
                .prop_map(|(k, v)| Step::Put(k, v)),
            3 => (0u8..8).prop_map(Step::Remove),
            4 => (0u8..8).prop_map(Step::Get),
            1 => Just(Step::Flush),
            1 => Just(Step::Clear),
        ]
    }

    fn apply(
        d: &DiskCache,
        model: &mut HashMap<u8, Vec<u8>>,
        s: &Step,
    ) -> Result<(), TestCaseError> {
        match s {
            Step::Put(k, v) => {
                prop_assert!(d.put(&[*k], v, None).expect("put"));
                model.insert(*k, v.clone());
            }
            Step::Remove(k) => {
                let had = d.remove(&[*k]).expect("remove");
                prop_assert_eq!(had, model.remove(k).is_some());
            }
            Step::Get(k) => prop_assert_eq!(value(d, &[*k]), model.get(k).cloned()),
            Step::Flush => d.flush().expect("flush"),
            Step::Clear => {
                d.clear().expect("clear");
                model.clear();
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_a_map_across_a_reopen(
            before in proptest::collection::vec(step(), 0..40),
            after in proptest::collection::vec(step(), 0..40),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut model = HashMap::new();
            {
                let d = open(dir.path(), 1 << 20);
                for s in &before {
                    apply(&d, &mut model, s)?;
                }
            }
            let d = open(dir.path(), 1 << 20);
            for k in 0u8..8 {
                prop_assert_eq!(value(&d, &[k]), model.get(&k).cloned(), "key {} after reopen", k);
            }
            for s in &after {
                apply(&d, &mut model, s)?;
            }
            prop_assert_eq!(d.usage().0, model.len() as u64);
        }
    }
}
