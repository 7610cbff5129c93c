//! `CacheConfig`: tier sizes, Redis settings, TTLs, write policy and codec, with validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CacheError;
use crate::ttl::TtlModelConfig;

/// How keys and values become bytes for the Redis and disk tiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Codec {
    /// postcard: compact binary (varint integers, no field names). The default.
    #[default]
    Postcard,
    /// JSON: larger and slower, but other tools can read what is in Redis.
    Json,
}

impl Codec {
    /// Serializes `value`; `what` names it in the error ("key" or "value").
    pub fn encode<T: Serialize + ?Sized>(
        self,
        value: &T,
        what: &'static str,
    ) -> Result<Vec<u8>, CacheError> {
        let res = match self {
            Self::Postcard => postcard::to_stdvec(value).map_err(|e| e.to_string()),
            Self::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        };
        res.map_err(|message| CacheError::Encode { what, message })
    }

    /// Deserializes bytes written by [`Codec::encode`] with the same codec.
    pub fn decode<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        what: &'static str,
    ) -> Result<T, CacheError> {
        let res = match self {
            Self::Postcard => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
            Self::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        };
        res.map_err(|message| CacheError::Decode { what, message })
    }
}

/// Where `insert` writes, and when the disk tier gets its copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WritePolicy {
    /// Every insert goes to L1, L2 and L3 (queued for the disk writer) before it returns.
    /// The default: chosen by the `cache/write_policy` load scenarios (see the README): it
    /// writes fewer bytes to disk than `L3OnEvict` at a better hit ratio, and an entry
    /// evicted from L1 is already on its way to disk, so the disk tier holds the same keys
    /// whichever process or restart asks next.
    #[default]
    WriteThrough,
    /// Inserts go to L1 and L2; the disk tier gets an entry when L1 evicts it for size.
    /// Fewer disk writes for keys that are overwritten while hot, but an entry that
    /// expires or is lost with the process never reaches disk.
    L3OnEvict,
}

/// The cache's configuration: the seed's four fields first, then what a deployment needs.
///
/// Build one with [`CacheConfig::new`] or with struct update syntax from
/// `CacheConfig::default()`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// L1 budget in bytes (entries are weighed by their encoded key and value plus
    /// [`crate::ENTRY_OVERHEAD`]).
    pub l1_capacity: u64,
    /// Redis URL of the L2 tier, e.g. `redis://127.0.0.1:6379`; empty for no L2.
    pub redis_url: String,
    /// Directory of the disk tier; empty for no L3.
    pub disk_path: PathBuf,
    /// Expire entries by a model of each key's access intervals instead of fixed TTLs.
    pub enable_ttl_prediction: bool,
    /// Prefix of every Redis key and of the invalidation channel: `[A-Za-z0-9_.-]+`.
    pub namespace: String,
    /// How keys and values are serialized for L2 and L3.
    pub codec: Codec,
    /// Default TTL of L1 entries (`None`: kept until evicted). With TTL prediction on, the
    /// predicted TTL is capped by this.
    pub l1_ttl: Option<Duration>,
    /// Default TTL of L2 entries (`None`: no expiry in Redis).
    pub l2_ttl: Option<Duration>,
    /// Default TTL of L3 entries (`None`: kept until evicted).
    pub l3_ttl: Option<Duration>,
    /// Disk tier budget in bytes: the segment files, live and dead records and headers
    /// included. Segments are a sixteenth of it (at most 8 MiB); the oldest is reclaimed
    /// when the files outgrow it.
    pub l3_capacity: u64,
    /// `fsync` the disk tier's segment after every batch of records the writer appends.
    pub l3_sync: bool,
    /// Limit of one Redis command (or pipeline); no call waits on Redis longer.
    pub redis_timeout: Duration,
    /// Limit of one connection attempt to Redis.
    pub redis_connect_timeout: Duration,
    /// Consecutive Redis failures after which L2 is skipped until `l2_retry_interval` passes.
    pub l2_failure_threshold: u32,
    /// How long L2 is skipped after `l2_failure_threshold` failures before one call tries again.
    pub l2_retry_interval: Duration,
    /// Where inserts are written.
    pub write_policy: WritePolicy,
    /// Parameters of the TTL model (used when `enable_ttl_prediction`).
    pub ttl_model: TtlModelConfig,
    /// Time one L1 lookup in this many for the L1 latency percentiles (1: every lookup).
    pub l1_latency_sample_every: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            l1_capacity: 64 << 20,
            redis_url: String::new(),
            disk_path: PathBuf::new(),
            enable_ttl_prediction: false,
            namespace: "rust-ai-ide".to_owned(),
            codec: Codec::Postcard,
            l1_ttl: None,
            l2_ttl: Some(Duration::from_secs(24 * 3600)),
            l3_ttl: None,
            l3_capacity: 1 << 30,
            l3_sync: false,
            redis_timeout: Duration::from_millis(100),
            redis_connect_timeout: Duration::from_millis(250),
            l2_failure_threshold: 3,
            l2_retry_interval: Duration::from_millis(500),
            write_policy: WritePolicy::WriteThrough,
            ttl_model: TtlModelConfig::default(),
            l1_latency_sample_every: 64,
        }
    }
}

