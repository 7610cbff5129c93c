//! Snapshots of what the bus did: per subscription (`SubscriberStats`) and in total (`QueueStats`).

use std::time::Duration;

use crate::envelope::SubscriptionId;
use crate::subscription::Backpressure;

/// One subscription's counters. After the bus is idle, `enqueued = delivered + panicked +
/// lag` (every queued event was handled, panicked, or evicted) and every event routed to
/// it is in `enqueued` or `refused`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionStats {
    /// The subscription.
    pub id: SubscriptionId,
    /// Its name.
    pub name: String,
    /// What it receives, e.g. `pattern ide.*.>`.
    pub topic: String,
    /// Its policy.
    pub backpressure: Backpressure,
    /// Events that entered its queue.
    pub enqueued: u64,
    /// Events its handler returned from.
    pub delivered: u64,
    /// Events its handler panicked on (caught; the subscriber keeps receiving).
    pub panicked: u64,
    /// Queued events evicted by [`Backpressure::DropOldest`] before it saw them.
    pub lag: u64,
    /// Events refused by [`Backpressure::Error`] or a [`Backpressure::Block`] timeout.
    pub refused: u64,
    /// Every event it lost: `lag + refused`.
    pub dropped: u64,
    /// Events in its queue now.
    pub queue_depth: usize,
    /// Its queue's capacity.
    pub capacity: usize,
    /// Median publish-to-deliver latency (publish call to handler start).
    pub latency_p50: Duration,
    /// 99th percentile publish-to-deliver latency.
    pub latency_p99: Duration,
}

/// Stats of every live subscription, in id order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscriberStats {
    /// One entry per live subscription.
    pub subscriptions: Vec<SubscriptionStats>,
}

impl SubscriberStats {
    /// The entry of subscription `id`, if it is live.
    pub fn get(&self, id: SubscriptionId) -> Option<&SubscriptionStats> {
        self.subscriptions.iter().find(|s| s.id == id)
    }

    /// The first entry named `name`.
    pub fn by_name(&self, name: &str) -> Option<&SubscriptionStats> {
        self.subscriptions.iter().find(|s| s.name == name)
    }
}

/// Bus-wide totals since the bus was created, removed subscriptions included.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueStats {
    /// Events accepted by publish calls.
    pub published: u64,
    /// Published events that matched no subscription.
    pub unrouted: u64,
    /// Events queued, summed over subscriptions (one event routed to three counts three).
    pub enqueued: u64,
    /// Handler calls that returned.
    pub delivered: u64,
    /// Handler calls that panicked.
    pub panicked: u64,
    /// Events evicted by drop-oldest queues.
    pub lag: u64,
    /// Events refused by error or block policies.
    pub refused: u64,
    /// `lag + refused`.
    pub dropped: u64,
    /// Events in queues now.
    pub queue_depth: usize,
    /// Summed capacity of the live queues.
    pub capacity: usize,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Routing-key lookups answered by the subject cache.
    pub route_cache_hits: u64,
    /// Routing-key lookups that walked the pattern trie.
    pub route_cache_misses: u64,
    /// Median publish-to-deliver latency over all deliveries.
    pub latency_p50: Duration,
    /// 99th percentile publish-to-deliver latency over all deliveries.
    pub latency_p99: Duration,
}
