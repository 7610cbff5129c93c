//! Unit tests of `MemoryPool` and `PoolHandle`.

use std::sync::Arc;

use super::*;

fn builder<T: Poolable>() -> PoolBuilder<T> {
    MemoryPool::<T>::builder()
}

#[test]
fn allocate_serves_the_smallest_class_that_fits() {
    let pool = MemoryPool::<Vec<u8>>::new();
    for (hint, class) in [
        (0, 64),
        (1, 64),
        (64, 64),
        (65, 128),
        (1000, 1024),
        (1 << 20, 1 << 20),
    ] {
        let handle = pool.allocate(hint).unwrap();
        assert_eq!(handle.capacity(), class, "hint {hint}");
        assert!(handle.is_empty());
    }
}

#[test]
fn dropped_handles_are_reused_and_reset() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    let mut handle = pool.allocate(1000).unwrap();
    handle.extend_from_slice(b"secret");
    let address = handle.as_ptr();
    drop(handle);
    let again = pool.allocate(900).unwrap();
    assert_eq!(again.as_ptr(), address, "same buffer reused");
    assert!(again.is_empty(), "previous contents cleared");
    let stats = pool.stats();
    assert_eq!(stats.allocations, 2);
    assert_eq!(stats.reuses, 1);
    assert_eq!(stats.fresh, 1);
    assert!((stats.hit_rate - 0.5).abs() < 1e-12);
    assert_eq!(stats.outstanding, 1);
}

#[test]
fn seed_accessors_work_on_a_mutable_binding() {
    let pool = MemoryPool::<Vec<u8>>::new();
    let mut handle = pool.allocate(16).unwrap();
    handle.as_mut().unwrap().push(7);
    assert_eq!(handle.as_ref().unwrap().as_slice(), &[7]);
    assert_eq!(&handle[..], &[7]);
}

#[test]
fn oversize_requests_get_an_unpooled_value_that_is_not_kept() {
    let pool = builder::<Vec<u8>>()
        .size_classes([64, 128])
        .build()
        .unwrap();
    let handle = pool.allocate(1000).unwrap();
    assert!(handle.capacity() >= 1000);
    drop(handle);
    let stats = pool.stats();
    assert_eq!(stats.oversize, 1);
    assert_eq!(stats.discarded, 1);
    assert_eq!(stats.retained_count, 0);
    assert_eq!(stats.releases, 1);
}

#[test]
fn allocate_exact_refuses_sizes_over_the_largest_class() {
    let pool = MemoryPool::<Vec<u8>>::builder()
        .size_classes([64, 256])
        .build()
        .unwrap();
    assert_eq!(pool.allocate_exact(256).unwrap().capacity(), 256);
    assert_eq!(pool.allocate_exact(65).unwrap().capacity(), 256);
    match pool.allocate_exact(257) {
        Err(MemoryError::SizeTooLarge { size, largest }) => {
            assert_eq!((size, largest), (257, 256));
        }
        other => panic!("expected SizeTooLarge, got {other:?}"),
    }
}

#[test]
fn impossible_sizes_are_errors_not_panics() {
    let pool = MemoryPool::<Vec<u64>>::new();
    assert!(matches!(
        pool.allocate(usize::MAX),
        Err(MemoryError::AllocationFailed { .. })
    ));
}

#[test]
fn deallocate_returns_the_value_and_refuses_foreign_handles() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    let other = builder::<Vec<u8>>().build().unwrap();
    let handle = pool.allocate(100).unwrap();
    pool.deallocate(handle).unwrap();
    assert_eq!(pool.stats().retained_count, 1);

    let foreign = other.allocate(100).unwrap();
    assert!(matches!(
        pool.deallocate(foreign),
        Err(MemoryError::ForeignHandle)
    ));
    assert_eq!(other.stats().retained_count, 1, "went home to its own pool");
    assert_eq!(pool.stats().retained_count, 1);
}

#[test]
fn into_inner_detaches_the_value() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    let mut handle = pool.allocate(100).unwrap();
    handle.push(1);
    let value = handle.into_inner().unwrap();
    assert_eq!(value, vec![1]);
    let stats = pool.stats();
    assert_eq!(stats.detached, 1);
    assert_eq!(stats.releases, 0);
    assert_eq!(stats.outstanding, 0);
    assert_eq!(stats.retained_count, 0);
}

#[test]
fn retained_bytes_never_pass_the_bound() {
    let pool = builder::<Vec<u8>>()
        .max_retained_bytes(3 * 1024)
        .build()
        .unwrap();
    let handles: Vec<_> = (0..10).map(|_| pool.allocate(1024).unwrap()).collect();
    drop(handles);
    let stats = pool.stats();
    assert_eq!(stats.retained_count, 3);
    assert_eq!(stats.retained_bytes, 3 * 1024);
    assert_eq!(stats.discarded, 7);
    assert_eq!(stats.releases, 10);
}

