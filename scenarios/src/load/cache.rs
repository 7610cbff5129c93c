//! `cache/*` load scenarios: a Zipf read/write mix over the multi-level cache and its anchors
//! (raw moka, foyer's hybrid cache, plain Redis), its two write policies, and TTL prediction
//! against fixed TTLs on a trace of one-hit wonders and a hot set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foyer::DeviceBuilder;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_cache::{CacheConfig, MultiLevelCache, TtlModelConfig, WritePolicy};

use super::stats::LatencySummary;
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::catalog::{CACHE_SCENARIOS, Engine, Requirement};
use crate::error::ScenarioError;
use crate::redis_server::RedisService;

/// Bytes per value.
const VALUE_SIZE: usize = 1024;
/// Share of operations that are writes in the Zipf mix.
const WRITE_RATIO: f64 = 0.05;
/// Worker tasks (on two runtime threads).
const THREADS: usize = 2;
const SEED: u64 = 0x6361_6368_655f_7a66;
/// Lifetime of what the scenarios leave in a shared Redis.
const REDIS_TTL: Duration = Duration::from_secs(600);

/// How much work a run does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    keys: u64,
    ops_per_thread: usize,
    time_limit: Duration,
    ttl_trace: Duration,
}

impl Plan {
    fn new(opts: LoadOptions) -> Self {
        if opts.quick {
            Self {
                keys: 100_000,
                ops_per_thread: 100_000,
                time_limit: Duration::from_secs(20),
                ttl_trace: Duration::from_secs(2),
            }
        } else {
            Self {
                keys: 1_000_000,
                ops_per_thread: 500_000,
                time_limit: Duration::from_secs(90),
                ttl_trace: Duration::from_secs(6),
            }
        }
    }

    /// L1 holds 1% of the keys, L3 10%, in bytes of key + value + per-entry overhead.
    fn l1_bytes(&self) -> u64 {
        self.keys / 100 * entry_weight()
    }

    fn l3_bytes(&self) -> u64 {
        self.keys / 10 * (VALUE_SIZE as u64 + 48)
    }
}

fn entry_weight() -> u64 {
    VALUE_SIZE as u64 + 8 + u64::from(rust_ai_ide_cache::ENTRY_OVERHEAD)
}

/// Runs the selected `cache/*` scenarios.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let plan = Plan::new(opts);
    let rt = super::tokio_runtime(THREADS)?;
    let scenarios: Vec<_> = CACHE_SCENARIOS
        .iter()
        .filter(|s| s.engine == Engine::Load && ids.contains(&s.id))
        .collect();
    let redis = if scenarios.iter().any(|s| s.needs(Requirement::Redis)) {
        RedisService::locate()
    } else {
        Err(String::new())
    };
    let zipf = Arc::new(Zipf::new(plan.keys, 1.0));
    for spec in scenarios {
        let id = spec.id;
        let url = match (&redis, spec.needs(Requirement::Redis)) {
            (_, false) => None,
            (Ok(r), true) => Some(r.url().to_owned()),
            (Err(reason), true) => {
                outcome.skipped.push((id.to_owned(), reason.clone()));
                continue;
            }
        };
        for &subject in spec.subjects {
            let res = if id.starts_with("cache/ttl_prediction/") {
                rt.block_on(ttl_trace(subject, plan))
            } else {
                let policy = if id == "cache/write_policy/l3_on_evict" {
                    WritePolicy::L3OnEvict
                } else {
                    WritePolicy::WriteThrough
                };
                rt.block_on(zipf_run(id, subject, policy, url.as_deref(), plan, &zipf))
            };
            outcome.record(id, subject, res);
        }
    }
    Ok(())
}

/// One cache under test, behind the operations the workload needs.
enum Subject {
    Perflab(MultiLevelCache<u64, Vec<u8>>),
    Moka(moka::future::Cache<u64, Vec<u8>>),
    Foyer(foyer::HybridCache<u64, Vec<u8>>),
    Redis(redis::aio::ConnectionManager, String),
}

