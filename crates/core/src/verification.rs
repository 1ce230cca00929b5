//! Verifications: a code sent to a phone or an email address and checked
//! later (API.md, "Verifications"). This module holds the rules — the
//! policy resolved from settings and service, the states, how codes are
//! hashed and compared — and the store applies them with single
//! conditional statements, so concurrent checks on any number of nodes
//! approve a code at most once.

use std::time::Duration;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::channel::Channel;
use crate::crypto::{KeyedHasher, MasterKey};
use crate::destination::{Country, EmailAddress, PhoneNumber, email_match_key};
use crate::field_error::FieldError;
use crate::ids::{ServiceId, TenantId, VerificationId};
use crate::service::Service;
use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerificationStatus {
    Pending,
    Approved,
    Canceled,
    Expired,
    MaxAttemptsReached,
}

impl VerificationStatus {
    pub const ALL: [Self; 5] = [Self::Pending, Self::Approved, Self::Canceled, Self::Expired, Self::MaxAttemptsReached];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::MaxAttemptsReached => "max_attempts_reached",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        self != Self::Pending
    }
}

/// Where a code goes, checked against its channel: phone numbers for SMS
/// and voice, email addresses for email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Phone(PhoneNumber),
    Email(EmailAddress),
}

/// Why a destination was refused; each maps to its own error of API.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationError {
    /// Not a phone number (or address) at all: `invalid_phone_number`.
    Invalid(FieldError),
    /// A landline for SMS: `invalid_request` (use voice).
    Landline,
}

impl Destination {
    pub fn parse(channel: Channel, field: &str, text: &str) -> Result<Self, DestinationError> {
        Self::parse_in(channel, field, text, None)
    }

    /// Like [`Destination::parse`], reading a number written nationally in
    /// `country` (see `PhoneNumber::parse_in`).
    pub fn parse_in(
        channel: Channel,
        field: &str,
        text: &str,
        country: Option<Country>,
    ) -> Result<Self, DestinationError> {
        match channel {
            Channel::Email => EmailAddress::parse(field, text).map(Self::Email).map_err(DestinationError::Invalid),
            Channel::Sms | Channel::Voice => {
                let number = PhoneNumber::parse_in(field, text, country).map_err(DestinationError::Invalid)?;
                if channel == Channel::Sms && !number.accepts_sms() {
                    return Err(DestinationError::Landline);
                }
                Ok(Self::Phone(number))
            }
        }
    }

    /// E.164 for phones, the normalised address for email: the stored form.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(p) => p.e164(),
            Self::Email(e) => e.as_str(),
        }
    }

    /// The form every limit, cooldown and lookup matches on: E.164 for
    /// phones, the lower-cased address for email (`Bob@` is `bob@`).
    pub fn match_key(&self) -> String {
        match self {
            Self::Phone(p) => p.e164().to_owned(),
            Self::Email(e) => e.match_key(),
        }
    }

    /// Country of a phone number (`None` for email or shared number plans).
    pub fn country(&self) -> Option<&str> {
        match self {
            Self::Phone(p) => p.country(),
            Self::Email(_) => None,
        }
    }

    pub fn masked(&self) -> String {
        match self {
            Self::Phone(p) => p.masked(),
            Self::Email(e) => e.masked(),
        }
    }

    /// The country (alpha-2, or `international` for shared number plans)
    /// that the tenant's geo permissions refuse for this destination, if
    /// any. Email has no country and is never refused here.
    pub fn blocked_country(&self, settings: &Settings) -> Option<&str> {
        let Self::Phone(phone) = self else { return None };
        let country = phone.country().unwrap_or("international");
        (!settings.country_allowed(country)).then_some(country)
    }
}

/// The limits one verification lives under: the service's own values
/// where it sets them, the tenant settings otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpPolicy {
    pub code_length: u32,
    pub ttl: Duration,
    pub max_check_attempts: u32,
    pub max_sends: u32,
    pub send_window: Duration,
    pub resend_cooldown: Duration,
}

impl OtpPolicy {
    pub fn resolve(settings: &Settings, service: &Service) -> Self {
        let o = &settings.otp;
        Self {
            code_length: service.code_length.unwrap_or(o.code_length),
            ttl: Duration::from_secs(u64::from(service.ttl_s.unwrap_or(o.ttl_s))),
            max_check_attempts: o.max_check_attempts,
            max_sends: o.max_sends,
            send_window: Duration::from_secs(u64::from(o.send_window_s)),
            resend_cooldown: Duration::from_secs(u64::from(o.resend_cooldown_s)),
        }
    }
}