impl CacheConfig {
    /// The seed's four settings; everything else at its default.
    pub fn new(
        l1_capacity: u64,
        redis_url: impl Into<String>,
        disk_path: impl Into<PathBuf>,
        enable_ttl_prediction: bool,
    ) -> Self {
        Self {
            l1_capacity,
            redis_url: redis_url.into(),
            disk_path: disk_path.into(),
            enable_ttl_prediction,
            ..Self::default()
        }
    }

    /// Checks the settings that cannot work.
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |m: &str| Err(CacheError::InvalidConfig(m.to_owned()));
        if self.l1_capacity == 0 {
            return bad("l1_capacity must be positive");
        }
        if self.namespace.is_empty()
            || !self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return bad("namespace must be non-empty [A-Za-z0-9_.-]");
        }
        if self.redis_timeout.is_zero() || self.redis_connect_timeout.is_zero() {
            return bad("redis timeouts must be positive");
        }
        if self.l2_failure_threshold == 0 {
            return bad("l2_failure_threshold must be at least 1");
        }
        if !self.disk_path.as_os_str().is_empty() && self.l3_capacity == 0 {
            return bad("l3_capacity must be positive when disk_path is set");
        }
        if [self.l1_ttl, self.l2_ttl, self.l3_ttl]
            .iter()
            .any(|t| t.is_some_and(|t| t.is_zero()))
        {
            return bad("a tier ttl must be positive");
        }
        if self.l1_latency_sample_every == 0 {
            return bad("l1_latency_sample_every must be at least 1");
        }
        self.ttl_model.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_and_report_bad_bytes() {
        for codec in [Codec::Postcard, Codec::Json] {
            let v = (7u32, "seven".to_owned(), vec![1u8, 2, 3]);
            let bytes = codec.encode(&v, "value").expect("encodes");
            let back: (u32, String, Vec<u8>) = codec.decode(&bytes, "value").expect("decodes");
            assert_eq!(back, v);
            let err = codec
                .decode::<(u32, String, Vec<u8>)>(&bytes[..1], "value")
                .expect_err("truncated");
            assert!(err.to_string().starts_with("cannot decode value"), "{err}");
        }
        let small = Codec::Postcard.encode(&1u64, "key").expect("encodes");
        assert_eq!(small, [1]);
    }

    #[test]
    fn validation_rejects_what_cannot_work() {
        assert!(CacheConfig::default().validate().is_ok());
        let cases = [
            CacheConfig {
                l1_capacity: 0,
                ..CacheConfig::default()
            },
            CacheConfig {
                namespace: "a b".to_owned(),
                ..CacheConfig::default()
            },
            CacheConfig {
                redis_timeout: Duration::ZERO,
                ..CacheConfig::default()
            },
            CacheConfig {
                l1_ttl: Some(Duration::ZERO),
                ..CacheConfig::default()
            },
            CacheConfig {
                disk_path: "/tmp/x".into(),
                l3_capacity: 0,
                ..CacheConfig::default()
            },
        ];
        for c in cases {
            let err = c.validate().expect_err("invalid");
            assert!(matches!(err, CacheError::InvalidConfig(_)), "{err}");
        }
    }
}
