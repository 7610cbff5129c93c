//! `RedisTier`: the L2 tier over a reconnecting `ConnectionManager`, with a time limit on
//! every command, a failure breaker, pipelined writes and the invalidation channel.
//!
//! Keys are `<namespace>:<encoded key>` (Redis keys are binary-safe). Every write and delete
//! is pipelined with a `PUBLISH` on `<namespace>:__invalidate` carrying this instance's id
//! and the encoded key, so that other processes drop their L1 copy; a lookup pipelines
//! `GET` with `PTTL`, so a promoted entry keeps its remaining Redis lifetime.
//!
//! Degradation: each command runs under `redis_timeout`. After `l2_failure_threshold`
//! consecutive failures the tier is marked down and skipped (calls go straight to L3) until
//! `l2_retry_interval` has passed; then one call probes it. The `ConnectionManager`
//! reconnects in the background after a connection error, so the probe after Redis comes
//! back succeeds and the tier is up again.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubStream};

use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::stats::{Counter, Global, L2State, StatsCore, Tier};

/// What an invalidation message asks of the other caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Drop the entry of this encoded key.
    Invalidate(Vec<u8>),
    /// Drop everything.
    Clear,
}

const KIND_INVALIDATE: u8 = b'I';
const KIND_CLEAR: u8 = b'C';
/// Keys deleted per `SCAN` round of `clear`.
const SCAN_COUNT: usize = 1000;

