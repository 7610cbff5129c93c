//! Routing: type and pattern subscriptions, unsubscribe, invalid keys, cache invalidation, and a property test against naive matching.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rust_ai_ide_events::{
    BatchPublishError, EventType, Pattern, PublishError, SubscribeError, SubscriptionOptions,
    Topic, UnsubscribeError,
};

use crate::{PATIENCE, Recorder, bus, event};

#[tokio::test]
async fn type_and_pattern_subscriptions_get_what_matches() {
    let bus = bus(2);
    let saved = Arc::new(Recorder::default());
    let builds = Arc::new(Recorder::default());
    let core = Arc::new(Recorder::default());
    bus.subscribe(EventType::new("file.saved"), saved.handler())
        .await
        .expect("subscribe");
    bus.subscribe_pattern("ide.build.>", builds.handler())
        .await
        .expect("subscribe");
    bus.subscribe_pattern("ide.*.core", core.handler())
        .await
        .expect("subscribe");
    bus.publish(event("file.saved", None, 1))
        .await
        .expect("publish");
    bus.publish(event("build", Some("ide.build.core"), 2))
        .await
        .expect("publish");
    bus.publish(event("lsp", Some("ide.lsp.core"), 3))
        .await
        .expect("publish");
    bus.publish(event("lsp", Some("ide.lsp.ui"), 4))
        .await
        .expect("publish");
    bus.publish(event("file.saved", Some("ide.build.ui.x"), 5))
        .await
        .expect("publish");
    assert!(bus.flush(PATIENCE));
    assert_eq!(saved.seen(), [1, 5]);
    assert_eq!(builds.seen(), [2, 5]);
    assert_eq!(core.seen(), [2, 3]);
    let q = bus.queue_stats();
    assert_eq!(q.published, 5);
    assert_eq!(q.unrouted, 1, "ide.lsp.ui matched nothing");
    assert_eq!(q.delivered, 6);
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let bus = bus(2);
    let r = Arc::new(Recorder::default());
    let id = bus
        .subscribe_pattern("a.>", r.handler())
        .await
        .expect("subscribe");
    bus.publish(event("t", Some("a.b"), 1))
        .await
        .expect("publish");
    assert!(bus.flush(PATIENCE));
    bus.unsubscribe(id).await.expect("unsubscribe");
    assert_eq!(
        bus.unsubscribe(id).await,
        Err(UnsubscribeError::NotFound(id))
    );
    bus.publish(event("t", Some("a.b"), 2))
        .await
        .expect("publish");
    assert!(bus.flush(PATIENCE));
    assert_eq!(r.seen(), [1]);
    assert!(bus.subscriber_stats().get(id).is_none());
    let q = bus.queue_stats();
    assert_eq!((q.delivered, q.unrouted, q.subscriptions), (1, 1, 0));
}

#[tokio::test]
async fn new_subscription_sees_cached_subjects() {
    let bus = bus(2);
    let first = Arc::new(Recorder::default());
    bus.subscribe_pattern("x.*", first.handler())
        .await
        .expect("subscribe");
    bus.publish(event("t", Some("x.y"), 1))
        .await
        .expect("publish");
    let second = Arc::new(Recorder::default());
    bus.subscribe_pattern("x.y", second.handler())
        .await
        .expect("subscribe");
    bus.publish(event("t", Some("x.y"), 2))
        .await
        .expect("publish");
    bus.publish(event("t", Some("x.y"), 3))
        .await
        .expect("publish");
    assert!(bus.flush(PATIENCE));
    assert_eq!(first.seen(), [1, 2, 3]);
    assert_eq!(
        second.seen(),
        [2, 3],
        "the subject cache was dropped on subscribe"
    );
    let q = bus.queue_stats();
    assert_eq!((q.route_cache_misses, q.route_cache_hits), (2, 1));
}