#[test]
fn values_that_grew_go_to_the_class_of_their_capacity() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    let mut handle = pool.allocate(64).unwrap();
    handle.reserve_exact(5000);
    let capacity = handle.capacity();
    drop(handle);
    // 5000 <= capacity < 8192: kept in class 4096, never handed out for more.
    assert!(pool.allocate(8192).unwrap().capacity() >= 8192);
    let reused = pool.allocate(4096).unwrap();
    assert_eq!(reused.capacity(), capacity);
}

#[test]
fn idle_buffers_are_trimmed_past_the_fragmentation_threshold() {
    let pool = builder::<Vec<u8>>()
        .trim_interval(4)
        .fragmentation_threshold(0.5)
        .build()
        .unwrap();
    // A burst of 10, then a steady cycle of one: the burst's buffers go idle, move from
    // the thread's magazine to the depot at one check, and are dropped at a later one.
    let burst: Vec<_> = (0..10).map(|_| pool.allocate(512).unwrap()).collect();
    drop(burst);
    let stats = pool.stats();
    assert_eq!((stats.trims, stats.retained_count), (0, 10));
    for _ in 0..20 {
        drop(pool.allocate(512).unwrap());
    }
    let stats = pool.stats();
    assert!(stats.trims >= 1, "{stats:?}");
    assert!(stats.retained_count <= 2, "{stats:?}");
    assert_eq!(stats.trimmed as usize + stats.retained_count, 10);
    assert_eq!(stats.trimmed_bytes, stats.trimmed * 512);
    assert_eq!(stats.fresh, 10, "the cycle itself always reused");
    assert_eq!(stats.retained_bytes, stats.retained_count * 512);
}

#[test]
fn a_depot_under_the_threshold_keeps_its_values() {
    let pool = builder::<Vec<u8>>()
        .trim_interval(4)
        .fragmentation_threshold(1.0)
        .build()
        .unwrap();
    let burst: Vec<_> = (0..10).map(|_| pool.allocate(512).unwrap()).collect();
    drop(burst);
    for _ in 0..40 {
        drop(pool.allocate(512).unwrap());
    }
    let stats = pool.stats();
    assert_eq!(stats.trims, 0, "fragmentation never exceeds 1.0");
    assert_eq!(stats.retained_count, 10);
    assert!(stats.fragmentation > 0.5, "{stats:?}");
}

#[test]
fn a_steady_cycle_is_never_trimmed() {
    let pool = builder::<Vec<u8>>().trim_interval(2).build().unwrap();
    for _ in 0..100 {
        let a = pool.allocate(100).unwrap();
        let b = pool.allocate(100).unwrap();
        drop((a, b));
    }
    let stats = pool.stats();
    assert_eq!(stats.trims, 0);
    assert_eq!(stats.fresh, 2);
    assert_eq!(stats.reuses, 198);
    assert_eq!(stats.fragmentation, 0.0);
}

#[test]
fn trim_twice_without_use_empties_and_clear_drops_everything() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    let burst: Vec<_> = (0..4).map(|_| pool.allocate(256).unwrap()).collect();
    drop(burst);
    // The interval began with empty lists, so nothing is idle yet; after a whole
    // interval without use, all four are.
    assert_eq!(pool.trim(), 0);
    assert_eq!(pool.stats().retained_count, 4);
    assert_eq!(pool.trim(), 4 * 256);
    assert_eq!(pool.stats().retained_count, 0);

    let burst: Vec<_> = (0..3).map(|_| pool.allocate(64).unwrap()).collect();
    drop(burst);
    assert_eq!(pool.clear(), 3 * 64);
    let stats = pool.stats();
    assert_eq!(stats.retained_bytes, 0);
    assert_eq!(stats.trimmed, 7);
}

#[test]
fn invalid_configurations_are_refused() {
    let threshold = MemoryPool::<Vec<u8>>::builder()
        .fragmentation_threshold(1.5)
        .build();
    assert!(matches!(threshold, Err(MemoryError::InvalidConfig(_))));
    let nan = MemoryPool::<Vec<u8>>::builder()
        .fragmentation_threshold(f64::NAN)
        .build();
    assert!(matches!(nan, Err(MemoryError::InvalidConfig(_))));
    let interval = MemoryPool::<Vec<u8>>::builder().trim_interval(0).build();
    assert!(matches!(interval, Err(MemoryError::InvalidConfig(_))));
    let zero = MemoryPool::<Vec<u8>>::builder().size_classes([0]).build();
    assert!(matches!(zero, Err(MemoryError::InvalidSize { .. })));
}

