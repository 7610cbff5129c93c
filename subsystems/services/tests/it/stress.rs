//! Seeded stress test: two threads hammer fresh managers with first requests, scripted
//! failures, timeouts and a shutdown racing the requests.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_services::{
    InitializationError, LazyServiceManager, ResourceCapacity, ResourceLimiter, ServiceDescriptor,
    ServiceError,
};

use crate::fixture::{Log, Node, Script, assert_dependencies_first, register, runtime};

const SEED: u64 = 0x5345_5256_4943_4553;
const ROUNDS: usize = 60;
const SERVICES: usize = 30;
const REQUESTS_PER_TASK: usize = 40;

#[test]
fn two_threads_hammer_first_requests_and_shutdown() {
    let rt = runtime();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    for round in 0..ROUNDS {
        let log = Arc::new(Log::default());
        let limiter = ResourceLimiter::new(ResourceCapacity::new(1 << 20, 4));
        let mut m = LazyServiceManager::with_resource_limiter(limiter.clone());
        for i in 0..SERVICES {
            let ndeps = if i == 0 {
                0
            } else {
                rng.random_range(0..=3usize.min(i))
            };
            let mut deps: Vec<usize> = (0..ndeps).map(|_| rng.random_range(0..i)).collect();
            deps.sort_unstable();
            deps.dedup();
            let roll = rng.random_range(0..100u32);
            let script = Script {
                delay: Duration::from_micros(rng.random_range(0..300)),
                fail: u32::from(roll < 10),
                hang: u32::from((10..13).contains(&roll)),
                ..Script::default()
            };
            register(
                &mut m,
                ServiceDescriptor::new(format!("s{i}"))
                    .depends_on(deps.iter().map(|d| format!("s{d}")))
                    .timeout(Duration::from_millis(20))
                    .resources(rust_ai_ide_services::ResourceBudget::new(1024, 1)),
                &log,
                script,
            )
            .expect("edges point to lower indices");
        }
        let m = Arc::new(m);
        let shutdown_early = round % 3 == 0;
        let plans: Vec<Vec<usize>> = (0..2)
            .map(|_| {
                (0..REQUESTS_PER_TASK)
                    .map(|_| rng.random_range(0..SERVICES))
                    .collect()
            })
            .collect();
        let shut = rt.block_on(async {
            let tasks: Vec<_> = plans
                .into_iter()
                .map(|plan| {
                    let m = Arc::clone(&m);
                    tokio::spawn(async move {
                        for i in plan {
                            let id = format!("s{i}");
                            loop {
                                match m.get_service::<Node>(&id).await {
                                    Ok(node) => {
                                        assert_eq!(node.id, id);
                                        break;
                                    }
                                    Err(ServiceError::Initialization(
                                        InitializationError::ShutDown,
                                    )) => return,
                                    Err(_) => {}
                                }
                            }
                        }
                    })
                })
                .collect();
            let early = if shutdown_early {
                tokio::time::sleep(Duration::from_micros(500)).await;
                Some(m.shutdown().await)
            } else {
                None
            };
            for t in tasks {
                t.await.expect("task");
            }
            match early {
                Some(order) => order,
                None => m.shutdown().await,
            }
        });
        let built = log.built();
        let counts = log.build_counts();
        assert!(
            counts.values().all(|&c| c == 1),
            "round {round}: {counts:?}"
        );
        assert_dependencies_first(&m, &built);
        // Everything built was shut down exactly once: nothing started behind shutdown's back.
        let shut_ids: Vec<String> = shut.iter().map(ToString::to_string).collect();
        assert_eq!(
            shut_ids.iter().collect::<HashSet<_>>(),
            built.iter().collect::<HashSet<_>>(),
            "round {round}"
        );
        assert_eq!(log.shut().len(), built.len());
        let usage = limiter.usage();
        assert_eq!(
            (
                usage.memory_reserved,
                usage.init_slots_in_use,
                usage.waiting
            ),
            (0, 0, 0),
            "round {round}: {usage:?}"
        );
        assert!(usage.peak_init_slots <= 4);
        let stats = m.initialization_stats();
        for (id, s) in &stats.services {
            assert!(s.attempts >= s.failures, "{id}: {s:?}");
            if built.iter().any(|b| b == id.as_str()) {
                assert_eq!(s.attempts, s.failures + 1, "round {round} {id}: {s:?}");
            }
        }
    }
}
