//! Criterion benches of the work-stealing scheduler against rayon and tokio (two workers
//! each): tokio's scheduler micro-benchmarks (spawn_many, chained_spawn, ping_pong,
//! yield_many), fork-join fib(30) and a parallel sort of 10M u64.
//!
//! Naming (read by the harness): group = scenario id, function = subject. Where rayon has no
//! futures (ping_pong, yield_many) its side is the same work in continuation-passing style:
//! every await becomes a spawn of the rest of the task (`spawn_fifo` for a yield).

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rust_ai_ide_scheduler::{SchedulerConfig, WorkStealingScheduler, join, yield_now};

const WORKERS: usize = 2;
const NUM_SPAWN: usize = 10_000;
const CHAIN: usize = 1_000;
const NUM_PINGS: usize = 1_000;
const NUM_YIELD: usize = 1_000;
const YIELD_TASKS: usize = 200;
const FIB_N: u64 = 30;
const SORT_LEN: usize = 10_000_000;
/// Below this many elements the parallel quicksort sorts sequentially.
const SORT_SEQUENTIAL: usize = 8 * 1024;

struct Subjects {
    perflab: WorkStealingScheduler,
    rayon: rayon::ThreadPool,
    tokio: tokio::runtime::Runtime,
}

fn subjects() -> Subjects {
    Subjects {
        perflab: WorkStealingScheduler::new(SchedulerConfig::with_workers(WORKERS))
            .expect("perflab scheduler"),
        rayon: rayon::ThreadPoolBuilder::new()
            .num_threads(WORKERS)
            .build()
            .expect("rayon pool"),
        tokio: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .enable_all()
            .build()
            .expect("tokio runtime"),
    }
}

/// Decrements `rem`; the last one signals `done`.
fn count_down(rem: &AtomicUsize, done: &SyncSender<()>) {
    if rem.fetch_sub(1, Ordering::Relaxed) == 1 {
        done.send(()).expect("bench waits");
    }
}

fn spawn_many(c: &mut Criterion, s: &Subjects) {
    let (tx, rx) = sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    let mut g = c.benchmark_group("scheduler/spawn_many/n10k");
    g.bench_function("perflab", |b| {
        b.iter(|| {
            rem.store(NUM_SPAWN, Ordering::Relaxed);
            let (rem, tx) = (Arc::clone(&rem), tx.clone());
            s.perflab
                .spawn(move || {
                    for _ in 0..NUM_SPAWN {
                        let (rem, tx) = (Arc::clone(&rem), tx.clone());
                        rust_ai_ide_scheduler::spawn(move || count_down(&rem, &tx))
                            .expect("on a worker");
                    }
                })
                .expect("spawn");
            rx.recv().expect("all ran");
        });
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            rem.store(NUM_SPAWN, Ordering::Relaxed);
            let (rem, tx) = (Arc::clone(&rem), tx.clone());
            s.rayon.spawn(move || {
                for _ in 0..NUM_SPAWN {
                    let (rem, tx) = (Arc::clone(&rem), tx.clone());
                    rayon::spawn(move || count_down(&rem, &tx));
                }
            });
            rx.recv().expect("all ran");
        });
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rem.store(NUM_SPAWN, Ordering::Relaxed);
            let (rem, tx) = (Arc::clone(&rem), tx.clone());
            s.tokio.spawn(async move {
                for _ in 0..NUM_SPAWN {
                    let (rem, tx) = (Arc::clone(&rem), tx.clone());
                    tokio::spawn(async move { count_down(&rem, &tx) });
                }
            });
            rx.recv().expect("all ran");
        });
    });
    g.finish();
}

fn chained_spawn(c: &mut Criterion, s: &Subjects) {
    fn perflab_step(left: usize, done: SyncSender<()>) {
        if left == 0 {
            done.send(()).expect("bench waits");
        } else {
            rust_ai_ide_scheduler::spawn(move || perflab_step(left - 1, done)).expect("worker");
        }
    }
    fn rayon_step(left: usize, done: SyncSender<()>) {
        if left == 0 {
            done.send(()).expect("bench waits");
        } else {
            rayon::spawn(move || rayon_step(left - 1, done));
        }
    }
    fn tokio_step(left: usize, done: SyncSender<()>) {
        if left == 0 {
            done.send(()).expect("bench waits");
        } else {
            tokio::spawn(async move { tokio_step(left - 1, done) });
        }
    }
    let (tx, rx) = sync_channel(1000);
    let mut g = c.benchmark_group("scheduler/chained_spawn/depth1k");
    g.bench_function("perflab", |b| {
        b.iter(|| {
            let tx = tx.clone();
            s.perflab
                .spawn(move || perflab_step(CHAIN, tx))
                .expect("spawn");
            rx.recv().expect("chain done");
        });
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let tx = tx.clone();
            s.rayon.spawn(move || rayon_step(CHAIN, tx));
            rx.recv().expect("chain done");
        });
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let tx = tx.clone();
            s.tokio.spawn(async move { tokio_step(CHAIN, tx) });
            rx.recv().expect("chain done");
        });
    });
    g.finish();
}

