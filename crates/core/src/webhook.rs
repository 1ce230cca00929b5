//! Webhook endpoints and the Standard Webhooks scheme they are signed with:
//! `whsec_` secrets, `v1,` HMAC-SHA256 signatures over `{id}.{timestamp}.{body}`,
//! event filters, the retry schedule with jitter, and the shares that keep
//! one tenant's slow endpoints from stalling everyone's webhooks.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::clock::to_unix_ms;
use crate::event::EventType;
use crate::field_error::FieldError;
use crate::fraud::{BUCKET_MS, SendCounter};
use crate::ids::{TenantId, WebhookEndpointId};

const SECRET_PREFIX: &str = "whsec_";

/// Fair shares of the dispatchers' attempts in flight, counted over every
/// node from the leases in the outbox: an endpoint that never answers holds
/// at most this many attempts at once, so the rest go on to other
/// endpoints…
pub const IN_FLIGHT_PER_ENDPOINT: i64 = 16;
/// …and one tenant, however many endpoints it makes, holds at most this
/// many (half of a process's [`IN_FLIGHT_PER_PROCESS`]). Among tenants with
/// due messages, claims take turns: each tenant's first, then second, ….
pub const IN_FLIGHT_PER_TENANT: i64 = 64;
/// Attempts one dispatcher process runs at once; each is independent, so
/// a slow one delays only itself.
pub const IN_FLIGHT_PER_PROCESS: usize = 128;

/// Webhook endpoints a tenant may have unless the operator sets another
/// number (`webhook_endpoints_per_tenant`). Every event a tenant makes is
/// queued once per endpoint in the write that makes it, and every claim of
/// every dispatcher looks at every enabled endpoint: a tenant's admin who
/// could make endpoints without end would slow every tenant's writes and
/// webhooks.
pub const DEFAULT_ENDPOINTS_PER_TENANT: u32 = 100;
/// The most an operator may allow per tenant, so that the bound stays one.
pub const MAX_ENDPOINTS_PER_TENANT: u32 = 1_000;

/// Test events an endpoint may be sent per hour (`POST …/{id}/test`):
/// enough to develop a receiver, too few to flood the outbox.
pub const TEST_EVENTS_PER_HOUR: u32 = 60;

/// The counter a test event to `endpoint` increments (the store's
/// conditional send counters, so the limit holds over every node).
pub fn test_event_counter(tenant: &TenantId, endpoint: &WebhookEndpointId, now: OffsetDateTime) -> SendCounter {
    let bucket = to_unix_ms(now).div_euclid(BUCKET_MS) * BUCKET_MS;
    SendCounter {
        tenant_id: tenant.clone(),
        scope: "webhook_test",
        key: endpoint.as_str().to_owned(),
        bucket,
        limit: TEST_EVENTS_PER_HOUR,
    }
}

/// A signing secret. Shown once at creation (and rotation), stored sealed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

impl WebhookSecret {
    /// 32 random bytes (the specification asks for 24 to 64).
    pub fn generate() -> Result<Self, crate::crypto::CryptoError> {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| crate::crypto::CryptoError::Rng)?;
        Ok(Self(bytes))
    }

    /// Reads `whsec_` + base64.
    pub fn parse(text: &str) -> Option<Self> {
        let encoded = text.strip_prefix(SECRET_PREFIX)?;
        STANDARD.decode(encoded).ok().filter(|b| !b.is_empty()).map(Self)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `whsec_` + base64, as shown to the user once.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0)))
    }

    /// One `v1,<base64>` signature of a message (Standard Webhooks §Signing).
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &str) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per valid secret, space
/// separated, so receivers keep verifying while a secret is rotated.
pub fn signature_header(secrets: &[WebhookSecret], msg_id: &str, timestamp: i64, body: &str) -> String {
    secrets.iter().map(|s| s.sign(msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Which events an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(Vec<EventType>),
}

impl EventFilter {
    /// From the API: absent or empty means every event.
    pub fn parse(names: Option<&[String]>) -> Result<Self, FieldError> {
        let Some(names) = names.filter(|n| !n.is_empty()) else { return Ok(Self::All) };
        let mut types = Vec::new();
        for name in names {
            let t = EventType::parse(name).ok_or_else(|| {
                let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                FieldError::new("events", format!("unknown event {name:?}; known: {}", known.join(", ")))
            })?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(Self::Only(types))
    }

    /// Stored form: `*`, or `,a,b,` so one `LIKE '%,type,%'` matches in SQL.
    pub fn to_stored(&self) -> String {
        match self {
            Self::All => "*".to_owned(),
            Self::Only(types) => format!(",{},", types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")),
        }
    }

    pub fn from_stored(text: &str) -> Self {
        if text == "*" { Self::All } else { Self::Only(text.split(',').filter_map(EventType::parse).collect()) }
    }

    /// Names for the API; every event for `All`.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => EventType::ALL.iter().map(|t| t.as_str().to_owned()).collect(),
            Self::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }

    pub fn matches(&self, t: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(&t),
        }
    }
}

/// A tenant's endpoint (its secrets live sealed in the store, not here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub tenant_id: TenantId,
    pub url: String,
    pub description: String,
    pub events: EventFilter,
    pub enabled: bool,
    /// Why the server disabled it (`410 Gone`), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Delays before each attempt: the first is made at once, each later one
/// after the delay at its position; after the last, the message is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    /// The Standard Webhooks schedule of API.md: at once, 5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    fn default() -> Self {
        Self([0, 5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400].map(Duration::from_secs).to_vec())
    }
}

