//! Tenants: the unit of isolation, each with a name and a Twilio-style
//! account sid.

use crate::ids::{AccountSid, TenantId};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub account_sid: AccountSid,
    pub created_at: OffsetDateTime,
}

/// Name of the tenant `vouchsafe init` creates.
pub const DEFAULT_TENANT: &str = "default";

/// Tenant names are short slugs: they appear on the command line.
pub fn is_valid_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
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