/// The Redis tier.
pub(crate) struct RedisTier {
    client: redis::Client,
    conn: ConnectionManager,
    timeout: Duration,
    connect_timeout: Duration,
    breaker: Breaker,
    prefix: Vec<u8>,
    channel: String,
    instance: [u8; 16],
    stats: Arc<StatsCore>,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A tier for `config.redis_url`; connects lazily (must run inside a tokio runtime).
    pub(crate) fn new(
        config: &CacheConfig,
        instance: [u8; 16],
        stats: Arc<StatsCore>,
    ) -> Result<Self, CacheError> {
        let client =
            redis::Client::open(config.redis_url.as_str()).map_err(|source| CacheError::Redis {
                operation: "parse url",
                source,
            })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_connect_timeout))
            .set_response_timeout(Some(config.redis_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(config.l2_retry_interval.max(Duration::from_millis(20)));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|source| CacheError::Redis {
                operation: "create connection manager",
                source,
            })?;
        Ok(Self {
            client,
            conn,
            timeout: config.redis_timeout,
            connect_timeout: config.redis_connect_timeout,
            breaker: Breaker::new(config.l2_failure_threshold, config.l2_retry_interval),
            prefix: format!("{}:", config.namespace).into_bytes(),
            channel: format!("{}:__invalidate", config.namespace),
            instance,
            stats,
        })
    }

    /// The Redis key of an encoded cache key.
    pub(crate) fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// `GET` and `PTTL` in one round trip: the value and its remaining lifetime (`None`: no
    /// expiry).
    pub(crate) async fn get(
        &self,
        key: &[u8],
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, CacheError> {
        let k = self.redis_key(key);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&k).cmd("PTTL").arg(&k);
        let (value, pttl): (Option<Vec<u8>>, i64) = self
            .run("get", async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(value.map(|v| {
            self.stats.add(Tier::L2, Counter::BytesRead, v.len() as u64);
            let ttl = match pttl {
                -1 => None,
                ms => Some(Duration::from_millis(ms.max(0) as u64)),
            };
            (v, ttl)
        }))
    }

    /// `SET` (with `PX` when `ttl` is given), pipelined with the invalidation `PUBLISH` when
    /// `publish`.
    pub(crate) async fn set(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
        publish: bool,
    ) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        let set = pipe.cmd("SET").arg(self.redis_key(key)).arg(value);
        if let Some(ttl) = ttl {
            set.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        pipe.ignore();
        if publish {
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(self.encode_message(&Message::Invalidate(key.to_vec())))
                .ignore();
        }
        let mut conn = self.conn.clone();
        self.run(
            "set",
            async move { pipe.query_async::<()>(&mut conn).await },
        )
        .await?;
        self.stats
            .add(Tier::L2, Counter::BytesWritten, value.len() as u64);
        Ok(())
    }

    /// `DEL` pipelined with the invalidation `PUBLISH`.
    pub(crate) async fn del(&self, key: &[u8]) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.redis_key(key))
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.channel)
            .arg(self.encode_message(&Message::Invalidate(key.to_vec())))
            .ignore();
        let mut conn = self.conn.clone();
        self.run("invalidate", async move {
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Deletes every key of the namespace (`SCAN` + `UNLINK` rounds), then publishes a clear.
    pub(crate) async fn clear(&self) -> Result<(), CacheError> {
        let mut pattern = self.prefix.clone();
        pattern.push(b'*');
        let mut cursor = 0u64;
        loop {
            let mut conn = self.conn.clone();
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run("clear", async move { scan.query_async(&mut conn).await })
                .await?;
            if !keys.is_empty() {
                let mut conn = self.conn.clone();
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                self.run(
                    "clear",
                    async move { unlink.query_async::<()>(&mut conn).await },
                )
                .await?;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut conn = self.conn.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(&self.channel)
            .arg(self.encode_message(&Message::Clear));
        self.run("clear", async move {
            publish.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// A new pub/sub connection subscribed to the invalidation channel.
    pub(crate) async fn subscribe(&self) -> Result<PubSubStream, CacheError> {
        let connect = async {
            let mut ps = self.client.get_async_pubsub().await?;
            ps.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(ps.into_on_message())
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(source)) => Err(CacheError::Redis {
                operation: "subscribe",
                source,
            }),
            Err(_) => Err(CacheError::Timeout {
                operation: "subscribe",
                timeout: self.connect_timeout,
            }),
        }
    }

    /// The message of another instance, or `None` for this instance's own and for garbage.
    pub(crate) fn decode_message(&self, payload: &[u8]) -> Option<Message> {
        let (&kind, rest) = payload.split_first()?;
        let (sender, key) = rest.split_at_checked(16)?;
        if sender == self.instance {
            return None;
        }
        match kind {
            KIND_INVALIDATE => Some(Message::Invalidate(key.to_vec())),
            KIND_CLEAR if key.is_empty() => Some(Message::Clear),
            _ => None,
        }
    }

    pub(crate) fn encode_message(&self, m: &Message) -> Vec<u8> {
        let (kind, key): (u8, &[u8]) = match m {
            Message::Invalidate(k) => (KIND_INVALIDATE, k),
            Message::Clear => (KIND_CLEAR, &[]),
        };
        let mut out = Vec::with_capacity(17 + key.len());
        out.push(kind);
        out.extend_from_slice(&self.instance);
        out.extend_from_slice(key);
        out
    }

    /// Whether the breaker has marked Redis down.
    pub(crate) fn state(&self) -> L2State {
        self.breaker.state()
    }

    /// Runs one Redis round trip under the breaker and the time limit, counting failures.
    async fn run<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        if !self.breaker.allow() {
            return Err(CacheError::RedisUnavailable { operation });
        }
        let err = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => {
                if self.breaker.success() {
                    tracing::info!("redis tier is back");
                    self.stats.global(Global::Recoveries);
                }
                return Ok(v);
            }
            Ok(Err(source)) => CacheError::Redis { operation, source },
            Err(_) => CacheError::Timeout {
                operation,
                timeout: self.timeout,
            },
        };
        self.stats.incr(Tier::L2, Counter::Errors);
        if self.breaker.failure() {
            tracing::warn!(error = %err, "redis tier marked down");
        }
        Err(err)
    }
}

/// Consecutive-failure breaker: closed (try every call) until `threshold` failures in a
/// row, then open until `retry` has passed, then one probe call at a time.
#[derive(Debug)]
struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `epoch` when the next probe may run; 0 while closed.
    retry_at_ms: AtomicU64,
    threshold: u32,
    retry_ms: u64,
    epoch: Instant,
}

impl Breaker {
    fn new(threshold: u32, retry: Duration) -> Self {
        Self {
            failures: AtomicU32::new(0),
            retry_at_ms: AtomicU64::new(0),
            threshold,
            retry_ms: (retry.as_millis() as u64).max(1),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a call may go to Redis now. While open, the first caller after the retry
    /// time claims the probe (and pushes the next retry time out).
    fn allow(&self) -> bool {
        let at = self.retry_at_ms.load(Ordering::Acquire);
        if at == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= at
            && self
                .retry_at_ms
                .compare_exchange(at, now + self.retry_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Records a success; `true` if the breaker was open (Redis came back).
    fn success(&self) -> bool {
        self.failures.store(0, Ordering::Release);
        self.retry_at_ms.swap(0, Ordering::AcqRel) != 0
    }

    /// Records a failure; `true` if this one opened the breaker.
    fn failure(&self) -> bool {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.threshold {
            let was = self
                .retry_at_ms
                .swap(self.now_ms() + self.retry_ms, Ordering::AcqRel);
            return was == 0;
        }
        false
    }

    fn state(&self) -> L2State {
        if self.retry_at_ms.load(Ordering::Acquire) == 0 {
            L2State::Up
        } else {
            L2State::Down
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_probes_after_retry() {
        let b = Breaker::new(3, Duration::from_millis(1));
        assert!(b.allow());
        assert!(!b.failure());
        assert!(!b.failure());
        assert_eq!(b.state(), L2State::Up);
        assert!(b.failure(), "third failure opens");
        assert_eq!(b.state(), L2State::Down);
        // Force the retry time into the past, then exactly one caller gets the probe.
        b.retry_at_ms.store(1, Ordering::Release);
        std::thread::sleep(Duration::from_millis(2));
        assert!(b.allow());
        assert!(!b.allow(), "the probe is claimed once per interval");
        assert!(b.success(), "a success after opening is a recovery");
        assert_eq!(b.state(), L2State::Up);
        assert!(!b.success());
    }

    #[tokio::test]
    async fn messages_round_trip_and_own_messages_are_ignored() {
        let config = CacheConfig {
            redis_url: "redis://127.0.0.1:1".to_owned(),
            ..CacheConfig::default()
        };
        let stats = Arc::new(StatsCore::default());
        let a = RedisTier::new(&config, [1; 16], Arc::clone(&stats)).expect("tier");
        let b = RedisTier::new(&config, [2; 16], stats).expect("tier");
        let m = a.encode_message(&Message::Invalidate(b"key".to_vec()));
        assert_eq!(
            b.decode_message(&m),
            Some(Message::Invalidate(b"key".to_vec()))
        );
        assert_eq!(a.decode_message(&m), None);
        let c = a.encode_message(&Message::Clear);
        assert_eq!(b.decode_message(&c), Some(Message::Clear));
        assert_eq!(b.decode_message(b"I"), None);
        assert_eq!(b.redis_key(b"k"), b"rust-ai-ide:k");
    }
}