impl RetrySchedule {
    /// Reads comma-separated seconds, such as `0,5,300`.
    pub fn parse(text: &str) -> Option<Self> {
        let delays: Option<Vec<Duration>> =
            text.split(',').map(|s| s.trim().parse::<u64>().ok().map(Duration::from_secs)).collect();
        delays.filter(|d| !d.is_empty()).map(Self)
    }

    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// When to try again after `attempts_made` failed attempts, or `None`
    /// when the schedule is used up. `jitter` in [0, 1) spreads retries by
    /// up to ±10% so endpoints coming back are not hit by a thundering herd.
    pub fn next_attempt_at(&self, attempts_made: u32, now: OffsetDateTime, jitter: f64) -> Option<OffsetDateTime> {
        let delay = *self.0.get(attempts_made as usize)?;
        let spread = delay.as_secs_f64() * 0.2 * (jitter.clamp(0.0, 1.0) - 0.5);
        Some(now + time::Duration::seconds_f64(delay.as_secs_f64() + spread))
    }
}

/// A number in [0, 1) from the OS CSPRNG, for jitter.
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The known-answer example of the Standard Webhooks specification.
    #[test]
    fn signs_the_specification_vector() {
        let v: serde_json::Value = serde_json::from_str(include_str!("../tests/data/standard_webhooks.json")).unwrap();
        let secret = WebhookSecret::parse(v["secret"].as_str().unwrap()).unwrap();
        let ts: i64 = v["webhook_timestamp"].as_str().unwrap().parse().unwrap();
        let sig = secret.sign(v["webhook_id"].as_str().unwrap(), ts, v["body"].as_str().unwrap());
        assert_eq!(sig, v["webhook_signature"].as_str().unwrap());
    }

    /// Test events count per endpoint in hour-long buckets that start on
    /// the hour, so every node counts into the same one.
    #[test]
    fn test_events_count_per_endpoint_per_hour() {
        let (tenant, endpoint) = (TenantId::generate(), WebhookEndpointId::generate());
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap();
        let counter = test_event_counter(&tenant, &endpoint, at(1_700_001_234));
        assert_eq!(counter.bucket, 1_699_999_200_000, "the hour 22:00 UTC");
        assert_eq!((counter.scope, counter.key.as_str(), counter.limit), ("webhook_test", endpoint.as_str(), 60));
        assert_eq!(test_event_counter(&tenant, &endpoint, at(1_700_002_799)).bucket, counter.bucket);
        assert_eq!(test_event_counter(&tenant, &endpoint, at(1_700_002_800)).bucket, counter.bucket + 3_600_000);
    }

    #[test]
    fn a_secret_shows_only_once_and_never_in_debug() {
        let secret = WebhookSecret::from_bytes(vec![7; 32]);
        assert_eq!(secret.as_bytes(), [7; 32]);
        assert_eq!(format!("{secret:?}"), "WebhookSecret([REDACTED])");
        let shown = secret.expose();
        assert_eq!(WebhookSecret::parse(&shown).map(|s| s.as_bytes().to_vec()), Some(vec![7; 32]));
    }

    #[test]
    fn filters_name_their_events() {
        let only = EventFilter::parse(Some(&["user.locked".to_owned(), "user.locked".to_owned()])).unwrap();
        assert_eq!(only.names(), ["user.locked"]);
        assert_eq!(EventFilter::All.names().len(), EventType::ALL.len());
        assert_eq!(EventFilter::All.names()[0], EventType::ALL[0].as_str());
    }

    #[test]
    fn rotation_sends_both_signatures() {
        let a = WebhookSecret::generate().unwrap();
        let b = WebhookSecret::generate().unwrap();
        let header = signature_header(&[a.clone(), b.clone()], "msg_1", 1, "{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts, vec![a.sign("msg_1", 1, "{}"), b.sign("msg_1", 1, "{}")]);
        assert_eq!(WebhookSecret::parse(&a.expose()).unwrap().as_bytes(), a.as_bytes());
    }

    #[test]
    fn filters_parse_store_and_match() {
        let names = vec!["ping".to_owned(), "user.locked".to_owned(), "ping".to_owned()];
        let f = EventFilter::parse(Some(&names)).unwrap();
        assert_eq!(f.to_stored(), ",ping,user.locked,");
        assert_eq!(EventFilter::from_stored(&f.to_stored()), f);
        assert!(f.matches(EventType::Ping) && !f.matches(EventType::ChallengeDenied));
        assert_eq!(EventFilter::parse(None).unwrap(), EventFilter::All);
        assert_eq!(EventFilter::parse(Some(&["nope".to_owned()])).unwrap_err().field, "events");
    }

    #[test]
    fn the_default_schedule_is_that_of_api_md_with_bounded_jitter() {
        let s = RetrySchedule::default();
        assert_eq!(s.attempts(), 10);
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(s.next_attempt_at(0, now, 0.9), Some(now), "the first attempt is at once");
        for (jitter, expected) in [(0.0, 270.0), (0.25, 285.0), (0.5, 300.0), (1.0, 330.0), (7.0, 330.0)] {
            let at = s.next_attempt_at(2, now, jitter).unwrap();
            assert_eq!((at - now).as_seconds_f64(), expected, "jitter {jitter}");
        }
        assert_eq!(s.next_attempt_at(10, now, 0.5), None, "after the tenth attempt the message is dead");
        assert_eq!(RetrySchedule::parse("0, 1,2").unwrap().attempts(), 3);
        assert!(RetrySchedule::parse("1,x").is_none());
    }

    #[test]
    fn random_unit_stays_in_range_and_spreads() {
        let draws: Vec<f64> = (0..1000).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let below_half = draws.iter().filter(|x| **x < 0.5).count();
        // Binomial(1000, ½): outside 400..600 about once in 10^10 runs.
        assert!((400..600).contains(&below_half), "{below_half} of 1000 below ½");
    }
}
