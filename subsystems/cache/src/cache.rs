//! `MultiLevelCache`: the read path (L1, L2, L3 with promotion and miss coalescing), writes,
//! invalidation across processes and the pub/sub listener.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use moka::Expiry;
use moka::notification::RemovalCause;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OnceCell, watch};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::config::{CacheConfig, Codec, WritePolicy};
use crate::disk::{DiskCache, now_ms};
use crate::error::CacheError;
use crate::l2::{Message, RedisTier};
use crate::stats::{CacheStats, Counter, Global, L2State, StatsCore, Tier};
use crate::ttl::MLTtlPredictor;

/// Bytes added to an entry's encoded key and value when it is weighed for the L1 budget
/// (moka's per-entry bookkeeping, the hash map slot, the value's own header).
pub const ENTRY_OVERHEAD: u32 = 64;

/// What a cache key must be: serializable for L2/L3, hashable for L1.
pub trait CacheKey:
    Serialize + DeserializeOwned + Hash + Eq + Clone + Send + Sync + 'static
{
}
impl<T> CacheKey for T where
    T: Serialize + DeserializeOwned + Hash + Eq + Clone + Send + Sync + 'static
{
}

/// What a cache value must be: serializable for L2/L3, cloneable out of L1.
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T> CacheValue for T where T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

/// A three-tier cache: moka in memory (L1), Redis shared between processes (L2) and
/// checksummed files on local disk (L3). Cloning it is cheap and shares the tiers.
///
/// Reads try L1, then L2, then L3, and copy a lower-tier hit into the tiers above
/// (promotion); concurrent misses for one key share one lower-tier fetch. Writes follow
/// [`CacheConfig::write_policy`]. Redis failures never fail `get` or `insert`: the cache
/// serves from L1 and L3, counts the failures, and uses Redis again when it is back.
pub struct MultiLevelCache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for MultiLevelCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> std::fmt::Debug for MultiLevelCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiLevelCache")
            .field("l1_entries", &self.inner.l1_cache.entry_count())
            .field("redis", &self.inner.redis_client)
            .field("disk_path", &self.inner.config.disk_path)
            .field("ttl_prediction", &self.inner.ttl_predictor.is_some())
            .finish_non_exhaustive()
    }
}

type Flight<V> = Arc<OnceCell<Option<V>>>;

struct Inner<K, V> {
    l1_cache: moka::future::Cache<K, L1Value<V>>,
    redis_client: Option<Arc<RedisTier>>,
    disk_cache: Option<Arc<DiskCache>>,
    ttl_predictor: Option<Arc<MLTtlPredictor>>,
    config: CacheConfig,
    stats: Arc<StatsCore>,
    /// Bumped by every insert and invalidation, local or remote: a fetch that saw another
    /// value of this counter when it started does not promote what it read into L1.
    generation: AtomicU64,
    /// L1 runs without moka's expiry; `get` drops entries past their deadline.
    lazy_deadlines: bool,
    inflight: Mutex<HashMap<K, Flight<V>>>,
    subscribed: watch::Receiver<bool>,
    /// Dropped with the cache, which stops the pub/sub listener.
    _shutdown: watch::Sender<()>,
}

/// An L1 entry: the value and what the expiry policy and the weigher need.
#[derive(Clone)]
struct L1Value<V> {
    value: V,
    /// xxh3 of the encoded key: the TTL model's key.
    hash: u64,
    weight: u32,
    /// Absolute end of life (an explicit TTL, or the remaining lifetime in a lower tier).
    deadline: Option<Instant>,
}

