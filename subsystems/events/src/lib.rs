//! An event bus for the Rust AI IDE: typed envelopes, NATS-style routing patterns, bounded segmented queues with per-subscriber backpressure.
#![doc = include_str!("../README.md")]

mod bus;
mod envelope;
mod error;
mod histogram;
mod mailbox;
mod pattern;
mod queue;
mod stats;
mod subscription;
mod sync;

pub use bus::{AdvancedEventBus, BusConfig};
pub use envelope::{EventEnvelope, EventMetadata, EventPayload, EventType, SubscriptionId};
pub use error::{
    BatchPublishError, EventBusError, PublishError, PushError, QueueClosed, Refusal, RefusalReason,
    SubscribeError, UnsubscribeError,
};
pub use pattern::{Pattern, PatternTrie, validate_subject};
pub use queue::SegmentedQueue;
pub use stats::{QueueStats, SubscriberStats, SubscriptionStats};
pub use subscription::{Backpressure, EventSubscriber, SubscriptionOptions, Topic};