fn ping_pong(c: &mut Criterion, s: &Subjects) {
    let (tx, rx) = sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    let mut g = c.benchmark_group("scheduler/ping_pong/n1k");
    g.bench_function("perflab", |b| {
        b.iter(|| {
            rem.store(NUM_PINGS, Ordering::Relaxed);
            let (rem, tx) = (Arc::clone(&rem), tx.clone());
            s.perflab
                .spawn(move || {
                    for _ in 0..NUM_PINGS {
                        let (rem, tx) = (Arc::clone(&rem), tx.clone());
                        rust_ai_ide_scheduler::spawn_future(async move {
                            let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
                            let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
                            rust_ai_ide_scheduler::spawn_future(async move {
                                rx1.await.expect("ping");
                                tx2.send(()).expect("pong");
                            })
                            .expect("worker");
                            tx1.send(()).expect("ping");
                            rx2.await.expect("pong");
                            count_down(&rem, &tx);
                        })
                        .expect("worker");
                    }
                })
                .expect("spawn");
            rx.recv().expect("all pinged");
        });
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            rem.store(NUM_PINGS, Ordering::Relaxed);
            let (rem, tx) = (Arc::clone(&rem), tx.clone());
            s.rayon.spawn(move || {
                for _ in 0..NUM_PINGS {
                    let (rem, tx) = (Arc::clone(&rem), tx.clone());
                    // Task, its ping to a second task, and the pong back as a continuation.
                    rayon::spawn(move || {
                        rayon::spawn(move || rayon::spawn(move || count_down(&rem, &tx)));
                    });
                }
            });
            rx.recv().expect("all pinged");
        });
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rem.store(NUM_PINGS, Ordering::Relaxed);
            let (rem, tx) = (Arc::clone(&rem), tx.clone());
            s.tokio.spawn(async move {
                for _ in 0..NUM_PINGS {
                    let (rem, tx) = (Arc::clone(&rem), tx.clone());
                    tokio::spawn(async move {
                        let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
                        let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
                        tokio::spawn(async move {
                            rx1.await.expect("ping");
                            tx2.send(()).expect("pong");
                        });
                        tx1.send(()).expect("ping");
                        rx2.await.expect("pong");
                        count_down(&rem, &tx);
                    });
                }
            });
            rx.recv().expect("all pinged");
        });
    });
    g.finish();
}

fn yield_many(c: &mut Criterion, s: &Subjects) {
    fn rayon_step(left: usize, done: SyncSender<()>) {
        if left == 0 {
            done.send(()).expect("bench waits");
        } else {
            rayon::spawn_fifo(move || rayon_step(left - 1, done));
        }
    }
    let (tx, rx) = sync_channel(YIELD_TASKS);
    let mut g = c.benchmark_group("scheduler/yield_many/n1k");
    g.bench_function("perflab", |b| {
        b.iter(|| {
            for _ in 0..YIELD_TASKS {
                let tx = tx.clone();
                s.perflab
                    .spawn_future(async move {
                        for _ in 0..NUM_YIELD {
                            yield_now().await;
                        }
                        tx.send(()).expect("bench waits");
                    })
                    .expect("spawn");
            }
            for _ in 0..YIELD_TASKS {
                rx.recv().expect("task done");
            }
        });
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            for _ in 0..YIELD_TASKS {
                let tx = tx.clone();
                s.rayon.spawn_fifo(move || rayon_step(NUM_YIELD, tx));
            }
            for _ in 0..YIELD_TASKS {
                rx.recv().expect("task done");
            }
        });
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            for _ in 0..YIELD_TASKS {
                let tx = tx.clone();
                s.tokio.spawn(async move {
                    for _ in 0..NUM_YIELD {
                        tokio::task::yield_now().await;
                    }
                    tx.send(()).expect("bench waits");
                });
            }
            for _ in 0..YIELD_TASKS {
                rx.recv().expect("task done");
            }
        });
    });
    g.finish();
}

