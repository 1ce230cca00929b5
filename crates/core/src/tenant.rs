//! Tenants: the unit of isolation, each with a name and a Twilio-style
//! account sid.

use crate::ids::{AccountSid, ServiceId, TenantId};
use time::OffsetDateTime;

use crate::field_error::FieldError;
use crate::service::{DEFAULT_SERVICE, Service};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub account_sid: AccountSid,
    /// The service used when a request names none.
    pub default_service_id: ServiceId,
    pub created_at: OffsetDateTime,
}

impl Tenant {
    /// A new tenant with its default service, ready for `create_tenant`.
    pub fn new(name: &str, now: OffsetDateTime) -> Result<(Tenant, Service), FieldError> {
        if !is_valid_tenant_name(name) {
            return Err(FieldError::new(
                "name",
                "must be 1 to 64 of a-z, 0-9, - and _, starting with a letter or digit",
            ));
        }
        let id = TenantId::generate();
        let service = Service::new(id.clone(), DEFAULT_SERVICE, None, None, None, now)?;
        let tenant = Tenant {
            id,
            name: name.to_owned(),
            account_sid: AccountSid::generate(),
            default_service_id: service.id.clone(),
            created_at: now,
        };
        Ok((tenant, service))
    }
}

/// Name of the tenant `vouchsafe init` creates.
pub const DEFAULT_TENANT: &str = "default";

/// Tenant names are short slugs: they appear on the command line.
pub fn is_valid_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_slugs() {
        assert!(is_valid_tenant_name("default"));
        assert!(is_valid_tenant_name("acme-eu_2"));
        assert!(!is_valid_tenant_name(""));
        assert!(!is_valid_tenant_name("-acme"));
        assert!(!is_valid_tenant_name("Acme"));
        assert!(!is_valid_tenant_name("a b"));
        assert!(!is_valid_tenant_name(&"a".repeat(65)));
    }
}
