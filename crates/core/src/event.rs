//! Events the server sends to the CRM (API.md, "Webhooks"): their types and
//! the body every endpoint receives, `{"type", "timestamp", "data"}`.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::{EventId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    VerificationApproved,
    ChallengeApproved,
    ChallengeDenied,
    UserLocked,
    CallerVerificationCompleted,
    DeliveryFailed,
    Ping,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        Self::VerificationApproved,
        Self::ChallengeApproved,
        Self::ChallengeDenied,
        Self::UserLocked,
        Self::CallerVerificationCompleted,
        Self::DeliveryFailed,
        Self::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerificationApproved => "verification.approved",
            Self::ChallengeApproved => "challenge.approved",
            Self::ChallengeDenied => "challenge.denied",
            Self::UserLocked => "user.locked",
            Self::CallerVerificationCompleted => "caller_verification.completed",
            Self::DeliveryFailed => "delivery.failed",
            Self::Ping => "ping",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// An event as emitted: written to the outbox in the same transaction as
/// the change that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub event_type: EventType,
    pub created_at: OffsetDateTime,
    /// The body every endpoint receives, rendered from the data the event
    /// was made with (see [`Event::body`]).
    body: String,
}

impl Event {
    pub fn new(tenant_id: TenantId, event_type: EventType, data: Value, now: OffsetDateTime) -> Self {
        let body = render_body(event_type, now, &data);
        Self { id: EventId::generate(), tenant_id, event_type, created_at: now, body }
    }

    /// The JSON body sent to endpoints, `{"data", "timestamp", "type"}`.
    /// Rendered once, when the event is made, so every retry sends (and
    /// signs) the very same bytes, and so the store writes a string: on
    /// SQLite the event is written by the one writer thread every write
    /// waits for, and it used to copy `data`'s tree, print it and drop it
    /// there, at every approval.
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// The body, its fields in the order a `json!` map of them printed them
/// (its keys sorted): the bytes bodies had when they were rendered from
/// such a map.
fn render_body(event_type: EventType, at: OffsetDateTime, data: &Value) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        data: &'a Value,
        timestamp: String,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    let body = Body { data, timestamp: at.format(&Rfc3339).unwrap_or_default(), kind: event_type.as_str() };
    // Strings and a `Value` always serialize.
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("verification.created"), None);
    }

    #[test]
    fn the_body_has_type_timestamp_and_data() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let e = Event::new(TenantId::generate(), EventType::Ping, json!({"hello": 1}), at);
        let body: Value = serde_json::from_str(e.body()).unwrap();
        assert_eq!(body, json!({"type": "ping", "timestamp": "2023-11-14T22:13:20Z", "data": {"hello": 1}}));
    }

    /// The bytes, not only the document: a body is signed as rendered, and
    /// bodies rendered before and after a release must read alike.
    #[test]
    fn the_body_is_rendered_as_a_sorted_map_of_its_fields() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let data = json!({"verification_id": "ver_1", "status": "approved", "nested": {"b": [1, "two"], "a": null}});
        let e = Event::new(TenantId::generate(), EventType::VerificationApproved, data.clone(), at);
        let as_a_map = json!({"type": "verification.approved", "timestamp": "2023-11-14T22:13:20Z", "data": data});
        assert_eq!(e.body(), as_a_map.to_string());
        assert!(e.body().starts_with(r#"{"data":{"nested":{"a":null,"b":[1,"two"]},"#), "{}", e.body());
    }
}