impl Subject {
    async fn get(&self, key: u64) -> Result<Option<Vec<u8>>, String> {
        match self {
            Self::Perflab(c) => c.get(&key).await.map_err(|e| e.to_string()),
            Self::Moka(c) => Ok(c.get(&key).await),
            Self::Foyer(c) => c
                .get(&key)
                .await
                .map(|e| e.map(|e| e.value().clone()))
                .map_err(|e| e.to_string()),
            Self::Redis(conn, prefix) => {
                let mut conn = conn.clone();
                redis::cmd("GET")
                    .arg(format!("{prefix}:{key}"))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn insert(&self, key: u64, value: Vec<u8>) -> Result<(), String> {
        match self {
            Self::Perflab(c) => c.insert(key, value).await.map_err(|e| e.to_string()),
            Self::Moka(c) => {
                c.insert(key, value).await;
                Ok(())
            }
            Self::Foyer(c) => {
                c.insert(key, value);
                Ok(())
            }
            Self::Redis(conn, prefix) => {
                let mut conn = conn.clone();
                redis::cmd("SET")
                    .arg(format!("{prefix}:{key}"))
                    .arg(value)
                    .arg("PX")
                    .arg(REDIS_TTL.as_millis() as u64)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The value of `key`: its number, then a fill byte, so every hit can be checked.
fn value_of(key: u64) -> Vec<u8> {
    let mut v = vec![(key % 251) as u8; VALUE_SIZE];
    v[..8].copy_from_slice(&key.to_le_bytes());
    v
}

fn namespace(id: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "perflab-{}-{}-{nanos}",
        id.replace('/', "."),
        std::process::id()
    )
}

async fn build_subject(
    id: &str,
    subject: &str,
    policy: WritePolicy,
    redis_url: Option<&str>,
    plan: Plan,
    dir: &tempfile::TempDir,
) -> Result<Subject, String> {
    match subject {
        "perflab" => {
            let cache = MultiLevelCache::new(CacheConfig {
                l1_capacity: plan.l1_bytes(),
                redis_url: redis_url.unwrap_or_default().to_owned(),
                disk_path: dir.path().join("perflab"),
                l3_capacity: plan.l3_bytes(),
                l2_ttl: Some(REDIS_TTL),
                namespace: namespace(id),
                write_policy: policy,
                ..CacheConfig::default()
            })
            .map_err(|e| e.to_string())?;
            cache
                .ready(Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Subject::Perflab(cache))
        }
        "moka" => Ok(Subject::Moka(
            moka::future::Cache::builder()
                .max_capacity(plan.l1_bytes())
                .weigher(|_k: &u64, _v: &Vec<u8>| entry_weight() as u32)
                .build(),
        )),
        "foyer" => {
            let device = foyer::FsDeviceBuilder::new(dir.path().join("foyer"))
                .with_capacity(plan.l3_bytes() as usize)
                .build()
                .map_err(|e| e.to_string())?;
            let cache = foyer::HybridCacheBuilder::new()
                .memory(plan.l1_bytes() as usize)
                .with_weighter(|_k: &u64, _v: &Vec<u8>| entry_weight() as usize)
                .storage()
                .with_engine_config(foyer::BlockEngineConfig::new(device).with_block_size(1 << 20))
                .build()
                .await
                .map_err(|e| e.to_string())?;
            Ok(Subject::Foyer(cache))
        }
        "redis" => {
            let client =
                redis::Client::open(redis_url.unwrap_or_default()).map_err(|e| e.to_string())?;
            let conn = redis::aio::ConnectionManager::new(client)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Subject::Redis(conn, namespace(id)))
        }
        other => Err(format!("unknown subject {other}")),
    }
}

#[derive(Debug, Default)]
struct WorkerResult {
    latencies_ns: Vec<u64>,
    gets: u64,
    hits: u64,
    writes: u64,
    errors: u64,
}

/// Zipf(1.0) over the keys, 5% writes, misses filled (cache-aside), on two worker tasks.
async fn zipf_run(
    id: &str,
    subject: &str,
    policy: WritePolicy,
    redis_url: Option<&str>,
    plan: Plan,
    zipf: &Arc<Zipf>,
) -> Result<BTreeMap<String, Measure>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cache = Arc::new(build_subject(id, subject, policy, redis_url, plan, &dir).await?);
    let start = Instant::now();
    let deadline = start + plan.time_limit;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, zipf) = (Arc::clone(&cache), Arc::clone(zipf));
            tokio::spawn(async move {
                zipf_worker(
                    &cache,
                    &zipf,
                    SEED + t as u64,
                    plan.ops_per_thread,
                    deadline,
                )
                .await
            })
        })
        .collect();
    let mut total = WorkerResult::default();
    for w in workers {
        let r = w.await.map_err(|e| e.to_string())??;
        total.latencies_ns.extend(r.latencies_ns);
        total.gets += r.gets;
        total.hits += r.hits;
        total.writes += r.writes;
        total.errors += r.errors;
    }
    let elapsed = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let lat = LatencySummary::from_samples(&mut total.latencies_ns)
        .ok_or_else(|| "no get completed".to_owned())?;
    let mut m = BTreeMap::new();
    m.insert(
        "throughput".to_owned(),
        Measure::point((total.gets + total.writes) as f64 / elapsed),
    );
    m.insert("latency_p50".to_owned(), Measure::bounded(lat.p50));
    m.insert("latency_p99".to_owned(), Measure::bounded(lat.p99));
    m.insert("latency_p999".to_owned(), Measure::bounded(lat.p999));
    m.insert(
        "hit_ratio".to_owned(),
        Measure::point(total.hits as f64 / total.gets.max(1) as f64),
    );
    m.insert("errors".to_owned(), Measure::point(total.errors as f64));
    if let Subject::Perflab(c) = &*cache {
        let s = c.stats();
        let lookups = (s.l1.hits + s.l1.misses).max(1) as f64;
        m.insert(
            "hit_ratio_l1".to_owned(),
            Measure::point(s.l1.hits as f64 / lookups),
        );
        m.insert(
            "hit_ratio_l2".to_owned(),
            Measure::point(s.l2.hits as f64 / lookups),
        );
        m.insert(
            "hit_ratio_l3".to_owned(),
            Measure::point(s.l3.hits as f64 / lookups),
        );
        m.insert(
            "disk_bytes_written".to_owned(),
            Measure::point(s.l3.bytes_written as f64),
        );
    }
    if let Subject::Foyer(c) = &*cache {
        c.close().await.map_err(|e| e.to_string())?;
    }
    Ok(m)
}

async fn zipf_worker(
    cache: &Subject,
    zipf: &Zipf,
    seed: u64,
    ops: usize,
    deadline: Instant,
) -> Result<WorkerResult, String> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut r = WorkerResult {
        latencies_ns: Vec::with_capacity(ops),
        ..WorkerResult::default()
    };
    for i in 0..ops {
        let key = zipf.sample(rng.random_range(0.0..1.0));
        if rng.random_range(0.0..1.0) < WRITE_RATIO {
            r.writes += 1;
            if cache.insert(key, value_of(key)).await.is_err() {
                r.errors += 1;
            }
        } else {
            r.gets += 1;
            let t = Instant::now();
            let got = cache.get(key).await;
            r.latencies_ns.push(t.elapsed().as_nanos() as u64);
            match got {
                Ok(Some(v)) if v.get(..8) == Some(&key.to_le_bytes()[..]) => r.hits += 1,
                Ok(Some(_)) => return Err(format!("wrong value for key {key}")),
                Ok(None) => {
                    if cache.insert(key, value_of(key)).await.is_err() {
                        r.errors += 1;
                    }
                }
                Err(_) => r.errors += 1,
            }
        }
        if i % 256 == 255 && Instant::now() > deadline {
            break;
        }
    }
    Ok(r)
}