#[test]
fn config_reports_what_is_in_effect() {
    let pool = MemoryPool::<String>::builder()
        .size_classes([300, 100, 200, 100])
        .magazine_size(1000)
        .build()
        .unwrap();
    assert_eq!(pool.size_classes(), &[100, 200, 300]);
    assert_eq!(pool.config().magazine_size, 1000);
    assert_eq!(pool.allocate(150).unwrap().capacity(), 200);
}

#[test]
fn generic_vectors_and_strings_are_pooled() {
    let pool = builder::<Vec<u64>>().build().unwrap();
    let mut handle = pool.allocate(100).unwrap();
    handle.extend(0..100);
    assert_eq!(handle.capacity(), 128);
    drop(handle);
    let stats = pool.stats();
    assert_eq!(stats.retained_bytes, 128 * 8, "heap bytes, not elements");

    let strings = builder::<String>().build().unwrap();
    let mut s = strings.allocate(10).unwrap();
    s.push_str("hello");
    drop(s);
    assert!(strings.allocate(10).unwrap().is_empty());
    assert_eq!(strings.stats().reuses, 1);
}

#[test]
fn owned_handles_outlive_the_borrow_and_return_from_another_thread() {
    let pool = Arc::new(builder::<Vec<u8>>().build().unwrap());
    let mut handle = pool.allocate_owned(2048).unwrap();
    handle.push(1);
    std::thread::spawn(move || drop(handle)).join().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.releases, 1);
    assert_eq!(stats.retained_count, 1);
    assert_eq!(Arc::strong_count(&pool), 1);
}

#[test]
fn values_released_by_another_thread_are_reused() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    let handle = pool.allocate(4096).unwrap();
    // That thread never allocated from the pool, so the value goes to the shared depot.
    std::thread::scope(|scope| {
        scope.spawn(move || drop(handle));
    });
    drop(pool.allocate(4096).unwrap());
    let stats = pool.stats();
    assert_eq!((stats.reuses, stats.fresh, stats.refills), (1, 1, 1));
}

#[test]
fn a_full_magazine_flushes_a_batch_to_the_depot() {
    // 4096 units per class: the 1024 class keeps 4 values per thread.
    let pool = builder::<Vec<u8>>().magazine_size(4096).build().unwrap();
    let burst: Vec<_> = (0..9).map(|_| pool.allocate(1024).unwrap()).collect();
    drop(burst);
    let stats = pool.stats();
    assert_eq!(stats.retained_count, 9);
    assert_eq!(
        stats.flushes, 3,
        "4 kept, then a batch of 2 moved per overflow"
    );
    // Another thread finds the flushed values in the depot.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let taken: Vec<_> = (0..4).map(|_| pool.allocate(1024).unwrap()).collect();
            drop(taken);
        });
    });
    let stats = pool.stats();
    assert_eq!(stats.fresh, 9);
    assert_eq!(stats.reuses, 4);
    assert!(stats.refills >= 2);
}

#[test]
fn clear_reaches_other_threads_at_their_next_operation() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    let (to_worker, worker_rx) = std::sync::mpsc::channel::<()>();
    let (to_main, main_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let pool = &pool;
        scope.spawn(move || {
            drop(pool.allocate(2048).unwrap());
            to_main.send(()).unwrap();
            worker_rx.recv().unwrap();
            // The old value was cleared: this one must be new.
            drop(pool.allocate(2048).unwrap());
        });
        main_rx.recv().unwrap();
        assert_eq!(pool.stats().retained_count, 1, "in the worker's magazine");
        assert_eq!(pool.clear(), 0, "nothing of this thread or the depot");
        to_worker.send(()).unwrap();
    });
    let stats = pool.stats();
    assert_eq!(stats.fresh, 2);
    assert_eq!(stats.trimmed, 1);
    assert_eq!(stats.retained_count, 1);
}

#[test]
fn debug_output_names_the_configuration() {
    let pool = MemoryPool::<Vec<u8>>::new();
    let text = format!("{pool:?}");
    assert!(text.contains("fragmentation_threshold"), "{text}");
    let handle = pool.allocate(1).unwrap();
    assert!(format!("{handle:?}").contains("PoolHandle"));
}

#[test]
fn pools_and_handles_cross_threads() {
    fn send_sync<S: Send + Sync>() {}
    fn send<S: Send>() {}
    send_sync::<MemoryPool<Vec<u8>>>();
    send_sync::<PoolHandle<'static, Vec<u8>>>();
    send::<PoolHandle<'static, String>>();
    assert_eq!(
        size_of::<MemoryPool<Vec<u8>>>(),
        size_of::<usize>(),
        "a pool is one pointer"
    );
}

