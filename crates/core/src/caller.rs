//! Help-desk caller verification: an agent on a record (a case) asks the
//! customer to prove they are the person on the line — by approving on a
//! link sent to their phone or email ("Are you on a call with us right
//! now?"), or by reading the code from that message to the agent. It ends
//! `verified`, `denied` (the customer said they are not on a call — a
//! fraud signal), `failed` (too many wrong codes), `expired` (past the
//! time allowed, set by a sweeper without anyone asking) or `canceled`.

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::channel::Channel;
use crate::event::{Event, EventType};
use crate::ids::{CallerVerificationId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerStatus {
    Pending,
    Verified,
    Denied,
    Failed,
    Expired,
    Canceled,
}

impl CallerStatus {
    pub const ALL: [Self; 6] =
        [Self::Pending, Self::Verified, Self::Denied, Self::Failed, Self::Expired, Self::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Denied => "denied",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerVerification {
    pub id: CallerVerificationId,
    pub tenant_id: TenantId,
    pub record_id: String,
    pub record_type: String,
    /// The customer, when the integrator named them (their enrolled
    /// authenticators are then asked for before approval).
    pub user_id: Option<String>,
    /// E.164 or email address the message went to.
    pub destination: String,
    pub channel: Channel,
    pub agent_id: Option<String>,
    pub status: CallerStatus,
    /// Keyed hash of the link token (the link itself is never stored).
    pub link_hash: String,
    /// Keyed hash of the code the customer may read to the agent.
    pub code_hash: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub time_allowed_s: u32,
    pub expires_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl CallerVerification {
    pub fn status_at(&self, now: OffsetDateTime) -> CallerStatus {
        if self.status == CallerStatus::Pending && now >= self.expires_at { CallerStatus::Expired } else { self.status }
    }

    /// The country of a phone destination, for the send counters.
    pub fn country(&self) -> Option<String> {
        crate::destination::PhoneNumber::parse("to", &self.destination)
            .ok()
            .and_then(|p| p.country().map(str::to_owned))
    }

    pub fn attempts_remaining(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts)
    }

    /// `caller_verification.completed`, for the CRM: the record, the
    /// outcome, the channel, the agent and the times.
    pub fn completed_event(&self, now: OffsetDateTime) -> Event {
        let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        Event::new(
            self.tenant_id.clone(),
            EventType::CallerVerificationCompleted,
            json!({
                "id": self.id.as_str(),
                "record_id": self.record_id,
                "record_type": self.record_type,
                "status": self.status.as_str(),
                "channel": self.channel.as_str(),
                "agent_id": self.agent_id,
                "user_id": self.user_id,
                "created_at": time(self.created_at),
                "completed_at": time(self.completed_at.unwrap_or(now)),
            }),
            now,
        )
    }
}