#[tokio::test]
async fn invalid_keys_and_patterns_are_errors() {
    let bus = bus(1);
    let r = Arc::new(Recorder::default());
    assert!(matches!(
        bus.subscribe_pattern("a.>.b", r.handler()).await,
        Err(SubscribeError::InvalidPattern { .. })
    ));
    bus.subscribe_pattern(">", r.handler())
        .await
        .expect("subscribe");
    let err = bus.publish(event("t", Some("a.*"), 1)).await.unwrap_err();
    assert!(
        matches!(err, PublishError::InvalidRoutingKey { .. }),
        "{err}"
    );
    let batch = vec![event("t", Some("ok"), 1), event("t", Some("bad..key"), 2)];
    match bus.publish_batch(batch).await {
        Err(BatchPublishError::InvalidRoutingKey { index, .. }) => assert_eq!(index, 1),
        other => panic!("{other:?}"),
    }
    assert!(bus.flush(PATIENCE));
    assert!(
        r.seen().is_empty(),
        "a batch with a bad key publishes nothing"
    );
    assert!(matches!(
        bus.subscribe_with(
            Topic::Pattern(Pattern::new("a").expect("valid")),
            r.handler(),
            SubscriptionOptions {
                segment_size: 0,
                ..SubscriptionOptions::default()
            },
        ),
        Err(SubscribeError::InvalidOptions(_))
    ));
}

#[test]
fn shutdown_delivers_queued_events_then_refuses() {
    let bus = bus(1);
    let r = Arc::new(Recorder::default());
    bus.subscribe_with(
        Topic::EventType("t".into()),
        r.handler(),
        SubscriptionOptions::default(),
    )
    .expect("subscribe");
    let batch = (0..100).map(|i| event("t", None, i)).collect();
    bus.publish_batch_blocking(batch).expect("publish");
    assert!(bus.shutdown(PATIENCE));
    assert_eq!(r.seen(), (0..100).collect::<Vec<_>>());
    assert!(matches!(
        bus.publish_blocking(event("t", None, 0)),
        Err(PublishError::Closed)
    ));
    assert!(bus.shutdown(Duration::ZERO), "a second shutdown is a no-op");
}

const TOKENS: [&str; 3] = ["a", "b", "c"];

fn pattern_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![prop::sample::select(TOKENS.to_vec()), Just("*")],
            1..4,
        ),
        any::<bool>(),
    )
        .prop_map(|(tokens, rest)| {
            let mut t: Vec<&str> = tokens;
            if rest {
                t.push(">");
            }
            t.join(".")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every subscription receives exactly the published events whose key its pattern
    /// matches, in publish order, whether published one by one or in batches.
    #[test]
    fn bus_delivers_exactly_what_matches(
        patterns in prop::collection::vec(pattern_text(), 1..8),
        subjects in prop::collection::vec(prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 1..5), 1..40),
        batched in any::<bool>(),
    ) {
        let bus = bus(2);
        let recorders: Vec<Arc<Recorder>> = patterns.iter().map(|_| Arc::new(Recorder::default())).collect();
        for (p, r) in patterns.iter().zip(&recorders) {
            bus.subscribe_with(
                Topic::Pattern(Pattern::new(p).expect("valid")),
                r.handler(),
                SubscriptionOptions::default(),
            ).expect("subscribe");
        }
        let keys: Vec<String> = subjects.iter().map(|s| s.join(".")).collect();
        let events: Vec<_> = keys.iter().enumerate().map(|(i, k)| event("t", Some(k), i as u64)).collect();
        if batched {
            bus.publish_batch_blocking(events).expect("publish");
        } else {
            for e in events {
                bus.publish_blocking(e).expect("publish");
            }
        }
        prop_assert!(bus.flush(PATIENCE));
        for (p, r) in patterns.iter().zip(&recorders) {
            let pat = Pattern::new(p).expect("valid");
            let want: Vec<u64> = keys.iter().enumerate().filter(|(_, k)| pat.matches(k)).map(|(i, _)| i as u64).collect();
            prop_assert_eq!(r.seen(), want, "pattern {}", p);
        }
    }
}
