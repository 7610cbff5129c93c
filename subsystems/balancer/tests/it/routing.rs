//! Routing properties: health is respected, consistent hashing is stable, geo routing prefers the local zone.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use rust_ai_ide_balancer::{
    BalancerConfig, GeoLocation, HealthConfig, HealthStatus, InstanceError, InstanceId,
    InstanceInfo, IntelligentLoadBalancer, Request, ResourceCapacity, RoutingError, RoutingPolicy,
};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn paris() -> GeoLocation {
    GeoLocation::new(48.8566, 2.3522, "eu")
}

fn new_york() -> GeoLocation {
    GeoLocation::new(40.7128, -74.0060, "us")
}

async fn balancer_with(n: usize, config: BalancerConfig) -> IntelligentLoadBalancer {
    let lb = IntelligentLoadBalancer::new(config);
    for i in 0..n {
        lb.add_instance(InstanceInfo::new(format!("i{i}"), GeoLocation::default()))
            .await
            .expect("add");
    }
    lb
}

fn policy() -> impl Strategy<Value = RoutingPolicy> {
    prop_oneof![
        Just(RoutingPolicy::Intelligent),
        Just(RoutingPolicy::LeastLoaded),
        Just(RoutingPolicy::RoundRobin),
    ]
}

fn health() -> impl Strategy<Value = HealthStatus> {
    prop_oneof![
        Just(HealthStatus::Healthy),
        Just(HealthStatus::Degraded),
        Just(HealthStatus::Unhealthy),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the health statuses and the failures so far, a routed request never lands on
    /// an unhealthy or ejected instance while a routable one exists, and with none it fails
    /// with `AllUnhealthy`.
    #[test]
    fn never_routes_to_ejected_or_unhealthy(
        policy in policy(),
        statuses in prop::collection::vec(health(), 1..8),
        failing in prop::collection::vec(any::<bool>(), 8),
        affinity in any::<bool>(),
    ) {
        block_on(async {
            let config = BalancerConfig {
                policy,
                health: HealthConfig {
                    consecutive_failures: 2,
                    cool_down: Duration::from_secs(60),
                    max_ejected_share: 1.0,
                    ..HealthConfig::default()
                },
                ..BalancerConfig::default()
            };
            let lb = balancer_with(statuses.len(), config).await;
            for (i, s) in statuses.iter().enumerate() {
                lb.update_instance_health(&InstanceId::new(format!("i{i}")), *s).await.expect("update");
            }
            for k in 0..60 {
                let req = if affinity { Request::new().with_affinity(format!("k{}", k % 7)) } else { Request::new() };
                let stats = lb.load_distribution_stats();
                let routable: Vec<bool> = stats
                    .instances
                    .iter()
                    .map(|s| s.health_status != HealthStatus::Unhealthy && !s.ejected)
                    .collect();
                match lb.start_request(&req) {
                    Ok(guard) => {
                        let at: usize = guard.id().as_str()[1..].parse().expect("index");
                        prop_assert!(routable[at], "routed to {} with routable {:?}", guard.id(), routable);
                        let ok = !failing[at];
                        guard.complete(ok);
                    }
                    Err(e) => {
                        prop_assert!(routable.iter().all(|r| !r), "error {e} with routable {:?}", routable);
                        let is_all_unhealthy = matches!(e, RoutingError::AllUnhealthy { .. });
                        prop_assert!(is_all_unhealthy);
                    }
                }
            }
            Ok(())
        })?;
    }

    /// Adding an instance moves only the keys it now owns, about 1/(n+1) of them, and each
    /// moved key moves to the new instance.
    #[test]
    fn consistent_hashing_moves_about_one_nth(n in 3usize..12) {
        block_on(async {
            let lb = balancer_with(n, BalancerConfig::default()).await;
            let keys: Vec<String> = (0..3000).map(|k| format!("session-{k}")).collect();
            let mut before = HashMap::new();
            for k in &keys {
                before.insert(k.clone(), lb.route_request(Request::new().with_affinity(k.clone())).await.expect("route"));
            }
            lb.add_instance(InstanceInfo::new("new", GeoLocation::default())).await.expect("add");
            let mut moved = 0usize;
            for k in &keys {
                let now = lb.route_request(Request::new().with_affinity(k.clone())).await.expect("route");
                if now != before[k] {
                    prop_assert_eq!(now.as_str(), "new");
                    moved += 1;
                }
            }
            let share = moved as f64 / keys.len() as f64;
            let ideal = 1.0 / (n as f64 + 1.0);
            prop_assert!(share > ideal * 0.4 && share < ideal * 2.0, "moved {share} ideal {ideal}");
            lb.remove_instance(&InstanceId::from("new")).await.expect("remove");
            for k in &keys {
                let back = lb.route_request(Request::new().with_affinity(k.clone())).await.expect("route");
                prop_assert_eq!(&back, &before[k]);
            }
            Ok(())
        })?;
    }
}

#[test]
fn great_circle_distance_paris_new_york() {
    let d = paris().distance_km(&new_york());
    assert!((d - 5837.0).abs() < 30.0, "{d}");
    assert_eq!(paris().distance_km(&paris()), 0.0);
}

#[test]
fn geo_prefers_local_zone_and_spills_over_when_saturated_or_unhealthy() {
    block_on(async {
        let lb = IntelligentLoadBalancer::default();
        let small = ResourceCapacity {
            max_concurrent: 1,
            weight: 1.0,
        };
        for (id, loc) in [
            ("eu1", paris()),
            ("eu2", paris()),
            ("us1", new_york()),
            ("us2", new_york()),
        ] {
            lb.add_instance(InstanceInfo::new(id, loc).with_capacity(small))
                .await
                .expect("add");
        }
        let from_eu = Request::new().with_origin(paris());
        for _ in 0..50 {
            let id = lb.route_request(from_eu.clone()).await.expect("route");
            assert!(id.as_str().starts_with("eu"), "{id}");
        }
        // Both local instances at capacity: the next request spills over to the US.
        let a = lb.start_request(&from_eu).expect("route");
        let b = lb.start_request(&from_eu).expect("route");
        assert!(a.id().as_str().starts_with("eu") && b.id().as_str().starts_with("eu"));
        assert_ne!(a.id(), b.id());
        let c = lb.start_request(&from_eu).expect("route");
        assert!(c.id().as_str().starts_with("us"), "{}", c.id());
        for g in [a, b, c] {
            g.complete(true);
        }
        for id in ["eu1", "eu2"] {
            lb.update_instance_health(&InstanceId::from(id), HealthStatus::Unhealthy)
                .await
                .expect("update");
        }
        let id = lb.route_request(from_eu.clone()).await.expect("route");
        assert!(id.as_str().starts_with("us"), "{id}");
        let geo = lb.geo_routing_stats();
        assert_eq!(geo.with_origin, 54);
        assert_eq!(geo.local, 52);
        assert_eq!(geo.cross_zone, 2);
        assert_eq!(geo.spill_overs, 2);
        assert!(geo.mean_distance_km > 0.0 && geo.mean_distance_km < 5837.0);
    });
}

#[test]
fn cross_zone_penalty_steers_spill_over_to_the_nearest_zone() {
    block_on(async {
        let lb = IntelligentLoadBalancer::default();
        lb.add_instance(InstanceInfo::new(
            "far",
            GeoLocation::new(-33.87, 151.21, "au"),
        ))
        .await
        .expect("add");
        lb.add_instance(InstanceInfo::new("near", new_york()))
            .await
            .expect("add");
        // The origin's own zone has no instance: both candidates are cross-zone, and the
        // distance term (about 17,000 km against 5,800 km) decides.
        let req = Request::new().with_origin(paris());
        let near = InstanceId::from("near");
        for _ in 0..50 {
            assert_eq!(lb.route_request(req.clone()).await.expect("route"), near);
        }
    });
}

#[test]
fn errors_say_what_is_wrong() {
    block_on(async {
        let lb = IntelligentLoadBalancer::default();
        assert_eq!(
            lb.route_request(Request::new()).await,
            Err(RoutingError::NoInstances)
        );
        lb.add_instance(InstanceInfo::new("a", GeoLocation::default()))
            .await
            .expect("add");
        assert_eq!(
            lb.add_instance(InstanceInfo::new("a", GeoLocation::default()))
                .await,
            Err(InstanceError::Duplicate(InstanceId::from("a")))
        );
        let bad = InstanceInfo::new("b", GeoLocation::default()).with_capacity(ResourceCapacity {
            max_concurrent: 4,
            weight: 0.0,
        });
        assert!(matches!(
            lb.add_instance(bad).await,
            Err(InstanceError::Invalid { .. })
        ));
        lb.update_instance_health(&InstanceId::from("a"), HealthStatus::Unhealthy)
            .await
            .expect("update");
        let err = lb
            .route_request(Request::new())
            .await
            .expect_err("all unhealthy");
        assert_eq!(
            err.to_string(),
            "no healthy instance: 1 of 1 unhealthy, 0 ejected"
        );
        assert!(
            lb.update_instance_health(&InstanceId::from("zz"), HealthStatus::Healthy)
                .await
                .is_err()
        );
        assert_eq!(
            lb.remove_instance(&InstanceId::from("zz")).await,
            Err(InstanceError::NotFound(InstanceId::from("zz")))
        );
        assert_eq!(lb.load_distribution_stats().routing_failures, 2);
    });
}

#[test]
fn round_robin_is_even_and_weights_shift_intelligent_routing() {
    block_on(async {
        let rr = balancer_with(
            3,
            BalancerConfig {
                policy: RoutingPolicy::RoundRobin,
                ..BalancerConfig::default()
            },
        )
        .await;
        for _ in 0..300 {
            rr.route_request(Request::new()).await.expect("route");
        }
        let stats = rr.load_distribution_stats();
        assert!(stats.instances.iter().all(|i| i.routed == 100));
        assert_eq!(stats.imbalance, 0.0);

        // Same latency, one instance with three times the capacity: with requests held in
        // flight, the bigger one takes most of them.
        let lb = IntelligentLoadBalancer::default();
        lb.add_instance(
            InstanceInfo::new("big", GeoLocation::default()).with_capacity(ResourceCapacity {
                max_concurrent: 1000,
                weight: 3.0,
            }),
        )
        .await
        .expect("add");
        lb.add_instance(InstanceInfo::new("small", GeoLocation::default()))
            .await
            .expect("add");
        let held: Vec<_> = (0..40)
            .map(|_| lb.start_request(&Request::new()).expect("route"))
            .collect();
        let big = held.iter().filter(|g| g.id().as_str() == "big").count();
        assert!(big >= 26, "big took {big} of 40");
        let snapshot = lb.instance(&InstanceId::from("big")).expect("instance");
        assert_eq!(snapshot.load_metrics.in_flight as usize, big);
        drop(held);
        let after = lb.instance(&InstanceId::from("big")).expect("instance");
        assert_eq!(after.load_metrics.in_flight, 0);
    });
}
