//! Invalidation across two caches sharing one Redis: pub/sub reaches the other's L1 and L3.

use std::time::Duration;

use rust_ai_ide_cache::MultiLevelCache;

use crate::fixture::{config, eventually, redis};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_invalidations_reach_the_other_cache() {
    let Some(server) = redis("cross_invalidate") else {
        return;
    };
    let (da, db) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let base = config("cross_invalidate", &server.url, None);
    let mk = |dir: &std::path::Path| {
        let mut c = base.clone();
        c.disk_path = dir.to_path_buf();
        MultiLevelCache::<String, u32>::new(c).expect("cache")
    };
    let (a, b) = (mk(da.path()), mk(db.path()));
    a.ready(WAIT).await.expect("a ready");
    b.ready(WAIT).await.expect("b ready");
    let key = "session".to_owned();

    a.insert(key.clone(), 1).await.expect("insert");
    assert_eq!(b.get(&key).await.expect("get"), Some(1));
    assert!(b.contains_in_l1(&key));

    // A new value in `a`: `b` drops its L1 copy (it never expires on its own here) and
    // reads the new one from Redis.
    a.insert(key.clone(), 2).await.expect("insert");
    assert!(
        eventually(WAIT, async || !b.contains_in_l1(&key)).await,
        "b's L1 copy was invalidated"
    );
    assert_eq!(b.get(&key).await.expect("get"), Some(2));

    // Invalidation removes it everywhere, b's own L3 included.
    b.insert("other".to_owned(), 9).await.expect("insert");
    a.invalidate(&key).await.expect("invalidate");
    assert!(eventually(WAIT, async || !b.contains_in_l1(&key)).await);
    assert_eq!(b.get(&key).await.expect("get"), None);
    assert_eq!(a.get(&key).await.expect("get"), None);
    assert!(b.stats().remote_invalidations >= 2);

    // Clear in one cache empties the other's tiers of that namespace.
    assert_eq!(a.get(&"other".to_owned()).await.expect("get"), Some(9));
    b.clear().await.expect("clear");
    assert!(eventually(WAIT, async || !a.contains_in_l1(&"other".to_owned())).await);
    assert_eq!(a.get(&"other".to_owned()).await.expect("get"), None);
    assert_eq!(a.stats().l3.entries, Some(0));
    // `a` heard b's insert of "other" and b's clear, and none of its own messages.
    assert_eq!(a.stats().remote_invalidations, 2);
}
