//! Redis down, slow or back: calls keep working from L1 and L3, failures are counted, and
//! the cache uses Redis again after it returns.

use std::time::Duration;

use rust_ai_ide_cache::{CacheConfig, L2State, MultiLevelCache};

use crate::fixture::{config, eventually, managed_redis};

/// A generous bound so that a hang fails the test instead of blocking it; not a timing.
const NO_HANG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_test() {
    let Some(mut server) = managed_redis("redis_restart") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CacheConfig {
        // Room for about four 1 KiB values: most reads during the outage come from disk.
        l1_capacity: 4 * (1024 + 100),
        ..config("redis_restart", &server.url, Some(dir.path()))
    };
    let a = MultiLevelCache::<u32, Vec<u8>>::new(cfg.clone()).expect("cache");
    a.ready(Duration::from_secs(10)).await.expect("ready");
    for k in 0..10 {
        a.insert(k, vec![k as u8; 1024]).await.expect("insert");
    }
    a.run_pending_tasks().await; // apply L1's size evictions now
    assert!(a.stats().l1.entries.expect("known") < 10);

    server.stop();
    let during = tokio::time::timeout(NO_HANG, async {
        for k in 0..10 {
            assert_eq!(
                a.get(&k).await.expect("no error surfaces"),
                Some(vec![k as u8; 1024])
            );
        }
        a.insert(100, vec![1; 8]).await.expect("insert while down");
        assert_eq!(a.get(&100).await.expect("get"), Some(vec![1; 8]));
        a.run_pending_tasks().await;
        a.stats()
    })
    .await
    .expect("no call hangs while redis is down");
    assert!(during.l3.hits > 0, "served from disk: {during:?}");
    assert!(during.l2.errors > 0, "failures are counted: {during:?}");

    server.restart();
    // Another process, created after the restart, sees a new value through Redis: L2 is
    // used again.
    let b = MultiLevelCache::<u32, Vec<u8>>::new(CacheConfig {
        disk_path: Default::default(),
        ..cfg
    })
    .expect("cache b");
    let mut n = 1000;
    assert!(
        eventually(Duration::from_secs(15), async || {
            n += 1;
            a.insert(n, vec![2; 4]).await.is_ok() && b.get(&n).await.ok().flatten().is_some()
        })
        .await,
        "redis tier back in use"
    );
    a.ready(Duration::from_secs(10))
        .await
        .expect("resubscribed");
    let s = a.stats();
    assert_eq!(s.l2_state, L2State::Up);
    assert!(s.subscription_gaps >= 1, "{s:?}");
    assert!(b.stats().l2.hits >= 1);
    // Data written before the outage is still served (L1 was flushed on resubscribe; disk).
    assert_eq!(a.get(&3).await.expect("get"), Some(vec![3; 1024]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_times_out_and_is_skipped() {
    // Accepts connections and never replies: every command can only time out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("redis://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CacheConfig {
        redis_timeout: Duration::from_millis(50),
        redis_connect_timeout: Duration::from_millis(50),
        l2_failure_threshold: 2,
        l2_retry_interval: Duration::from_secs(60),
        ..config("black_hole", &url, Some(dir.path()))
    };
    let cache = MultiLevelCache::<u32, u32>::new(cfg).expect("cache");
    let stats = tokio::time::timeout(NO_HANG, async {
        for k in 0..5 {
            cache
                .insert(k, k * 10)
                .await
                .expect("insert works without redis");
        }
        cache
            .invalidate(&0)
            .await
            .expect_err("invalidation cannot reach redis");
        for k in 1..5 {
            cache.get(&k).await.expect("get works");
        }
        cache.stats()
    })
    .await
    .expect("no call hangs");
    assert_eq!(stats.l2_state, L2State::Down);
    assert_eq!(
        stats.l2.errors, 2,
        "the breaker stops trying after the threshold"
    );
    assert_eq!(stats.l1.hits, 4);
    assert!(cache.ready(Duration::from_millis(200)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_with_an_unreachable_redis_serves_from_disk() {
    // Nothing listens on this port: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        "refused",
        &format!("redis://127.0.0.1:{port}/"),
        Some(dir.path()),
    );
    let cache = MultiLevelCache::<String, String>::new(cfg).expect("cache");
    cache
        .insert("a".to_owned(), "x".to_owned())
        .await
        .expect("insert");
    cache.invalidate(&"b".to_owned()).await.ok();
    assert_eq!(
        cache.get(&"a".to_owned()).await.expect("get"),
        Some("x".to_owned())
    );
    assert!(cache.stats().l2.errors >= 1);
}
