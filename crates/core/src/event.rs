//! Events the server sends to the CRM (API.md, "Webhooks"): their types and
//! the body every endpoint receives, `{"type", "timestamp", "data"}`.

use serde_json::{Value, json};
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
    pub data: Value,
    pub created_at: OffsetDateTime,
}

impl Event {
    pub fn new(tenant_id: TenantId, event_type: EventType, data: Value, now: OffsetDateTime) -> Self {
        Self { id: EventId::generate(), tenant_id, event_type, data, created_at: now }
    }

    /// The JSON body sent to endpoints. Rendered once, when the event is
    /// stored, so every retry sends (and signs) the very same bytes.
    pub fn body(&self) -> String {
        json!({
            "type": self.event_type.as_str(),
            "timestamp": self.created_at.format(&Rfc3339).unwrap_or_default(),
            "data": self.data,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
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
        let body: Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(body, json!({"type": "ping", "timestamp": "2023-11-14T22:13:20Z", "data": {"hello": 1}}));
    }
}