impl<K: CacheKey, V: CacheValue> MultiLevelCache<K, V> {
    /// Opens the tiers the configuration names: L1 always, L2 when `redis_url` is not empty
    /// (connected lazily; this must then run inside a tokio runtime), L3 when `disk_path` is
    /// not empty (its index is rebuilt from the files there).
    pub fn new(config: CacheConfig) -> Result<Self, CacheError> {
        config.validate()?;
        let stats = Arc::new(StatsCore::default());
        let ttl_predictor = if config.enable_ttl_prediction {
            Some(Arc::new(MLTtlPredictor::new(config.ttl_model)?))
        } else {
            None
        };
        let disk_cache = if config.disk_path.as_os_str().is_empty() {
            None
        } else {
            Some(Arc::new(DiskCache::open(
                &config.disk_path,
                config.l3_capacity,
                config.l3_sync,
                Arc::clone(&stats),
            )?))
        };
        let runtime = if config.redis_url.is_empty() {
            None
        } else {
            Some(tokio::runtime::Handle::try_current().map_err(|_| CacheError::NoRuntime)?)
        };
        let redis_client = match runtime {
            Some(_) => Some(Arc::new(RedisTier::new(
                &config,
                instance_id(),
                Arc::clone(&stats),
            )?)),
            None => None,
        };
        let l1_cache = build_l1(
            &config,
            ttl_predictor.clone(),
            disk_cache.clone(),
            Arc::clone(&stats),
        );
        let (shutdown, shutdown_rx) = watch::channel(());
        let (subscribed_tx, subscribed) = watch::channel(false);
        let lazy_deadlines = !uses_expiry(&config);
        let inner = Arc::new(Inner {
            lazy_deadlines,
            l1_cache,
            redis_client,
            disk_cache,
            ttl_predictor,
            config,
            stats,
            generation: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            subscribed,
            _shutdown: shutdown,
        });
        if let (Some(rt), Some(l2)) = (runtime, &inner.redis_client) {
            rt.spawn(listen(
                Arc::downgrade(&inner),
                Arc::clone(l2),
                shutdown_rx,
                subscribed_tx,
            ));
        }
        Ok(Self { inner })
    }

