//! Services: named verification profiles of a tenant (the name shown in
//! messages, code length, time to live, channels). Every tenant has one
//! named `default`; members left unset fall back to the tenant settings.

use time::OffsetDateTime;

use crate::channel::Channel;
use crate::field_error::{FieldError, check_range};
use crate::ids::{ServiceId, TenantId};

pub const DEFAULT_SERVICE: &str = "default";

/// Services a tenant may have, its default among them. They are listed
/// whole (`GET /v1/services`), so without a bound a tenant's admin could
/// make one request hold as many as it liked in the server's memory.
pub const SERVICES_PER_TENANT: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: ServiceId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Digits of codes; `None` uses `otp.code_length` of the settings.
    pub code_length: Option<u32>,
    /// Lifetime of codes; `None` uses `otp.ttl_s` of the settings.
    pub ttl_s: Option<u32>,
    pub channels: Vec<Channel>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Service {
    /// A new service with every member validated.
    pub fn new(
        tenant_id: TenantId,
        name: &str,
        code_length: Option<u32>,
        ttl_s: Option<u32>,
        channels: Option<Vec<Channel>>,
        now: OffsetDateTime,
    ) -> Result<Self, FieldError> {
        let service = Self {
            id: ServiceId::generate(),
            tenant_id,
            name: name.trim().to_owned(),
            code_length,
            ttl_s,
            channels: channels.unwrap_or_else(|| Channel::ALL.to_vec()),
            created_at: now,
            updated_at: now,
        };
        service.validate()?;
        Ok(service)
    }

    /// The bounds shared with the tenant settings (API.md).
    pub fn validate(&self) -> Result<(), FieldError> {
        let chars = self.name.chars().count();
        if !(1..=64).contains(&chars) || self.name.chars().any(char::is_control) {
            return Err(FieldError::new("name", "must be 1 to 64 printable characters"));
        }
        if let Some(len) = self.code_length {
            check_range("code_length", len, 4..=10)?;
        }
        if let Some(ttl) = self.ttl_s {
            check_range("ttl_s", ttl, 30..=86_400)?;
        }
        if self.channels.is_empty() {
            return Err(FieldError::new("channels", "must name at least one channel"));
        }
        let mut seen = self.channels.clone();
        seen.sort_by_key(|c| c.as_str());
        seen.dedup();
        if seen.len() != self.channels.len() {
            return Err(FieldError::new("channels", "must not repeat a channel"));
        }
        Ok(())
    }
}

/// Channels as stored: a comma-separated list.
pub fn channels_to_text(channels: &[Channel]) -> String {
    channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

pub fn channels_from_text(text: &str) -> Vec<Channel> {
    text.split(',').filter_map(Channel::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::generate()
    }

    #[test]
    fn defaults_to_every_channel() {
        let s = Service::new(tenant(), " Acme ", None, None, None, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(s.name, "Acme");
        assert_eq!(s.channels, Channel::ALL.to_vec());
        assert_eq!(channels_from_text(&channels_to_text(&s.channels)), s.channels);
    }

    #[test]
    fn bounds_name_the_field() {
        let at = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(Service::new(tenant(), "", None, None, None, at).unwrap_err().field, "name");
        assert_eq!(Service::new(tenant(), "x", Some(3), None, None, at).unwrap_err().field, "code_length");
        assert_eq!(Service::new(tenant(), "x", Some(11), None, None, at).unwrap_err().field, "code_length");
        assert_eq!(Service::new(tenant(), "x", None, Some(29), None, at).unwrap_err().field, "ttl_s");
        assert_eq!(Service::new(tenant(), "x", None, Some(86_401), None, at).unwrap_err().field, "ttl_s");
        assert_eq!(Service::new(tenant(), "x", None, None, Some(vec![]), at).unwrap_err().field, "channels");
        assert_eq!(
            Service::new(tenant(), "x", None, None, Some(vec![Channel::Sms, Channel::Sms]), at).unwrap_err().field,
            "channels"
        );
        assert!(Service::new(tenant(), "x", Some(4), Some(30), Some(vec![Channel::Email]), at).is_ok());
    }
}
