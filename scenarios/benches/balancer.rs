//! Criterion benches of the balancer subsystem: the cost of one routing decision and its feedback.

use criterion::{Criterion, criterion_group, criterion_main};
use rust_ai_ide_balancer::{
    BalancerConfig, GeoLocation, InstanceInfo, IntelligentLoadBalancer, Request, RoutingPolicy,
};

/// Ten instances, as in tower's workload.
const INSTANCES: usize = 10;

fn balancer(policy: RoutingPolicy) -> IntelligentLoadBalancer {
    let lb = IntelligentLoadBalancer::new(BalancerConfig {
        policy,
        ..BalancerConfig::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for i in 0..INSTANCES {
        rt.block_on(lb.add_instance(InstanceInfo::new(format!("i{i}"), GeoLocation::default())))
            .expect("add instance");
    }
    lb
}

/// `balancer/route/instances10`: start a request, complete it (feeding the estimators):
/// the intelligent policy against the round-robin one, on one thread.
fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("balancer/route/instances10");
    for (subject, policy) in [
        ("perflab", RoutingPolicy::Intelligent),
        ("round_robin", RoutingPolicy::RoundRobin),
    ] {
        let lb = balancer(policy);
        let req = Request::new();
        group.bench_function(subject, |b| {
            b.iter(|| {
                let guard = lb.start_request(&req).expect("route");
                guard.complete(true);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