fn fib_perflab(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = join(|| fib_perflab(n - 1), || fib_perflab(n - 2));
    a + b
}

fn fib_rayon(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

fn fib_tokio(n: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < 2 {
            return n;
        }
        let a = tokio::spawn(fib_tokio(n - 1));
        let b = fib_tokio(n - 2).await;
        a.await.expect("fib task") + b
    })
}

fn fib(c: &mut Criterion, s: &Subjects) {
    let mut g = c.benchmark_group("scheduler/fib/n30");
    g.sample_size(10);
    g.bench_function("perflab", |b| {
        b.iter(|| {
            let v = s
                .perflab
                .install(|| fib_perflab(black_box(FIB_N)))
                .expect("install");
            assert_eq!(v, 832_040);
        });
    });
    g.bench_function("rayon", |b| {
        b.iter(|| assert_eq!(s.rayon.install(|| fib_rayon(black_box(FIB_N))), 832_040));
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let v = s
                .tokio
                .block_on(async { tokio::spawn(fib_tokio(black_box(FIB_N))).await })
                .expect("fib");
            assert_eq!(v, 832_040);
        });
    });
    g.finish();
}

/// Splits `v` into two halves, each element of the first no greater than any of the
/// second: std's selection (block partitioning, the same partitioning as its
/// `sort_unstable`), so the subjects differ only in how they run the halves in parallel.
fn halves(v: &mut [u64]) -> (&mut [u64], &mut [u64]) {
    let mid = v.len() / 2;
    v.select_nth_unstable(mid);
    v.split_at_mut(mid)
}

fn sort_perflab(v: &mut [u64]) {
    if v.len() <= SORT_SEQUENTIAL {
        v.sort_unstable();
        return;
    }
    let (l, r) = halves(v);
    join(|| sort_perflab(l), || sort_perflab(r));
}

/// A slice handed to a tokio task; the spawner awaits the task before the slice's owner
/// returns, which tokio's `'static` bound cannot see.
struct SliceMut(*mut u64, usize);

// SAFETY: the slices of concurrent tasks are disjoint (split_at_mut), and each is used by
// one task at a time.
unsafe impl Send for SliceMut {}

impl SliceMut {
    /// # Safety
    /// The buffer is alive and no other live slice overlaps this one.
    unsafe fn slice<'a>(self) -> &'a mut [u64] {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.0, self.1) }
    }
}

fn sort_tokio(part: SliceMut) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        // SAFETY: see `SliceMut`: the buffer outlives every task, which are awaited.
        let v = unsafe { part.slice() };
        if v.len() <= SORT_SEQUENTIAL {
            v.sort_unstable();
            return;
        }
        let (l, r) = halves(v);
        let right = tokio::spawn(sort_tokio(SliceMut(r.as_mut_ptr(), r.len())));
        sort_tokio(SliceMut(l.as_mut_ptr(), l.len())).await;
        right.await.expect("sort task");
    })
}

fn sort(c: &mut Criterion, s: &Subjects) {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let input: Vec<u64> = (0..SORT_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    let mut work = input.clone();
    let mut g = c.benchmark_group("scheduler/sort/u64_10m");
    g.sample_size(10);
    let mut run = |name: &str, sort: &mut dyn FnMut(&mut [u64])| {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    work.copy_from_slice(&input);
                    let start = Instant::now();
                    sort(&mut work);
                    total += start.elapsed();
                    assert!(work.is_sorted(), "{name} sorted");
                }
                total
            });
        });
    };
    run("perflab", &mut |v| {
        s.perflab.install(|| sort_perflab(v)).expect("install")
    });
    run("rayon", &mut |v| {
        s.rayon
            .install(|| rayon::slice::ParallelSliceMut::par_sort_unstable(v));
    });
    run("tokio", &mut |v| {
        let part = SliceMut(v.as_mut_ptr(), v.len());
        let sorting = s.tokio.spawn(sort_tokio(part));
        s.tokio.block_on(sorting).expect("sort");
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let s = subjects();
    spawn_many(c, &s);
    chained_spawn(c, &s);
    ping_pong(c, &s);
    yield_many(c, &s);
    fib(c, &s);
    sort(c, &s);
}

criterion_group!(scheduler, benches);
criterion_main!(scheduler);