    /// Waits until the Redis tier is connected and subscribed to invalidations (at most
    /// `timeout`). Immediately `Ok` without a Redis tier.
    pub async fn ready(&self, timeout: Duration) -> Result<(), CacheError> {
        if self.inner.redis_client.is_none() {
            return Ok(());
        }
        let mut rx = self.inner.subscribed.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|s| *s)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CacheError::NotReady(timeout)),
        }
    }

    /// The value of `key`, from the highest tier that has it.
    pub fn get<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Result<Option<V>, CacheError>> + 'a {
        // Whether this lookup is timed is settled here, before the future exists (so a
        // timed lookup counts from the call): work ahead of the first await inside the
        // async body cost every L1 hit about 17 ns in the `l1_get` bench.
        let timed = sample_now(self.inner.config.l1_latency_sample_every);
        self.lookup(key, timed)
    }

    /// `get` from L1 down; `timed` is when the call began, for a lookup that is timed.
    async fn lookup(&self, key: &K, timed: Option<Instant>) -> Result<Option<V>, CacheError> {
        let inner = &*self.inner;
        let hit = inner.l1_cache.get(key).await;
        if let Some(t) = timed {
            inner.stats.latency(Tier::L1, t.elapsed());
        }
        let expired = match hit {
            Some(v)
                if !(inner.lazy_deadlines && v.deadline.is_some_and(|d| d <= Instant::now())) =>
            {
                inner.stats.incr(Tier::L1, Counter::Hits);
                return Ok(Some(v.value));
            }
            hit => hit.is_some(),
        };
        // Boxed: the lower tiers' futures are several times the size of moka's, and an
        // unboxed await would make every L1 hit carry (and move) that much state.
        Box::pin(self.get_below_l1(key, expired)).await
    }

    /// The rest of `get` after an L1 miss (or an L1 entry found past its deadline).
    async fn get_below_l1(&self, key: &K, expired: bool) -> Result<Option<V>, CacheError> {
        let inner = &*self.inner;
        if expired {
            inner.l1_cache.invalidate(key).await;
        }
        inner.stats.incr(Tier::L1, Counter::Misses);
        if inner.redis_client.is_none() && inner.disk_cache.is_none() {
            if let Some(p) = &inner.ttl_predictor {
                let key_bytes = inner.config.codec.encode(key, "key")?;
                p.observe(xxh3_64(&key_bytes), Instant::now());
            }
            return Ok(None);
        }
        self.fetch_coalesced(key).await
    }

    /// Stores `value` under `key` with the tiers' default TTLs (or the predicted ones).
    pub async fn insert(&self, key: K, value: V) -> Result<(), CacheError> {
        self.insert_inner(key, value, None).await
    }

    /// Stores `value` under `key` for at most `ttl` in every tier.
    pub async fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), CacheError> {
        if ttl.is_zero() {
            return Err(CacheError::InvalidConfig("ttl must be positive".to_owned()));
        }
        self.insert_inner(key, value, Some(ttl)).await
    }

    /// Removes `key` from every tier and tells the other caches on the same Redis to drop
    /// their copies. The local tiers are cleared even when it fails; an error means Redis
    /// (or the disk) could not be reached, so other processes may still hold the old value.
    pub async fn invalidate(&self, key: &K) -> Result<(), CacheError> {
        let inner = &*self.inner;
        inner.generation.fetch_add(1, Ordering::AcqRel);
        inner.l1_cache.invalidate(key).await;
        let key_bytes = inner.config.codec.encode(key, "key")?;
        let mut first_err = None;
        if let Some(disk) = &inner.disk_cache
            && let Err(e) = disk.remove(&key_bytes)
        {
            inner.stats.incr(Tier::L3, Counter::Errors);
            first_err = Some(e);
        }
        if let Some(l2) = &inner.redis_client
            && let Err(e) = l2.del(&key_bytes).await
        {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Removes every entry of this cache's namespace from every tier, here and (through
    /// Redis) in the other caches. Errors as for [`MultiLevelCache::invalidate`].
    pub async fn clear(&self) -> Result<(), CacheError> {
        let inner = &*self.inner;
        inner.generation.fetch_add(1, Ordering::AcqRel);
        inner.l1_cache.invalidate_all();
        let mut first_err = None;
        if let Some(disk) = &inner.disk_cache
            && let Err(e) = disk.clear()
        {
            inner.stats.incr(Tier::L3, Counter::Errors);
            first_err = Some(e);
        }
        if let Some(l2) = &inner.redis_client
            && let Err(e) = l2.clear().await
        {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Counters, sizes and latencies of every tier.
    pub fn stats(&self) -> CacheStats {
        let inner = &*self.inner;
        let s = &inner.stats;
        let mut l1 = s.tier(Tier::L1);
        l1.entries = Some(inner.l1_cache.entry_count());
        l1.bytes_stored = Some(inner.l1_cache.weighted_size());
        let mut l2 = s.tier(Tier::L2);
        l2.evictions = None;
        let mut l3 = s.tier(Tier::L3);
        if let Some(d) = &inner.disk_cache {
            let (entries, bytes) = d.usage();
            l3.entries = Some(entries);
            l3.bytes_stored = Some(bytes);
        }
        CacheStats {
            l1,
            l2,
            l3,
            lower_tier_fetches: s.global_sum(Global::LowerFetches),
            coalesced_misses: s.global_sum(Global::Coalesced),
            l3_corrupt_entries: s.global_sum(Global::Corrupt),
            l2_state: inner
                .redis_client
                .as_ref()
                .map_or(L2State::Disabled, |l2| l2.state()),
            l2_recoveries: s.global_sum(Global::Recoveries),
            remote_invalidations: s.global_sum(Global::RemoteInvalidations),
            subscription_gaps: s.global_sum(Global::Gaps),
        }
    }

    /// Whether L1 holds `key` now (does not count as a read).
    pub fn contains_in_l1(&self, key: &K) -> bool {
        self.inner.l1_cache.contains_key(key)
    }

    /// Waits until every write queued for the disk tier so far is on disk, then returns the
    /// segment file holding `key`'s entry and the byte range of its value there (`None`
    /// without a disk tier or such an entry). For tests that corrupt an entry on disk.
    #[doc(hidden)]
    pub fn disk_value_location(
        &self,
        key: &K,
    ) -> Result<Option<(PathBuf, Range<u64>)>, CacheError> {
        let Some(disk) = &self.inner.disk_cache else {
            return Ok(None);
        };
        let key_bytes = self.inner.config.codec.encode(key, "key")?;
        disk.value_location(&key_bytes)
    }

    /// Runs L1's pending maintenance (evictions, expirations) and waits until the disk
    /// tier has written everything queued so far, so sizes and byte counts in `stats` are
    /// exact.
    pub async fn run_pending_tasks(&self) {
        self.inner.l1_cache.run_pending_tasks().await;
        if let Some(disk) = &self.inner.disk_cache {
            let disk = Arc::clone(disk);
            // The wait blocks a thread; keep it off the runtime's workers.
            let res = tokio::task::spawn_blocking(move || disk.flush()).await;
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, "disk tier flush failed");
                self.inner.stats.incr(Tier::L3, Counter::Errors);
            }
        }
    }

    /// The TTL model, when `enable_ttl_prediction` is on.
    pub fn ttl_predictor(&self) -> Option<&MLTtlPredictor> {
        self.inner.ttl_predictor.as_deref()
    }

    /// The configuration the cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    async fn insert_inner(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let inner = &*self.inner;
        let codec = inner.config.codec;
        let key_bytes = codec.encode(&key, "key")?;
        let value_bytes = codec.encode(&value, "value")?;
        let hash = xxh3_64(&key_bytes);
        inner.generation.fetch_add(1, Ordering::AcqRel);
        let predicted = inner
            .ttl_predictor
            .as_ref()
            .map(|p| p.predict_lower_tier(hash));
        let lower_ttl = |tier: Option<Duration>| min_opt(min_opt(ttl, tier), predicted);
        if let Some(disk) = &inner.disk_cache {
            let res = match inner.config.write_policy {
                WritePolicy::WriteThrough => {
                    let expires = lower_ttl(inner.config.l3_ttl).map(expiry_ms);
                    disk.put(&key_bytes, &value_bytes, expires).map(drop)
                }
                // The disk copy, if any, is older than this value.
                WritePolicy::L3OnEvict => disk.remove(&key_bytes).map(drop),
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, "disk tier write failed");
                inner.stats.incr(Tier::L3, Counter::Errors);
            }
        }
        if let Some(l2) = &inner.redis_client
            && let Err(e) = l2
                .set(
                    &key_bytes,
                    &value_bytes,
                    lower_ttl(inner.config.l2_ttl),
                    true,
                )
                .await
        {
            tracing::debug!(error = %e, "redis tier write skipped");
        }
        let weight = weigh(&key_bytes, &value_bytes);
        inner
            .stats
            .add(Tier::L1, Counter::BytesWritten, u64::from(weight));
        inner
            .l1_cache
            .insert(
                key,
                L1Value {
                    value,
                    hash,
                    weight,
                    deadline: ttl.map(|t| Instant::now() + t),
                },
            )
            .await;
        Ok(())
    }

    /// One lower-tier fetch per key at a time: later callers wait for the first one's result.
    async fn fetch_coalesced(&self, key: &K) -> Result<Option<V>, CacheError> {
        let flight: Flight<V> =
            Arc::clone(self.inner.lock_inflight().entry(key.clone()).or_default());
        let mut led = false;
        let res = flight
            .get_or_try_init(|| {
                led = true;
                self.fetch_lower(key)
            })
            .await
            .cloned();
        if !led {
            self.inner.stats.global(Global::Coalesced);
        }
        let mut map = self.inner.lock_inflight();
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            map.remove(key);
        }
        res
    }

    async fn fetch_lower(&self, key: &K) -> Result<Option<V>, CacheError> {
        let inner = &*self.inner;
        inner.stats.global(Global::LowerFetches);
        let generation = inner.generation.load(Ordering::Acquire);
        let codec = inner.config.codec;
        let key_bytes = codec.encode(key, "key")?;
        let hash = xxh3_64(&key_bytes);
        if let Some(p) = &inner.ttl_predictor {
            p.observe(hash, Instant::now());
        }
        let mut l2_missed = false;
        if let Some(l2) = &inner.redis_client {
            let t = Instant::now();
            match l2.get(&key_bytes).await {
                Ok(Some((bytes, remaining))) => {
                    inner.stats.latency(Tier::L2, t.elapsed());
                    match codec.decode::<V>(&bytes, "value") {
                        Ok(v) => {
                            inner.stats.incr(Tier::L2, Counter::Hits);
                            let weight = weigh(&key_bytes, &bytes);
                            self.promote(key, &v, hash, weight, remaining, generation)
                                .await;
                            return Ok(Some(v));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "undecodable value in redis ignored");
                            inner.stats.incr(Tier::L2, Counter::Errors);
                        }
                    }
                }
                Ok(None) => {
                    inner.stats.latency(Tier::L2, t.elapsed());
                    inner.stats.incr(Tier::L2, Counter::Misses);
                    l2_missed = true;
                }
                Err(CacheError::RedisUnavailable { .. }) => {}
                Err(e) => {
                    inner.stats.latency(Tier::L2, t.elapsed());
                    tracing::debug!(error = %e, "redis tier read failed");
                }
            }
        }
        let Some(disk) = &inner.disk_cache else {
            return Ok(None);
        };
        let t = Instant::now();
        let res = disk.get(&key_bytes);
        inner.stats.latency(Tier::L3, t.elapsed());
        match res {
            Ok(Some(hit)) => match codec.decode::<V>(&hit.value, "value") {
                Ok(v) => {
                    inner.stats.incr(Tier::L3, Counter::Hits);
                    let remaining = hit
                        .expires_at_ms
                        .map(|ms| Duration::from_millis(ms.saturating_sub(now_ms())));
                    let weight = weigh(&key_bytes, &hit.value);
                    self.promote(key, &v, hash, weight, remaining, generation)
                        .await;
                    if l2_missed && let Some(l2) = &inner.redis_client {
                        self.promote_to_l2(l2, key_bytes, hit.value, remaining);
                    }
                    Ok(Some(v))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable disk entry dropped");
                    inner.stats.incr(Tier::L3, Counter::Errors);
                    if let Err(e) = disk.remove(&key_bytes) {
                        tracing::warn!(error = %e, "cannot drop disk entry");
                    }
                    Ok(None)
                }
            },
            Ok(None) => {
                inner.stats.incr(Tier::L3, Counter::Misses);
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "disk tier read failed");
                inner.stats.incr(Tier::L3, Counter::Errors);
                Ok(None)
            }
        }
    }

    /// Copies a lower-tier hit into L1, unless an insert or invalidation happened since the
    /// fetch started (it may have made `value` stale) or L1 got a value meanwhile.
    async fn promote(
        &self,
        key: &K,
        value: &V,
        hash: u64,
        weight: u32,
        remaining: Option<Duration>,
        generation: u64,
    ) {
        let inner = &*self.inner;
        if remaining.is_some_and(|r| r.is_zero())
            || inner.generation.load(Ordering::Acquire) != generation
        {
            return;
        }
        let entry = L1Value {
            value: value.clone(),
            hash,
            weight,
            deadline: remaining.map(|r| Instant::now() + r),
        };
        if inner
            .l1_cache
            .entry(key.clone())
            .or_insert(entry)
            .await
            .is_fresh()
        {
            inner.stats.incr(Tier::L1, Counter::Promotions);
        }
    }

    /// Writes an L3 hit back to Redis in the background (L2 missed it, so the next
    /// process asks Redis, not its own disk).
    fn promote_to_l2(
        &self,
        l2: &Arc<RedisTier>,
        key_bytes: Vec<u8>,
        value: Vec<u8>,
        remaining: Option<Duration>,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let ttl = min_opt(remaining, self.inner.config.l2_ttl);
        let l2 = Arc::clone(l2);
        let stats = Arc::clone(&self.inner.stats);
        rt.spawn(async move {
            if l2.set(&key_bytes, &value, ttl, false).await.is_ok() {
                stats.incr(Tier::L2, Counter::Promotions);
            }
        });
    }
}

