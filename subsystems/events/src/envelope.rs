//! Events as the bus carries them: `EventEnvelope` with its type, payload, metadata and routing key.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The type of an event, e.g. `"file.saved"`: subscriptions by type match it exactly.
/// Cheap to clone (a shared string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Arc<str>);

impl EventType {
    /// An event type named `name`.
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for EventType {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum EventPayload {
    /// Nothing beyond the type and metadata.
    #[default]
    Empty,
    /// Text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A JSON document.
    Json(serde_json::Value),
}

/// Who sent an event, when, and what it relates to. `sequence` and `published_at` are set
/// by the bus when the event is published; whatever the caller put there is overwritten.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMetadata {
    /// Wall-clock creation time (set by [`EventEnvelope::new`]).
    pub timestamp: SystemTime,
    /// The component that sent the event.
    pub source: Option<String>,
    /// Ties related events together (a request and its responses).
    pub correlation_id: Option<u64>,
    /// Free-form string headers.
    pub headers: BTreeMap<String, String>,
    /// Bus-wide publish order: 1 for the first event published, then increasing.
    pub sequence: u64,
    /// When the bus accepted the event (the start of publish-to-deliver latency).
    pub published_at: Option<Instant>,
}

impl Default for EventMetadata {
    fn default() -> Self {
        Self {
            timestamp: SystemTime::now(),
            source: None,
            correlation_id: None,
            headers: BTreeMap::new(),
            sequence: 0,
            published_at: None,
        }
    }
}

/// One event: its type, payload, metadata and optional routing key (a `.`-separated
/// subject such as `ide.build.core.finished`, matched against pattern subscriptions).
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// Matched exactly by type subscriptions.
    pub event_type: EventType,
    /// The content.
    pub payload: EventPayload,
    /// Source, time, correlation, headers, sequence.
    pub metadata: EventMetadata,
    /// Matched by pattern subscriptions; an event without one reaches type subscriptions only.
    pub routing_key: Option<String>,
}

impl EventEnvelope {
    /// An event of `event_type` with `payload`, fresh metadata and no routing key.
    pub fn new(event_type: impl Into<EventType>, payload: EventPayload) -> Self {
        Self {
            event_type: event_type.into(),
            payload,
            metadata: EventMetadata::default(),
            routing_key: None,
        }
    }

    /// The same event with routing key `key`.
    pub fn with_routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = Some(key.into());
        self
    }

    /// The same event with `source` set.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.metadata.source = Some(source.into());
        self
    }
}

/// Identifies one subscription of one bus; never reused by that bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub(crate) u64);

impl SubscriptionId {
    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
