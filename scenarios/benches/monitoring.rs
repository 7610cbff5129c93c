//! Criterion benches of metric recording: `FastRecorder` against the `metrics` crate's
//! `PrometheusRecorder`, two threads recording at once through the facade's macros.
//!
//! Naming (read by the harness): group = scenario id, function = subject. One iteration is
//! one record on each of the two threads, so the time per iteration is the cost of a record
//! while another thread records the same metric.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::Recorder;
use metrics_exporter_prometheus::PrometheusBuilder;
use rust_ai_ide_monitoring::FastRecorder;

/// Runs `op(i)` for `i` in `0..iters` on this thread and on a second one, both started by one
/// barrier, each with `recorder` as its local `metrics` recorder; returns the wall time until
/// both are done.
fn two_threads(recorder: &(dyn Recorder + Sync), iters: u64, op: fn(u64)) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            metrics::with_local_recorder(recorder, || {
                barrier.wait();
                for i in 0..iters {
                    op(i);
                }
            });
        });
        metrics::with_local_recorder(recorder, || {
            barrier.wait();
            let start = Instant::now();
            for i in 0..iters {
                op(i);
            }
            other.join().expect("second recording thread");
            start.elapsed()
        })
    })
}

fn count(_: u64) {
    metrics::counter!("requests_total", "route" => "/complete").increment(1);
}

fn observe(i: u64) {
    // Latencies spread over three decades, as a real request histogram sees them.
    let v = black_box(1e-4 * (1 + (i.wrapping_mul(2_654_435_761) % 1000)) as f64);
    metrics::histogram!("request_seconds", "route" => "/complete").record(v);
}

fn record(c: &mut Criterion, id: &str, op: fn(u64)) {
    let mut g = c.benchmark_group(id);
    let perflab = FastRecorder::new();
    g.bench_function("perflab", |b| {
        b.iter_custom(|iters| two_threads(&perflab, iters, op));
    });
    let prometheus = PrometheusBuilder::new().build_recorder();
    g.bench_function("prometheus", |b| {
        b.iter_custom(|iters| two_threads(&prometheus, iters, op));
    });
    g.finish();
    // Both recorders saw the same records: check they kept them.
    black_box(perflab.snapshot());
    black_box(prometheus.handle().render());
}

fn benches_of(c: &mut Criterion) {
    record(c, "monitoring/record/counter", count);
    record(c, "monitoring/record/histogram", observe);
}

criterion_group!(benches, benches_of);
criterion_main!(benches);
