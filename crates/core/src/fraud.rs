//! Send limits against SMS pumping (toll fraud): attackers make a service
//! send codes to premium numbers they are paid for, never checking them.
//! Every send counts in hourly buckets per destination, per number prefix
//! (a block of numbers) and per tenant; a send that would pass any limit
//! is refused. The store increments all counters of a send in one
//! transaction, each conditional on staying under its limit, so the limits
//! hold across nodes and restarts.

use time::OffsetDateTime;

use crate::clock::to_unix_ms;
use crate::ids::TenantId;
use crate::settings::FraudSettings;
use crate::verification::Destination;

/// Length of one counting bucket.
pub const BUCKET_MS: i64 = 3_600_000;

/// One counter a send must increment, and the limit it may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCounter {
    pub tenant_id: TenantId,
    /// `destination`, `prefix` or `tenant`.
    pub scope: &'static str,
    pub key: String,
    /// Start of the hour (Unix ms) the send falls in.
    pub bucket: i64,
    pub limit: u32,
}

impl SendCounter {
    /// Seconds until this counter's bucket ends (for `Retry-After`).
    pub fn retry_after_s(&self, now: OffsetDateTime) -> u64 {
        let left_ms = self.bucket + BUCKET_MS - to_unix_ms(now);
        u64::try_from(left_ms.max(1_000) / 1_000).unwrap_or(1)
    }
}

/// The counters a send to `destination` increments, keyed on its match
/// key (an address in any case is one destination). `prefix` applies to
/// phone numbers only (an E.164 number's first digits).
pub fn counters_for(
    tenant: &TenantId,
    destination: &Destination,
    limits: &FraudSettings,
    now: OffsetDateTime,
) -> Vec<SendCounter> {
    let key = destination.match_key();
    let destination = key.as_str();
    let bucket = to_unix_ms(now).div_euclid(BUCKET_MS) * BUCKET_MS;
    let counter =
        |scope, key: &str, limit| SendCounter { tenant_id: tenant.clone(), scope, key: key.to_owned(), bucket, limit };
    let mut counters = vec![counter("destination", destination, limits.max_sends_per_destination_per_hour)];
    if let Some(digits) = destination.strip_prefix('+') {
        let take = (limits.prefix_length as usize).min(digits.len());
        counters.push(counter("prefix", &destination[..=take], limits.max_sends_per_prefix_per_hour));
    }
    counters.push(counter("tenant", "*", limits.max_sends_per_tenant_per_hour));
    counters
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channel;

    fn to(channel: Channel, text: &str) -> Destination {
        Destination::parse(channel, "to", text).unwrap()
    }

    #[test]
    fn a_phone_send_counts_per_destination_prefix_and_tenant() {
        let tenant = TenantId::generate();
        let now = OffsetDateTime::from_unix_timestamp(1_700_001_234).unwrap();
        let limits = FraudSettings { prefix_length: 6, ..FraudSettings::default() };
        let counters = counters_for(&tenant, &to(Channel::Sms, "+447400123456"), &limits, now);
        let keys: Vec<_> = counters.iter().map(|c| (c.scope, c.key.as_str())).collect();
        assert_eq!(keys, [("destination", "+447400123456"), ("prefix", "+447400"), ("tenant", "*")]);
        assert!(counters.iter().all(|c| c.bucket == 1_699_999_200_000));
        assert_eq!(counters[0].retry_after_s(now), 3_600 - 2_034);
    }

    #[test]
    fn an_email_send_has_no_prefix_and_counts_the_address_in_any_case() {
        let counters = counters_for(
            &TenantId::generate(),
            &to(Channel::Email, "Bob.Smith@Example.co"),
            &FraudSettings::default(),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(counters.iter().map(|c| c.scope).collect::<Vec<_>>(), ["destination", "tenant"]);
        assert_eq!(counters[0].key, "bob.smith@example.co");
    }
}
