//! The error types of the crate: what publishing, subscribing and queue operations report.

use std::fmt;
use std::time::Duration;

use crate::envelope::SubscriptionId;

/// Why one subscriber did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// Its queue was full and its policy is [`crate::Backpressure::Error`].
    QueueFull,
    /// Its queue stayed full for the whole [`crate::Backpressure::Block`] timeout.
    Timeout(Duration),
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::QueueFull => f.write_str("queue full"),
            Self::Timeout(t) => write!(f, "queue still full after {t:?}"),
        }
    }
}

/// One subscriber that refused events of a publish call. The events were delivered to
/// every other matching subscriber; the refused ones are counted in its `dropped` stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The subscription that refused.
    pub subscription: SubscriptionId,
    /// Its name ([`crate::SubscriptionOptions::name`]).
    pub subscriber: String,
    /// Why.
    pub reason: RefusalReason,
    /// How many events of the call it refused.
    pub events: usize,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subscriber {} ({}) refused {} event(s): {}",
            self.subscriber, self.subscription, self.events, self.reason
        )
    }
}

/// What [`crate::AdvancedEventBus::publish`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The bus was shut down.
    #[error("event bus is shut down")]
    Closed,
    /// The routing key is not a valid subject (empty token, or a `*`/`>` wildcard token).
    #[error("invalid routing key {key:?}: {reason}")]
    InvalidRoutingKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Some subscribers refused the event under their backpressure policy.
    #[error("{}", join(refusals))]
    Refused {
        /// One entry per refusing subscriber.
        refusals: Vec<Refusal>,
    },
}

/// What [`crate::AdvancedEventBus::publish_batch`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchPublishError {
    /// The bus was shut down; nothing of the batch was published.
    #[error("event bus is shut down")]
    Closed,
    /// Event `index` has an invalid routing key; nothing of the batch was published.
    #[error("invalid routing key {key:?} of event {index}: {reason}")]
    InvalidRoutingKey {
        /// Position of the event in the batch.
        index: usize,
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Some subscribers refused some events; every other delivery happened.
    #[error("{}", join(refusals))]
    Refused {
        /// One entry per refusing subscriber, with the number of events it refused.
        refusals: Vec<Refusal>,
    },
}

/// What subscribing can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The bus was shut down.
    #[error("event bus is shut down")]
    Closed,
    /// The routing-key pattern is malformed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The subscription options cannot work.
    #[error("invalid subscription options: {0}")]
    InvalidOptions(String),
}

/// What unsubscribing can fail with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsubscribeError {
    /// No live subscription has that id (never existed, or already removed).
    #[error("no subscription {0}")]
    NotFound(SubscriptionId),
}

/// What creating a bus can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventBusError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A processing thread could not be started.
    #[error("cannot start processing thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// What a single push onto a [`crate::SegmentedQueue`] can fail with; the item comes back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError<T> {
    /// The queue holds `capacity` items.
    #[error("queue is full")]
    Full(T),
    /// The queue stayed full until the deadline.
    #[error("queue stayed full until the deadline")]
    Timeout(T),
    /// The queue was closed.
    #[error("queue is closed")]
    Closed(T),
}

impl<T> PushError<T> {
    /// The item that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(t) | Self::Timeout(t) | Self::Closed(t) => t,
        }
    }
}

/// A batch operation on a closed [`crate::SegmentedQueue`].
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("queue is closed")]
pub struct QueueClosed;

fn join(refusals: &[Refusal]) -> String {
    let parts: Vec<String> = refusals.iter().map(Refusal::to_string).collect();
    parts.join("; ")
}