/// A verification as stored. The code itself is never here: only
/// `code_hash`, the keyed hash of the newest code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub id: VerificationId,
    pub tenant_id: TenantId,
    pub service_id: ServiceId,
    /// E.164 number or normalised email address.
    pub to: String,
    pub channel: Channel,
    pub locale: Option<String>,
    pub country: Option<String>,
    pub status: VerificationStatus,
    pub code_hash: String,
    /// Wrong checks so far; a resend never resets them.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Every code sent on this verification.
    pub send_count: u32,
    /// The send window in force and the sends made in it.
    pub window_started_at: OffsetDateTime,
    pub window_sends: u32,
    pub last_sent_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Verification {
    /// [`Destination::match_key`] of the stored `to`: what the one-pending
    /// rule and the lookup by `to` compare.
    pub fn match_key(&self) -> String {
        match self.channel {
            Channel::Email => email_match_key(&self.to),
            Channel::Sms | Channel::Voice => self.to.clone(),
        }
    }

    /// A verification whose first code was just made.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: VerificationId,
        service: &Service,
        to: &Destination,
        channel: Channel,
        locale: Option<String>,
        code_hash: String,
        policy: &OtpPolicy,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            tenant_id: service.tenant_id.clone(),
            service_id: service.id.clone(),
            to: to.as_str().to_owned(),
            channel,
            locale,
            country: to.country().map(str::to_owned),
            status: VerificationStatus::Pending,
            code_hash,
            attempts: 0,
            max_attempts: policy.max_check_attempts,
            send_count: 1,
            window_started_at: now,
            window_sends: 1,
            last_sent_at: now,
            expires_at: now + policy.ttl,
            created_at: now,
            updated_at: now,
        }
    }

    /// The state a reader should see: a pending verification past its
    /// expiry is expired even before anything wrote that down.
    pub fn status_at(&self, now: OffsetDateTime) -> VerificationStatus {
        if self.status == VerificationStatus::Pending && now >= self.expires_at {
            VerificationStatus::Expired
        } else {
            self.status
        }
    }

    pub fn attempts_remaining(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts)
    }
}

/// Hashes codes for storage and compares them in constant time. The hash
/// is keyed with a server key and bound to the verification, so a stored
/// hash is useless without the key and cannot be moved to another row.
#[derive(Clone)]
pub struct CodeHasher(KeyedHasher);

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    pub fn new(master: &MasterKey) -> Self {
        Self(master.hasher("otp-code"))
    }

    pub fn hash(&self, owner: &str, code: &str) -> String {
        let mut data = Vec::with_capacity(owner.len() + 1 + code.len());
        data.extend_from_slice(owner.as_bytes());
        data.push(0);
        data.extend_from_slice(code.as_bytes());
        self.0.hash(&data)
    }

    /// Whether `code` is the one `stored` was made from, in time that does
    /// not depend on how much of it matched.
    pub fn matches(&self, stored: &str, owner: &str, code: &str) -> bool {
        same_hash(stored, &self.hash(owner, code))
    }
}

/// Whether `candidate` (a [`CodeHasher::hash`] already made) is `stored`,
/// in time that does not depend on how much of it matched.
pub fn same_hash(stored: &str, candidate: &str) -> bool {
    // SECURITY: constant-time comparison of the two hashes.
    bool::from(candidate.as_bytes().ct_eq(stored.as_bytes()))
}

