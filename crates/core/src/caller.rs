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

/// The channel a caller verification uses: the one asked for; else the
/// tenant's default if the contact it needs was given; else the channel
/// of the contact that was (an email address only → email, a phone only →
/// SMS). A record with neither keeps the default, whose missing contact
/// is then the error.
pub fn pick_channel(requested: Option<Channel>, has_phone: bool, has_email: bool, default: Channel) -> Channel {
    if let Some(channel) = requested {
        return channel;
    }
    let default_has_contact = if default == Channel::Email { has_email } else { has_phone };
    match (default_has_contact, has_phone, has_email) {
        (false, false, true) => Channel::Email,
        (false, true, false) => Channel::Sms,
        _ => default,
    }
}

/// How a caller verification was settled, as its event reports it: on the
/// link's page (`link`), by the code read to the agent (`code`), or on the
/// link's page with the customer's second factor (`factor`). Expiry and
/// cancellation have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerMethod {
    Link,
    Code,
    Factor,
}

impl CallerMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Code => "code",
            Self::Factor => "factor",
        }
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

    /// The destination for logs and events: country code and last digits
    /// of a number, first letter and domain of an address.
    pub fn masked_destination(&self) -> String {
        match self.channel {
            Channel::Email => crate::destination::EmailAddress::parse("to", &self.destination).map(|e| e.masked()),
            Channel::Sms | Channel::Voice => {
                crate::destination::PhoneNumber::parse("to", &self.destination).map(|p| p.masked())
            }
        }
        .unwrap_or_else(|_| "***".to_owned())
    }

    /// `caller_verification.completed`, for the CRM: the record, the
    /// outcome and how it was reached, the channel and masked destination,
    /// the agent, the attempts left and the times — all a receiver needs to
    /// fill its transaction record without having started it.
    pub fn completed_event(&self, now: OffsetDateTime, method: Option<CallerMethod>) -> Event {
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
                "to": self.masked_destination(),
                "time_allowed_s": self.time_allowed_s,
                "expires_at": time(self.expires_at),
                "attempts_remaining": self.attempts_remaining(),
                "method": method.map(CallerMethod::as_str),
                "created_at": time(self.created_at),
                "completed_at": time(self.completed_at.unwrap_or(now)),
            }),
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verification(status: CallerStatus, attempts: u32) -> CallerVerification {
        let t = OffsetDateTime::UNIX_EPOCH;
        CallerVerification {
            id: CallerVerificationId::generate(),
            tenant_id: TenantId::generate(),
            record_id: "500A".into(),
            record_type: "case".into(),
            user_id: None,
            destination: "+447400123456".into(),
            channel: Channel::Sms,
            agent_id: None,
            status,
            link_hash: "l".into(),
            code_hash: "c".into(),
            attempts,
            max_attempts: 3,
            time_allowed_s: 60,
            expires_at: t + time::Duration::seconds(60),
            completed_at: None,
            created_at: t,
            updated_at: t,
        }
    }

    /// Pending until its time is up (then expired without anyone asking);
    /// an ended verification keeps its ending.
    #[test]
    fn a_caller_verification_expires_on_time_and_endings_stay() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let cv = verification(CallerStatus::Pending, 0);
        assert_eq!(cv.status_at(t + time::Duration::seconds(59)), CallerStatus::Pending);
        assert_eq!(cv.status_at(t + time::Duration::seconds(60)), CallerStatus::Expired);
        for ended in [CallerStatus::Verified, CallerStatus::Denied, CallerStatus::Failed, CallerStatus::Canceled] {
            assert_eq!(verification(ended, 0).status_at(t + time::Duration::hours(1)), ended);
        }
        assert_eq!(verification(CallerStatus::Pending, 1).attempts_remaining(), 2);
        assert_eq!(verification(CallerStatus::Pending, 4).attempts_remaining(), 0);
        for s in CallerStatus::ALL {
            assert_eq!(CallerStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(CallerStatus::parse("Pending"), None);
    }

    /// What the CRM receives names the method, the destination's country
    /// and the destination itself only masked.
    #[test]
    fn a_verification_shows_its_method_country_and_masked_destination() {
        let names: Vec<_> = [CallerMethod::Link, CallerMethod::Code, CallerMethod::Factor].map(|m| m.as_str()).into();
        assert_eq!(names, ["link", "code", "factor"]);
        let phone = verification(CallerStatus::Pending, 0);
        assert_eq!(phone.country().as_deref(), Some("GB"));
        assert_eq!(phone.masked_destination(), "+44********56");
        let mut email = verification(CallerStatus::Pending, 0);
        email.channel = Channel::Email;
        email.destination = "ann.smith@example.com".into();
        assert_eq!(email.country(), None);
        let masked = email.masked_destination();
        assert!(masked.ends_with("@example.com") && !masked.contains("ann.smith"), "{masked}");
        email.destination = "not an address".into();
        assert_eq!(email.masked_destination(), "***");
    }

    #[test]
    fn the_channel_follows_the_contact_given_when_none_is_asked_for() {
        use Channel::{Email, Sms, Voice};
        assert_eq!(pick_channel(Some(Voice), true, true, Sms), Voice, "asked for");
        assert_eq!(pick_channel(None, true, true, Sms), Sms, "the default when its contact is there");
        assert_eq!(pick_channel(None, false, true, Sms), Email, "email only");
        assert_eq!(pick_channel(None, true, false, Email), Sms, "phone only");
        assert_eq!(pick_channel(None, false, false, Voice), Voice, "neither: the default, which then errs");
    }
}