/// Runs `rounds` rounds of: this thread allocates `count` values of `size`, a second,
/// long-lived thread drops them all.
fn producer_consumer(pool: &MemoryPool<Vec<u8>>, size: usize, count: usize, rounds: usize) {
    let (to_consumer, batches) = std::sync::mpsc::sync_channel::<Vec<PoolHandle<'_, Vec<u8>>>>(1);
    let (to_producer, done) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for batch in batches {
                drop(batch);
                to_producer.send(()).unwrap();
            }
        });
        for _ in 0..rounds {
            let batch: Vec<_> = (0..count)
                .map(|_| {
                    let mut handle = pool.allocate(size).unwrap();
                    assert!(handle.capacity() >= size);
                    handle.push(1);
                    handle
                })
                .collect();
            to_consumer.send(batch).unwrap();
            done.recv().unwrap();
        }
        drop(to_consumer);
    });
}

fn assert_stats_add_up(stats: &PoolStats) {
    assert_eq!(
        stats.allocations,
        stats.reuses + stats.fresh + stats.oversize
    );
    assert_eq!(stats.releases, stats.returned + stats.discarded);
    assert_eq!(
        stats.outstanding,
        stats.allocations - stats.releases - stats.detached
    );
    assert_eq!(
        stats.retained_count as u64,
        stats.returned - stats.reuses - stats.trimmed
    );
    assert!(stats.retained_bytes <= stats.max_retained_bytes);
}

#[test]
fn a_thread_that_only_releases_gets_a_magazine_and_its_values_come_back() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    producer_consumer(&pool, 100, 64, 20);
    let stats = pool.stats();
    assert_stats_add_up(&stats);
    assert_eq!((stats.allocations, stats.releases), (20 * 64, 20 * 64));
    // The consumer's first releases go to the depot one by one; then it has a
    // magazine, which hands full batches over.
    assert!(stats.flushes > 0, "{stats:?}");
    assert!(stats.refills > 0, "{stats:?}");
    // What the consumer keeps in its magazine between batches is bounded (a class's
    // cap), so after the first rounds every allocation is a reuse.
    assert!(stats.fresh <= 3 * 64, "{stats:?}");
    assert_eq!(stats.discarded, 0);
}

#[test]
fn a_producer_and_consumer_cycling_the_whole_budget_of_large_values_drop_none() {
    // 16 values of 4 KiB fill the budget exactly; values of a quarter credit chunk
    // (64 KiB / 64 / 4 = 256 bytes) or more are large.
    let pool = builder::<Vec<u8>>()
        .max_retained_bytes(16 * 4096)
        .build()
        .unwrap();
    producer_consumer(&pool, 4096, 16, 30);
    let stats = pool.stats();
    assert_stats_add_up(&stats);
    // Nothing waits in the consumer's magazine and no credit is stranded in the
    // producer's, so the same 16 values go round.
    assert_eq!(stats.fresh, 16, "{stats:?}");
    assert_eq!(stats.discarded, 0, "{stats:?}");
    assert_eq!(stats.reuses, 29 * 16);
    assert_eq!(stats.retained_bytes, 16 * 4096);
}

#[test]
fn a_thread_cycling_one_value_stays_in_its_magazine() {
    let pool = builder::<Vec<u8>>().build().unwrap();
    for size in [64, 1024, 256 << 10] {
        for _ in 0..100 {
            let mut handle = pool.allocate(size).unwrap();
            handle.push(7);
        }
    }
    let stats = pool.stats();
    assert_stats_add_up(&stats);
    assert_eq!((stats.fresh, stats.reuses), (3, 297));
    assert_eq!((stats.refills, stats.flushes, stats.discarded), (0, 0, 0));
    assert_eq!(stats.retained_bytes, 64 + 1024 + (256 << 10));
}

#[test]
fn values_of_another_pool_never_come_from_the_cache() {
    // Two pools used in turn on one thread: each operation finds the other pool's
    // magazine cached and must claim its own.
    let a = builder::<Vec<u8>>().build().unwrap();
    let b = builder::<Vec<u8>>().build().unwrap();
    let address_a = {
        let handle = a.allocate(512).unwrap();
        handle.as_ptr()
    };
    for _ in 0..10 {
        let from_b = b.allocate(512).unwrap();
        assert_ne!(from_b.as_ptr(), address_a);
        let from_a = a.allocate(512).unwrap();
        assert_eq!(from_a.as_ptr(), address_a, "a's value, from a's magazine");
        drop((from_a, from_b));
    }
    assert_eq!((a.stats().fresh, b.stats().fresh), (1, 1));
    // A dropped pool's key is never reused, so its cached magazine is never used again.
    drop(a);
    let c = builder::<Vec<u8>>().build().unwrap();
    assert_eq!(c.stats().retained_count, 0);
    drop(c.allocate(512).unwrap());
    assert_eq!(c.stats().fresh, 1);
}
