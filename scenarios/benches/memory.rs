//! Criterion wall-time benches of the memory pool against anchor pools, one and two threads.
//!
//! Naming (read by the harness): group = scenario id, function = subject.

mod subjects;

use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use perflab_scenarios::POOL_SIZES;
use subjects::{
    object_pool_cycle, object_pool_pool, opool_cycle, opool_pool, perflab_cycle, perflab_pool,
    slab_cycle, slab_obtain, slab_pool, touch, vec_cycle,
};

/// Buffers allocated per handoff. Each batch is allocated on the bench thread, then released
/// on the release thread; no more than this many are live, well under `subjects::POOL_CAP`.
const BATCH: usize = 256;

fn pool_cycle(c: &mut Criterion) {
    for (param, size) in POOL_SIZES {
        let mut group = c.benchmark_group(format!("memory/pool_cycle/{param}"));
        let perflab = perflab_pool();
        group.bench_function("perflab", |b| b.iter(|| perflab_cycle(&perflab, size)));
        let opool = opool_pool(size);
        group.bench_function("opool", |b| b.iter(|| opool_cycle(&opool, size)));
        let object_pool = object_pool_pool();
        group.bench_function("object_pool", |b| {
            b.iter(|| object_pool_cycle(&object_pool, size));
        });
        let slab = slab_pool();
        group.bench_function("sharded_slab", |b| b.iter(|| slab_cycle(&slab, size)));
        group.bench_function("vec", |b| b.iter(|| vec_cycle(size)));
        group.finish();
    }
}

fn pool_cycle_2t(c: &mut Criterion) {
    for (param, size) in POOL_SIZES {
        let mut group = c.benchmark_group(format!("memory/pool_cycle_2t/{param}"));
        let perflab = perflab_pool();
        group.bench_function("perflab", |b| {
            handoff(
                b,
                || {
                    let mut h = perflab.allocate(size).expect("perflab pool allocates");
                    touch(&mut h, size);
                    h
                },
                drop,
            );
        });
        let opool = opool_pool(size).to_rc();
        group.bench_function("opool", |b| {
            handoff(
                b,
                || {
                    // The owned guard form, because the buffer leaves this thread.
                    let mut h = Arc::clone(&opool).get_rc();
                    touch(&mut h, size);
                    h
                },
                drop,
            );
        });
        let object_pool = object_pool_pool();
        group.bench_function("object_pool", |b| {
            handoff(
                b,
                || {
                    let mut h = object_pool.pull(|| Vec::with_capacity(size));
                    touch(&mut h, size);
                    h
                },
                drop,
            );
        });
        let slab = slab_pool();
        group.bench_function("sharded_slab", |b| {
            handoff(
                b,
                || slab_obtain(&slab, size),
                |key| {
                    slab.clear(key);
                },
            );
        });
        group.bench_function("vec", |b| {
            handoff(
                b,
                || {
                    let mut v = Vec::with_capacity(std::hint::black_box(size));
                    touch(&mut v, size);
                    v
                },
                drop,
            );
        });
        group.finish();
    }
}

/// Measures `produce` on this thread with every product released by `release` on a second
/// thread, and returns the time spent in both: allocation and release are timed, the
/// channel handoff between them is not.
///
/// The two phases take turns instead of overlapping: with a streaming handoff the thread
/// wake-ups of the channel cost more than a pool operation and depend on what else the
/// machine runs, which buried the pools' differences in noise. Taking turns still sends
/// every buffer through the cross-thread release path (a remote free for the slab, the
/// releasing thread's shard for sharded pools, another thread's cache for the allocator).
fn handoff<T, P, R>(b: &mut Bencher<'_>, mut produce: P, mut release: R)
where
    T: Send,
    P: FnMut() -> T,
    R: FnMut(T) + Send,
{
    let (tx, rx) = sync_channel::<Vec<T>>(1);
    let (back_tx, back_rx) = sync_channel::<(Vec<T>, Duration)>(1);
    thread::scope(|s| {
        s.spawn(move || {
            for mut batch in rx {
                let start = Instant::now();
                for item in batch.drain(..) {
                    release(item);
                }
                let took = start.elapsed();
                if back_tx.send((batch, took)).is_err() {
                    break;
                }
            }
        });
        // The batch vector travels back and forth, so batching allocates nothing per op.
        let mut spare = Vec::with_capacity(BATCH);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH as u64);
                let mut batch = std::mem::take(&mut spare);
                let start = Instant::now();
                for _ in 0..n {
                    batch.push(produce());
                }
                total += start.elapsed();
                tx.send(batch).expect("release thread alive");
                let (empty, took) = back_rx.recv().expect("release thread answers");
                total += took;
                spare = empty;
                left -= n;
            }
            total
        });
        drop(tx);
    });
}

criterion_group!(benches, pool_cycle, pool_cycle_2t);
criterion_main!(benches);