impl<K: CacheKey, V: CacheValue> Inner<K, V> {
    fn lock_inflight(&self) -> MutexGuard<'_, HashMap<K, Flight<V>>> {
        // Only inserts and removals happen under this lock; a poisoned map is still valid.
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies an invalidation message of another cache.
    async fn apply_remote(&self, l2: &RedisTier, payload: &[u8]) {
        let Some(message) = l2.decode_message(payload) else {
            return;
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.stats.global(Global::RemoteInvalidations);
        match message {
            Message::Invalidate(key_bytes) => {
                match self.config.codec.decode::<K>(&key_bytes, "key") {
                    Ok(key) => self.l1_cache.invalidate(&key).await,
                    // A key this process cannot decode (another key type on the same
                    // namespace): drop everything rather than keep a stale entry.
                    Err(_) => self.l1_cache.invalidate_all(),
                }
                if let Some(disk) = &self.disk_cache
                    && let Err(e) = disk.remove(&key_bytes)
                {
                    tracing::warn!(error = %e, "cannot drop invalidated disk entry");
                    self.stats.incr(Tier::L3, Counter::Errors);
                }
            }
            Message::Clear => {
                self.l1_cache.invalidate_all();
                if let Some(disk) = &self.disk_cache
                    && let Err(e) = disk.clear()
                {
                    tracing::warn!(error = %e, "cannot clear disk tier");
                    self.stats.incr(Tier::L3, Counter::Errors);
                }
            }
        }
    }

    /// The subscription was lost and is back: invalidations published meanwhile were
    /// missed, so nothing in L1 can be trusted.
    fn subscription_gap(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.l1_cache.invalidate_all();
        self.stats.global(Global::Gaps);
    }
}

/// The pub/sub listener: subscribes, applies other caches' invalidations, and after a lost
/// subscription reconnects (with backoff) and flushes L1.
async fn listen<K: CacheKey, V: CacheValue>(
    inner: Weak<Inner<K, V>>,
    l2: Arc<RedisTier>,
    mut shutdown: watch::Receiver<()>,
    subscribed: watch::Sender<bool>,
) {
    const MIN_BACKOFF: Duration = Duration::from_millis(20);
    let max_backoff = inner
        .upgrade()
        .map_or(MIN_BACKOFF, |i| i.config.l2_retry_interval)
        .max(MIN_BACKOFF);
    let mut backoff = MIN_BACKOFF;
    let mut first = true;
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => return,
            s = l2.subscribe() => s,
        };
        match stream {
            Ok(mut stream) => {
                backoff = MIN_BACKOFF;
                if !first {
                    let Some(i) = inner.upgrade() else { return };
                    i.subscription_gap();
                }
                first = false;
                subscribed.send_replace(true);
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        msg = stream.next() => {
                            let Some(msg) = msg else { break };
                            let Some(i) = inner.upgrade() else { return };
                            i.apply_remote(&l2, msg.get_payload_bytes()).await;
                        }
                    }
                }
                subscribed.send_replace(false);
                tracing::warn!("invalidation subscription lost, reconnecting");
            }
            Err(e) => tracing::debug!(error = %e, "cannot subscribe to invalidations"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

fn build_l1<K: CacheKey, V: CacheValue>(
    config: &CacheConfig,
    predictor: Option<Arc<MLTtlPredictor>>,
    disk: Option<Arc<DiskCache>>,
    stats: Arc<StatsCore>,
) -> moka::future::Cache<K, L1Value<V>> {
    let evict_to = match config.write_policy {
        WritePolicy::L3OnEvict => disk,
        WritePolicy::WriteThrough => None,
    };
    let codec = config.codec;
    let l3_ttl = config.l3_ttl;
    let listener_predictor = predictor.clone();
    let mut builder = moka::future::Cache::builder()
        .max_capacity(config.l1_capacity)
        .weigher(|_k: &K, v: &L1Value<V>| v.weight);
    if uses_expiry(config) {
        builder = builder.expire_after(L1Expiry {
            predictor,
            default_ttl: config.l1_ttl,
        });
    }
    builder
        .eviction_listener(move |key: Arc<K>, v: L1Value<V>, cause: RemovalCause| {
            if cause.was_evicted() {
                stats.incr(Tier::L1, Counter::Evictions);
            }
            if cause == RemovalCause::Size
                && let Some(disk) = &evict_to
            {
                let lower = listener_predictor
                    .as_ref()
                    .map(|p| p.predict_lower_tier(v.hash));
                let remaining = v
                    .deadline
                    .map(|d| d.saturating_duration_since(Instant::now()));
                let ttl = min_opt(min_opt(remaining, l3_ttl), lower);
                let res = encode_pair(codec, &*key, &v.value)
                    .and_then(|(k, val)| disk.put(&k, &val, ttl.map(expiry_ms)));
                if let Err(e) = res {
                    tracing::warn!(error = %e, "write of an evicted entry to disk failed");
                    stats.incr(Tier::L3, Counter::Errors);
                }
            }
        })
        .build()
}

/// Whether L1 needs moka's per-entry expiry (a fixed L1 TTL or the TTL model). Without it
/// the only deadlines are explicit TTLs and lifetimes inherited from a lower tier, which
/// `get` checks on read: a hit then costs no timer-wheel update.
fn uses_expiry(config: &CacheConfig) -> bool {
    config.enable_ttl_prediction || config.l1_ttl.is_some()
}

/// L1 expiry: the explicit or inherited deadline, and either the fixed `l1_ttl` or the
/// model's idle TTL, which every read refreshes.
struct L1Expiry {
    predictor: Option<Arc<MLTtlPredictor>>,
    default_ttl: Option<Duration>,
}

impl L1Expiry {
    fn ttl<V>(&self, v: &L1Value<V>, now: Instant) -> Option<Duration> {
        let policy = match &self.predictor {
            Some(p) => min_opt(Some(p.predict(v.hash)), self.default_ttl),
            None => self.default_ttl,
        };
        min_opt(policy, v.deadline.map(|d| d.saturating_duration_since(now)))
    }
}

impl<K, V> Expiry<K, L1Value<V>> for L1Expiry {
    fn expire_after_create(&self, _: &K, v: &L1Value<V>, created_at: Instant) -> Option<Duration> {
        self.ttl(v, created_at)
    }

    fn expire_after_read(
        &self,
        _: &K,
        v: &L1Value<V>,
        read_at: Instant,
        remaining: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        match &self.predictor {
            Some(p) => {
                p.observe(v.hash, read_at);
                self.ttl(v, read_at)
            }
            None => remaining,
        }
    }

    fn expire_after_update(
        &self,
        _: &K,
        v: &L1Value<V>,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.ttl(v, updated_at)
    }
}

fn encode_pair<K: Serialize, V: Serialize>(
    codec: Codec,
    key: &K,
    value: &V,
) -> Result<(Vec<u8>, Vec<u8>), CacheError> {
    Ok((codec.encode(key, "key")?, codec.encode(value, "value")?))
}

fn weigh(key: &[u8], value: &[u8]) -> u32 {
    u32::try_from(key.len() + value.len())
        .unwrap_or(u32::MAX)
        .saturating_add(ENTRY_OVERHEAD)
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Unix milliseconds `ttl` from now.
fn expiry_ms(ttl: Duration) -> u64 {
    now_ms().saturating_add(ttl.as_millis() as u64)
}

thread_local! {
    static L1_TICK: Cell<u32> = const { Cell::new(0) };
}

/// `Some(now)` for one call in `every` on this thread: which L1 lookups are timed.
fn sample_now(every: u32) -> Option<Instant> {
    L1_TICK.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n.is_multiple_of(every).then(Instant::now)
    })
}