/// Whether `code` could be a code at all: 4–10 ASCII digits. Anything
/// else is a wrong code without touching the database's hash.
pub fn plausible_code(code: &str) -> bool {
    (4..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> CodeHasher {
        CodeHasher::new(&MasterKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap())
    }

    #[test]
    fn codes_match_only_their_own_verification() {
        let h = hasher();
        let stored = h.hash("ver_a", "123456");
        assert!(h.matches(&stored, "ver_a", "123456"));
        assert!(!h.matches(&stored, "ver_a", "123457"));
        assert!(!h.matches(&stored, "ver_b", "123456"), "a hash is bound to its verification");
        assert!(!stored.contains("123456"));
    }

    #[test]
    fn sms_to_a_landline_is_refused_but_voice_is_not() {
        assert_eq!(Destination::parse(Channel::Sms, "to", "+442079460018"), Err(DestinationError::Landline));
        assert!(Destination::parse(Channel::Voice, "to", "+442079460018").is_ok());
        let email = Destination::parse(Channel::Email, "to", "a@Example.com").unwrap();
        assert_eq!(email.as_str(), "a@example.com");
        assert!(matches!(Destination::parse(Channel::Sms, "to", "a@example.com"), Err(DestinationError::Invalid(_))));
    }

    #[test]
    fn a_pending_verification_reads_expired_after_its_time() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let service = Service::new(TenantId::generate(), "s", None, None, None, now).unwrap();
        let policy = OtpPolicy::resolve(&Settings::default(), &service);
        let to = Destination::parse(Channel::Sms, "to", "+447400123456").unwrap();
        let v =
            Verification::new(VerificationId::generate(), &service, &to, Channel::Sms, None, "h".into(), &policy, now);
        assert_eq!(v.status_at(now), VerificationStatus::Pending);
        assert_eq!(v.status_at(now + policy.ttl), VerificationStatus::Expired);
        assert_eq!(v.attempts_remaining(), 5);
        assert_eq!(v.country.as_deref(), Some("GB"));
    }

    /// The names are the API's and the database's.
    #[test]
    fn statuses_keep_their_names_and_only_pending_is_open() {
        let names: Vec<_> = VerificationStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["pending", "approved", "canceled", "expired", "max_attempts_reached"]);
        for status in VerificationStatus::ALL {
            assert_eq!(VerificationStatus::parse(status.as_str()), Some(status));
            assert_eq!(status.is_final(), status != VerificationStatus::Pending, "{status:?}");
        }
        assert!(VerificationStatus::Approved.is_final() && !VerificationStatus::Pending.is_final());
        assert_eq!(VerificationStatus::parse("denied"), None);
    }

    #[test]
    fn destinations_mask_match_and_meet_the_geo_rule() {
        let gb = Destination::parse(Channel::Sms, "to", "+447400123456").unwrap();
        let us = Destination::parse(Channel::Sms, "to", "+14155552671").unwrap();
        let shared = Destination::parse(Channel::Voice, "to", "+80012345678").unwrap();
        let email = Destination::parse(Channel::Email, "to", "Bob@Example.com").unwrap();
        assert_eq!(gb.masked(), "+44********56");
        assert_eq!(email.masked(), "B***@example.com");
        assert_eq!(email.match_key(), "bob@example.com");
        let only_gb = Settings::default().patched(&serde_json::json!({"geo": {"allowed_countries": ["GB"]}})).unwrap();
        assert_eq!(gb.blocked_country(&only_gb), None);
        assert_eq!(us.blocked_country(&only_gb), Some("US"));
        assert_eq!(shared.blocked_country(&only_gb), Some("international"), "shared plans are their own entry");
        assert_eq!(email.blocked_country(&only_gb), None, "email has no country");
        assert_eq!(us.blocked_country(&Settings::default()), None);
    }

    /// The stored `to` matches as its destination did: email case-blind
    /// in the local part, phones as E.164.
    #[test]
    fn a_stored_verification_matches_like_its_destination() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let service = Service::new(TenantId::generate(), "s", None, None, None, now).unwrap();
        let policy = OtpPolicy::resolve(&Settings::default(), &service);
        let stored = |channel, to: &str| {
            let to = Destination::parse(channel, "to", to).unwrap();
            Verification::new(VerificationId::generate(), &service, &to, channel, None, "h".into(), &policy, now)
        };
        let email = stored(Channel::Email, "Bob@Example.com");
        assert_eq!(email.to, "Bob@example.com", "kept as written");
        assert_eq!(email.match_key(), "bob@example.com");
        assert_eq!(stored(Channel::Sms, "+44 7400 123456").match_key(), "+447400123456");
    }

    #[test]
    fn the_hasher_never_shows_its_key() {
        assert_eq!(format!("{:?}", hasher()), "CodeHasher(..)");
    }

    #[test]
    fn only_digit_strings_of_a_code_length_are_plausible() {
        assert!(plausible_code("1234"));
        assert!(plausible_code("0123456789"));
        for bad in ["123", "12345678901", "12a456", "", " 123456"] {
            assert!(!plausible_code(bad), "{bad}");
        }
    }
}