/// Hot keys and one-hit wonders at a steady rate: half the reads go to 2,000 hot keys
/// (each read about every 200 ms), half to keys never read again. Reports the hit ratio
/// and the mean L1 bytes held.
async fn ttl_trace(subject: &str, plan: Plan) -> Result<BTreeMap<String, Measure>, String> {
    const HOT: u64 = 2000;
    const OPS_PER_MS: u64 = 20;
    let (prediction, l1_ttl) = match subject {
        "perflab" => (true, None),
        "fixed_short" => (false, Some(Duration::from_millis(200))),
        _ => (false, Some(plan.ttl_trace)),
    };
    let cache = MultiLevelCache::<u64, Vec<u8>>::new(CacheConfig {
        l1_capacity: 1 << 30,
        enable_ttl_prediction: prediction,
        l1_ttl,
        ttl_model: TtlModelConfig {
            cold_ttl: Duration::from_millis(300),
            min_ttl: Duration::from_millis(50),
            ..TtlModelConfig::default()
        },
        ..CacheConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let (mut gets, mut hits, mut next_cold) = (0u64, 0u64, HOT);
    let mut memory = Vec::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut ms = 0u64;
    while start.elapsed() < plan.ttl_trace {
        tick.tick().await;
        ms += 1;
        for _ in 0..OPS_PER_MS {
            let key = if rng.random_range(0.0..1.0) < 0.5 {
                rng.random_range(0..HOT)
            } else {
                next_cold += 1;
                next_cold
            };
            gets += 1;
            match cache.get(&key).await.map_err(|e| e.to_string())? {
                Some(_) => hits += 1,
                None => cache
                    .insert(key, vec![1; 256])
                    .await
                    .map_err(|e| e.to_string())?,
            }
        }
        if ms.is_multiple_of(50) {
            cache.run_pending_tasks().await;
            memory.push(cache.stats().l1.bytes_stored.unwrap_or(0) as f64);
        }
    }
    let mean_memory = memory.iter().sum::<f64>() / memory.len().max(1) as f64;
    let mut m = BTreeMap::new();
    m.insert(
        "hit_ratio".to_owned(),
        Measure::point(hits as f64 / gets.max(1) as f64),
    );
    m.insert("memory_bytes".to_owned(), Measure::point(mean_memory));
    Ok(m)
}

/// Zipf(s) over `0..n` by inversion of a precomputed CDF.
#[derive(Debug)]
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: u64, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut acc = 0.0;
        for rank in 1..=n {
            acc += 1.0 / (rank as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }

    /// The key at uniform draw `u` in [0, 1): rank 0 is the most popular.
    pub(crate) fn sample(&self, u: f64) -> u64 {
        (self.cdf.partition_point(|&c| c < u) as u64).min(self.cdf.len() as u64 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let z = Zipf::new(1000, 1.0);
        assert_eq!(z.sample(0.0), 0);
        assert_eq!(z.sample(0.999_999_9), 999);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let draws: Vec<u64> = (0..10_000)
            .map(|_| z.sample(rng.random_range(0.0..1.0)))
            .collect();
        let top = draws.iter().filter(|&&k| k == 0).count() as f64 / 10_000.0;
        // P(rank 1) = 1 / H(1000) ~ 0.134.
        assert!((0.11..0.16).contains(&top), "{top}");
        assert!(draws.iter().all(|&k| k < 1000));
    }

    #[test]
    fn values_carry_their_key() {
        let v = value_of(12345);
        assert_eq!(v.len(), VALUE_SIZE);
        assert_eq!(v[..8], 12345u64.to_le_bytes());
    }

    #[test]
    fn every_local_subject_runs_a_tiny_mix() {
        let plan = Plan {
            keys: 20_000,
            ops_per_thread: 2000,
            time_limit: Duration::from_secs(600),
            ttl_trace: Duration::from_millis(200),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let zipf = Arc::new(Zipf::new(plan.keys, 1.0));
        for subject in ["perflab", "moka", "foyer"] {
            let m = rt
                .block_on(zipf_run(
                    "cache/zipf_mix/l1_l3",
                    subject,
                    WritePolicy::WriteThrough,
                    None,
                    plan,
                    &zipf,
                ))
                .unwrap_or_else(|e| panic!("{subject}: {e}"));
            let hit = m["hit_ratio"].value;
            assert!(hit > 0.1 && hit < 1.0, "{subject}: {hit}");
            assert_eq!(m["errors"].value, 0.0, "{subject}");
        }
        let m = rt.block_on(ttl_trace("perflab", plan)).expect("ttl trace");
        assert!(m["memory_bytes"].value > 0.0);
    }
}
