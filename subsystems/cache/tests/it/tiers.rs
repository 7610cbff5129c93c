//! Round trips through each tier, promotion, restart of the disk tier, corruption, coalescing.

use std::os::unix::fs::FileExt;
use std::time::Duration;

use rust_ai_ide_cache::{CacheConfig, L2State, MultiLevelCache};

use crate::fixture::{config, eventually, managed_redis, namespace, redis};

const READY: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_inserted_in_one_cache_is_an_l2_hit_in_another() {
    let Some(server) = redis("l2_round_trip") else {
        return;
    };
    let cfg = config("l2_round_trip", &server.url, None);
    let a = MultiLevelCache::<String, Vec<u8>>::new(cfg.clone()).expect("cache a");
    let b = MultiLevelCache::<String, Vec<u8>>::new(cfg).expect("cache b");
    a.ready(READY).await.expect("a ready");
    b.ready(READY).await.expect("b ready");
    let key = "model/weights".to_owned();
    a.insert(key.clone(), vec![7; 1000]).await.expect("insert");
    // The insert also tells b to drop any copy it holds; wait for that message, or it could
    // arrive after b's promotion below and drop the fresh copy.
    assert!(
        eventually(READY, async || b.stats().remote_invalidations >= 1).await,
        "a's invalidation reached b"
    );
    assert_eq!(b.get(&key).await.expect("get"), Some(vec![7; 1000]));
    assert!(b.contains_in_l1(&key), "promoted into b's L1");
    assert_eq!(b.get(&key).await.expect("get"), Some(vec![7; 1000]));
    let s = b.stats();
    assert_eq!((s.l1.hits, s.l1.misses), (1, 1));
    assert_eq!((s.l2.hits, s.l2.misses), (1, 0));
    assert_eq!(s.l1.promotions, 1);
    assert_eq!(s.l2_state, L2State::Up);
    assert!(s.l2.bytes_read >= 1000);
    let (p50, p99) = (
        s.l2.latency_p50.expect("timed"),
        s.l2.latency_p99.expect("timed"),
    );
    assert!(p50 <= p99);
    assert!(a.stats().l2.bytes_written >= 1000);
    // A key nobody has: a miss in every tier.
    assert_eq!(b.get(&"nothing".to_owned()).await.expect("get"), None);
    assert_eq!(b.stats().l2.misses, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_ttl_reaches_redis_and_the_promoted_copy() {
    let Some(server) = redis("l2_ttl") else {
        return;
    };
    let cfg = config("l2_ttl", &server.url, None);
    let a = MultiLevelCache::<u64, String>::new(cfg.clone()).expect("cache a");
    let b = MultiLevelCache::<u64, String>::new(cfg).expect("cache b");
    a.ready(READY).await.expect("ready");
    a.insert_with_ttl(1, "short".to_owned(), Duration::from_millis(300))
        .await
        .expect("insert");
    assert_eq!(b.get(&1).await.expect("get"), Some("short".to_owned()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        a.get(&1).await.expect("get"),
        None,
        "gone from a's L1 and Redis"
    );
    assert_eq!(
        b.get(&1).await.expect("get"),
        None,
        "b's copy kept Redis's deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_tier_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config("l3_restart", "", Some(dir.path()));
    {
        let cache = MultiLevelCache::<u32, String>::new(cfg.clone()).expect("cache");
        for k in 0..10 {
            cache.insert(k, format!("value {k}")).await.expect("insert");
        }
        assert_eq!(cache.stats().l3.entries, Some(10), "queued writes count");
        cache.run_pending_tasks().await; // the disk writes are done after this
        let s = cache.stats();
        assert_eq!(s.l3.entries, Some(10));
        assert!(s.l3.bytes_written > 0);
    }
    let cache = MultiLevelCache::<u32, String>::new(cfg).expect("reopened");
    assert_eq!(cache.stats().l3.entries, Some(10), "index rebuilt on open");
    for k in 0..10 {
        assert_eq!(
            cache.get(&k).await.expect("get"),
            Some(format!("value {k}"))
        );
    }
    let s = cache.stats();
    assert_eq!((s.l3.hits, s.l1.promotions), (10, 10));
    assert!(s.l3.latency_p50.is_some());
    cache.get(&3).await.expect("get");
    assert_eq!(
        cache.stats().l1.hits,
        1,
        "the promoted copy serves the next read"
    );
}

/// Flips one byte inside the value of `key`'s record on disk (after the writer flushed it).
fn corrupt_value(cache: &MultiLevelCache<String, String>, key: &str) {
    let (path, range) = cache
        .disk_value_location(&key.to_owned())
        .expect("flushed")
        .expect("on disk");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("segment file");
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, range.end - 1).expect("read");
    byte[0] ^= 0x01; // "precious" -> "preciour"
    file.write_all_at(&byte, range.end - 1).expect("corrupt it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_disk_entry_is_dropped_not_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CacheConfig {
        // Nothing stays in L1: every read goes to disk.
        l1_capacity: 1,
        ..config("l3_corrupt", "", Some(dir.path()))
    };
    {
        let cache = MultiLevelCache::<String, String>::new(cfg.clone()).expect("cache");
        for k in ["k", "after"] {
            cache
                .insert(k.to_owned(), "precious".to_owned())
                .await
                .expect("insert");
        }
        cache.run_pending_tasks().await;
        assert!(!cache.contains_in_l1(&"k".to_owned()));
        // Caught by the checksum on read, while the cache runs.
        corrupt_value(&cache, "k");
        assert_eq!(cache.get(&"k".to_owned()).await.expect("get"), None);
        let s = cache.stats();
        assert_eq!(s.l3_corrupt_entries, 1);
        assert_eq!(s.l3.errors, 1);
        assert_eq!(s.l3.entries, Some(1));
        assert_eq!(cache.get(&"k".to_owned()).await.expect("get"), None);
        assert_eq!(
            cache.get(&"after".to_owned()).await.expect("get"),
            Some("precious".to_owned())
        );
    }
    // Still dropped after a restart; the next record is intact.
    let cache = MultiLevelCache::<String, String>::new(cfg.clone()).expect("reopened");
    assert_eq!(cache.get(&"k".to_owned()).await.expect("get"), None);
    assert_eq!(
        cache.get(&"after".to_owned()).await.expect("get"),
        Some("precious".to_owned())
    );
    // Corrupted behind the cache's back before a restart: caught by the scan on open.
    corrupt_value(&cache, "after");
    drop(cache);
    let cache = MultiLevelCache::<String, String>::new(cfg).expect("reopened");
    assert_eq!(cache.get(&"after".to_owned()).await.expect("get"), None);
    let s = cache.stats();
    // Both bad records are still in the segment: the scan counts each.
    assert_eq!(s.l3_corrupt_entries, 2);
    assert_eq!(s.l3.errors, 2);
    assert_eq!(s.l3.entries, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l3_hit_is_promoted_to_l1_and_redis() {
    let Some(server) = redis("l3_to_l2") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // Written to disk while Redis is not configured, then read with Redis: L2 misses, L3
    // hits, and the value is copied up to Redis for the other processes.
    let ns = namespace("l3_to_l2");
    let offline = CacheConfig {
        namespace: ns.clone(),
        ..config("l3_to_l2", "", Some(dir.path()))
    };
    {
        let c = MultiLevelCache::<u32, u32>::new(offline).expect("cache");
        c.insert(5, 55).await.expect("insert");
    }
    let online = CacheConfig {
        namespace: ns,
        ..config("l3_to_l2", &server.url, Some(dir.path()))
    };
    let a = MultiLevelCache::<u32, u32>::new(online.clone()).expect("cache a");
    a.ready(READY).await.expect("ready");
    assert_eq!(a.get(&5).await.expect("get"), Some(55));
    let s = a.stats();
    assert_eq!((s.l2.misses, s.l3.hits), (1, 1));
    let b = MultiLevelCache::<u32, u32>::new(CacheConfig {
        disk_path: Default::default(),
        ..online
    })
    .expect("cache b");
    assert!(
        eventually(Duration::from_secs(5), async || b
            .get(&5)
            .await
            .ok()
            .flatten()
            == Some(55))
        .await,
        "the L3 hit reached Redis"
    );
    assert_eq!(a.stats().l2.promotions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_share_one_lower_tier_fetch() {
    let Some(server) = managed_redis("coalescing") else {
        return;
    };
    let cfg = CacheConfig {
        redis_timeout: Duration::from_secs(5),
        ..config("coalescing", &server.url, None)
    };
    let cache = MultiLevelCache::<String, u64>::new(cfg).expect("cache");
    cache.ready(READY).await.expect("ready");
    cache
        .insert("warm".to_owned(), 1)
        .await
        .expect("connection is up");
    cache
        .invalidate(&"warm".to_owned())
        .await
        .expect("invalidate");
    let before = cache.stats().lower_tier_fetches;
    // Redis holds every client for 400 ms: all 16 lookups miss L1 while the first fetch
    // is still waiting for Redis, so they must join it.
    assert_eq!(server.command("CLIENT PAUSE 400 ALL"), "+OK");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { c.get(&"missing".to_owned()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("get"), None);
    }
    let s = cache.stats();
    assert_eq!(s.lower_tier_fetches - before, 1, "{s:?}");
    assert_eq!(s.coalesced_misses, 15);
    assert_eq!(s.l1.misses, 16);
}
