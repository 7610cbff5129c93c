//! The reverse proxy on loopback: forwarding, spreading, affinity, and surviving a killed backend.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rust_ai_ide_balancer::{
    AFFINITY_HEADER, BalancerConfig, BalancerProxy, GeoLocation, InstanceInfo,
    IntelligentLoadBalancer, ProxyConfig,
};

use crate::fixture::{Backend, get};

async fn setup(
    n: usize,
    delay: Duration,
) -> (Vec<Backend>, IntelligentLoadBalancer, BalancerProxy) {
    let lb = IntelligentLoadBalancer::new(BalancerConfig::default());
    let mut backends = Vec::new();
    for i in 0..n {
        let be = Backend::start(&format!("b{i}"), delay).await;
        lb.add_instance(
            InstanceInfo::new(format!("b{i}"), GeoLocation::default()).with_address(be.addr),
        )
        .await
        .expect("add");
        backends.push(be);
    }
    let proxy = BalancerProxy::start(
        lb.clone(),
        ProxyConfig {
            upstream_timeout: Duration::from_secs(5),
            ..ProxyConfig::default()
        },
    )
    .await
    .expect("start proxy");
    (backends, lb, proxy)
}

#[tokio::test]
async fn forwards_requests_and_learns_latencies() {
    let (backends, lb, proxy) = setup(3, Duration::from_millis(100)).await;
    let addr = proxy.local_addr();
    // Concurrent first: before an instance has answered it takes one request at a time
    // (slow start), so a burst sent within the backends' 100 ms reaches every backend.
    let burst: Vec<_> = (0..30)
        .map(|_| tokio::spawn(async move { get(addr, "/work?x=1", &[]).await }))
        .collect();
    let mut by_upstream: HashMap<String, usize> = HashMap::new();
    for h in burst {
        let (status, body, upstream) = h.await.expect("client task");
        assert_eq!(status, 200);
        let upstream = upstream.expect("upstream header");
        assert_eq!(body, format!("hello from {upstream}"));
        *by_upstream.entry(upstream).or_default() += 1;
    }
    assert_eq!(by_upstream.len(), 3, "{by_upstream:?}");
    for _ in 0..10 {
        let (status, _, upstream) = get(addr, "/work", &[]).await;
        assert_eq!(status, 200);
        assert!(upstream.is_some());
    }
    let served: u64 = backends
        .iter()
        .map(|b| b.served.load(Ordering::Relaxed))
        .sum();
    assert_eq!(served, 40);
    let stats = lb.load_distribution_stats();
    assert_eq!(stats.total_routed, 40);
    for i in &stats.instances {
        assert!(i.load.completed > 0, "{i:?}");
        // Learned from real 100 ms responses, not the 30 ms default guess.
        assert!(
            i.load.latency_estimate >= Duration::from_millis(90),
            "{:?}",
            i.load
        );
        assert_eq!(i.load.in_flight, 0);
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn affinity_key_sticks_to_one_backend() {
    let (_backends, _lb, proxy) = setup(4, Duration::from_millis(1)).await;
    let (_, _, first) = get(proxy.local_addr(), "/", &[(AFFINITY_HEADER, "user-42")]).await;
    for _ in 0..20 {
        let (status, _, upstream) =
            get(proxy.local_addr(), "/", &[(AFFINITY_HEADER, "user-42")]).await;
        assert_eq!(status, 200);
        assert_eq!(upstream, first);
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn killed_backend_costs_no_client_errors() {
    let (backends, lb, proxy) = setup(3, Duration::from_millis(1)).await;
    backends[1].kill();
    for _ in 0..60 {
        let (status, body, _) = get(proxy.local_addr(), "/", &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let stats = lb.load_distribution_stats();
    let dead = &stats.instances[1];
    assert!(dead.load.failures >= 1 || dead.routed == 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn no_routable_backend_gives_503() {
    let (_backends, lb, proxy) = setup(1, Duration::from_millis(1)).await;
    lb.update_instance_health(
        &rust_ai_ide_balancer::InstanceId::from("b0"),
        rust_ai_ide_balancer::HealthStatus::Unhealthy,
    )
    .await
    .expect("update");
    let (status, body, _) = get(proxy.local_addr(), "/", &[]).await;
    assert_eq!(status, 503);
    assert!(body.contains("no healthy instance"), "{body}");
    proxy.shutdown().await;
}