/// A process-unique id for this cache, so it can ignore its own invalidation messages.
fn instance_id() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut seed = Vec::with_capacity(40);
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    seed.extend_from_slice(&now_ms().to_le_bytes());
    seed.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let here = Instant::now();
    seed.extend_from_slice(format!("{here:?}").as_bytes());
    xxh3_128(&seed).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l1_only() -> CacheConfig {
        CacheConfig {
            l1_capacity: 1 << 20,
            ..CacheConfig::default()
        }
    }

    #[test]
    fn the_cache_and_its_futures_can_move_between_threads() {
        fn send<T: Send>(_: &T) {}
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MultiLevelCache<String, Vec<u8>>>();
        let cache = MultiLevelCache::<String, Vec<u8>>::new(l1_only()).expect("cache");
        let key = "k".to_owned();
        // Built, not polled: what `tokio::spawn` needs of them.
        send(&cache.get(&key));
        send(&cache.insert(key.clone(), vec![1]));
        send(&cache.invalidate(&key));
    }

    #[tokio::test]
    async fn l1_round_trip_invalidate_and_clear() {
        let cache = MultiLevelCache::<String, Vec<u32>>::new(l1_only()).expect("cache");
        assert_eq!(cache.get(&"a".to_owned()).await.expect("get"), None);
        cache
            .insert("a".to_owned(), vec![1, 2])
            .await
            .expect("insert");
        cache.insert("b".to_owned(), vec![3]).await.expect("insert");
        assert_eq!(
            cache.get(&"a".to_owned()).await.expect("get"),
            Some(vec![1, 2])
        );
        cache.invalidate(&"a".to_owned()).await.expect("invalidate");
        assert_eq!(cache.get(&"a".to_owned()).await.expect("get"), None);
        cache.clear().await.expect("clear");
        assert_eq!(cache.get(&"b".to_owned()).await.expect("get"), None);
        let s = cache.stats();
        assert_eq!((s.l1.hits, s.l1.misses), (1, 3));
        assert_eq!(s.l2_state, L2State::Disabled);
        assert_eq!(s.lower_tier_fetches, 0);
    }

    #[tokio::test]
    async fn l1_is_weighed_in_bytes() {
        let cache = MultiLevelCache::<u32, Vec<u8>>::new(CacheConfig {
            l1_capacity: 10 * (1024 + 64 + 8),
            ..CacheConfig::default()
        })
        .expect("cache");
        for k in 0..100u32 {
            cache.insert(k, vec![0; 1024]).await.expect("insert");
        }
        cache.run_pending_tasks().await;
        let s = cache.stats();
        assert!(s.l1.entries.expect("known") <= 10, "{s:?}");
        assert!(s.l1.bytes_stored.expect("known") <= 10 * (1024 + 64 + 8));
        assert!(s.l1.evictions.expect("known") >= 90);
    }

    #[tokio::test]
    async fn explicit_ttl_expires_from_l1() {
        let cache = MultiLevelCache::<u32, u32>::new(l1_only()).expect("cache");
        cache
            .insert_with_ttl(1, 1, Duration::from_millis(30))
            .await
            .expect("insert");
        cache.insert(2, 2).await.expect("insert");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            cache.contains_in_l1(&1),
            "a lapsed entry stays in L1 until a read drops it"
        );
        assert_eq!(cache.get(&1).await.expect("get"), None);
        assert!(!cache.contains_in_l1(&1));
        assert_eq!(cache.get(&2).await.expect("get"), Some(2));
        let s = cache.stats();
        assert_eq!((s.l1.hits, s.l1.misses), (1, 1), "{s:?}");
        assert!(cache.insert_with_ttl(3, 3, Duration::ZERO).await.is_err());
    }

    #[test]
    fn sampling_times_one_in_n() {
        let timed = (0..64).filter(|_| sample_now(16).is_some()).count();
        assert_eq!(timed, 4);
        assert!(min_opt(None, None).is_none());
        assert_eq!(
            min_opt(Some(Duration::from_secs(1)), Some(Duration::from_secs(2))),
            Some(Duration::from_secs(1))
        );
        assert_ne!(instance_id(), instance_id());
    }

    #[test]
    fn a_redis_tier_needs_a_runtime() {
        let err = MultiLevelCache::<u32, u32>::new(CacheConfig {
            redis_url: "redis://127.0.0.1:1".to_owned(),
            ..CacheConfig::default()
        })
        .expect_err("no runtime");
        assert!(matches!(err, CacheError::NoRuntime), "{err}");
    }
}
