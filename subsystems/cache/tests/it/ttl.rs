//! TTL prediction inside the cache: one-hit wonders leave L1 early, hot keys stay.

use std::time::Duration;

use rust_ai_ide_cache::{CacheConfig, MultiLevelCache, TtlModelConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hit_wonders_expire_early_and_hot_keys_stay() {
    let cfg = CacheConfig {
        enable_ttl_prediction: true,
        ttl_model: TtlModelConfig {
            cold_ttl: Duration::from_millis(150),
            min_ttl: Duration::from_millis(100),
            ..TtlModelConfig::default()
        },
        ..CacheConfig::default()
    };
    let cache = MultiLevelCache::<String, u32>::new(cfg).expect("cache");
    let (cold, hot) = ("cold".to_owned(), "hot".to_owned());
    cache.insert(cold.clone(), 1).await.expect("insert");
    cache.insert(hot.clone(), 2).await.expect("insert");
    // The hot key is read every 20 ms for 600 ms, four times its cold TTL.
    for _ in 0..30 {
        assert_eq!(cache.get(&hot).await.expect("get"), Some(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cache.run_pending_tasks().await;
    assert!(!cache.contains_in_l1(&cold), "the key nobody read expired");
    assert!(cache.contains_in_l1(&hot), "the hot key stayed");
    let model = cache.ttl_predictor().expect("prediction on").observations();
    assert!(model >= 30, "{model}");
    assert_eq!(cache.stats().l1.hits, 30);
}
