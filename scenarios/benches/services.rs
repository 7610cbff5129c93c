//! Criterion wall-time bench of the lazy service manager: a warm `get_service` (200 services
//! registered, all initialised) against a bare `std::sync::OnceLock` get and a bare
//! `tokio::sync::OnceCell` get, each handing out an `Arc` clone.
//!
//! Naming (read by the harness): group = scenario id, function = subject.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use rust_ai_ide_services::{LazyServiceManager, Service, ServiceDescriptor};

/// Services registered in the manager.
const SERVICES: usize = 200;
/// The one fetched (its name is as long as the others').
const TARGET: &str = "svc150";

struct Node;

impl Service for Node {}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn warm_get(c: &mut Criterion) {
    let rt = runtime();
    let mut manager = LazyServiceManager::new();
    for i in 0..SERVICES {
        let deps: Vec<String> = if i == 0 {
            Vec::new()
        } else {
            vec![format!("svc{:03}", i / 2)]
        };
        manager
            .register(
                ServiceDescriptor::new(format!("svc{i:03}")).depends_on(deps),
                |_| async { Ok(Node) },
            )
            .expect("acyclic");
    }
    let ids: Vec<String> = (0..SERVICES).map(|i| format!("svc{i:03}")).collect();
    rt.block_on(manager.preload_services(&ids))
        .expect("all start");
    let once_lock: OnceLock<Arc<Node>> = OnceLock::new();
    once_lock.get_or_init(|| Arc::new(Node));
    let once_cell: tokio::sync::OnceCell<Arc<Node>> = tokio::sync::OnceCell::new();
    rt.block_on(once_cell.get_or_init(|| async { Arc::new(Node) }));

    let mut group = c.benchmark_group("services/get/warm");
    group.bench_function("perflab", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        manager
                            .get_service::<Node>(black_box(TARGET))
                            .await
                            .expect("ready"),
                    );
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("oncelock", |b| {
        b.iter(|| black_box(Arc::clone(black_box(&once_lock).get().expect("set"))));
    });
    group.bench_function("tokio_oncecell", |b| {
        b.iter(|| black_box(Arc::clone(black_box(&once_cell).get().expect("set"))));
    });
    group.finish();
}

criterion_group!(benches, warm_get);
criterion_main!(benches);
