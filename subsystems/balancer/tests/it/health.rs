//! Health checking against real loopback servers: probes, marking unhealthy, passive ejection and recovery.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rust_ai_ide_balancer::{
    BalancerConfig, GeoLocation, HealthChecker, HealthConfig, HealthStatus, InstanceId,
    InstanceInfo, IntelligentLoadBalancer, ProbeOutcome, Request, RoutingError, RoutingPolicy,
};

use crate::fixture::{Backend, black_hole, closed_port};

fn quick_health() -> HealthConfig {
    HealthConfig {
        probe_timeout: Duration::from_millis(300),
        consecutive_failures: 3,
        cool_down: Duration::from_millis(200),
        ..HealthConfig::default()
    }
}

#[tokio::test]
async fn probe_reports_healthy_bad_status_refused_and_timeout() {
    let checker = HealthChecker::new(quick_health());
    let backend = Backend::start("a", Duration::ZERO).await;
    assert!(checker.probe(backend.addr).await.is_healthy());
    backend.health_status.store(503, Ordering::Relaxed);
    assert_eq!(
        checker.probe(backend.addr).await,
        ProbeOutcome::BadStatus(503)
    );
    let refused = closed_port().await;
    assert!(matches!(
        checker.probe(refused).await,
        ProbeOutcome::Failed(_)
    ));
    let (silent, task) = black_hole().await;
    assert_eq!(checker.probe(silent).await, ProbeOutcome::TimedOut);
    task.abort();
}

#[tokio::test]
async fn active_checks_mark_unhealthy_and_recover() {
    let lb = IntelligentLoadBalancer::new(BalancerConfig {
        health: quick_health(),
        ..BalancerConfig::default()
    });
    let a = Backend::start("a", Duration::ZERO).await;
    let b = Backend::start("b", Duration::ZERO).await;
    for (id, be) in [("a", &a), ("b", &b)] {
        lb.add_instance(InstanceInfo::new(id, GeoLocation::default()).with_address(be.addr))
            .await
            .expect("add");
    }
    let id_b = InstanceId::from("b");
    b.health_status.store(500, Ordering::Relaxed);
    // unhealthy_threshold is 2: one failed round is not enough.
    lb.check_health().await;
    assert_eq!(
        lb.instance(&id_b).expect("b").health_status,
        HealthStatus::Healthy
    );
    let round = lb.check_health().await;
    assert_eq!(round.len(), 2);
    assert_eq!(
        lb.instance(&id_b).expect("b").health_status,
        HealthStatus::Unhealthy
    );
    for _ in 0..50 {
        assert_eq!(
            lb.route_request(Request::new())
                .await
                .expect("route")
                .as_str(),
            "a"
        );
    }
    b.health_status.store(200, Ordering::Relaxed);
    lb.check_health().await;
    assert_eq!(
        lb.instance(&id_b).expect("b").health_status,
        HealthStatus::Healthy
    );

    // Background checks find a killed backend.
    let handle = lb.spawn_health_checks(Duration::from_millis(20));
    a.kill();
    let id_a = InstanceId::from("a");
    let mut marked = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if lb.instance(&id_a).expect("a").health_status == HealthStatus::Unhealthy {
            marked = true;
            break;
        }
    }
    handle.abort();
    assert!(marked, "a killed backend was never marked unhealthy");
}

#[tokio::test]
async fn passive_ejection_then_recovery_after_cool_down() {
    // Round-robin keeps sending to the failing instance (the latency-aware policies shy
    // away from it after one failure), so ejection is what stops it.
    let lb = IntelligentLoadBalancer::new(BalancerConfig {
        policy: RoutingPolicy::RoundRobin,
        health: quick_health(),
        ..BalancerConfig::default()
    });
    for id in ["good", "bad"] {
        lb.add_instance(InstanceInfo::new(id, GeoLocation::default()))
            .await
            .expect("add");
    }
    // Fail every request that lands on "bad" until it is ejected.
    let mut ejected = false;
    for _ in 0..200 {
        let g = lb.start_request(&Request::new()).expect("route");
        let ok = g.id().as_str() != "bad";
        g.complete(ok);
        let stats = lb.load_distribution_stats();
        if stats.instances[1].ejected {
            ejected = true;
            break;
        }
    }
    assert!(ejected);
    for _ in 0..100 {
        let g = lb.start_request(&Request::new()).expect("route");
        assert_eq!(g.id().as_str(), "good");
        g.complete(true);
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let stats = lb.load_distribution_stats();
    assert!(
        !stats.instances[1].ejected,
        "still ejected after the cool-down"
    );
    assert_eq!(stats.instances[1].ejections, 1);
    assert!(stats.instances[1].load.failures >= 3);
}

#[tokio::test]
async fn all_unhealthy_is_a_clear_error() {
    let lb = IntelligentLoadBalancer::new(BalancerConfig {
        health: HealthConfig {
            max_ejected_share: 1.0,
            consecutive_failures: 1,
            cool_down: Duration::from_secs(60),
            ..HealthConfig::default()
        },
        ..BalancerConfig::default()
    });
    for id in ["x", "y", "z"] {
        lb.add_instance(InstanceInfo::new(id, GeoLocation::default()))
            .await
            .expect("add");
    }
    lb.update_instance_health(&InstanceId::from("z"), HealthStatus::Unhealthy)
        .await
        .expect("update");
    for _ in 0..2 {
        lb.start_request(&Request::new())
            .expect("route")
            .complete(false);
    }
    let err = lb.start_request(&Request::new()).expect_err("none left");
    assert_eq!(
        err,
        RoutingError::AllUnhealthy {
            instances: 3,
            unhealthy: 1,
            ejected: 2
        }
    );
}
