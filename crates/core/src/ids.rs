//! Typed identifiers. Each is an opaque string with a type prefix
//! (`key_…`, `ten_…`); services use Twilio's `VA` + 32 hex form so the
//! Twilio-compatible surface can name them directly.

use std::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id: the prefix and a UUIDv7 in hex, so ids sort by
            /// creation time and index well.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Accepts text that has this id's prefix and 32 hex digits after it.
            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                (rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
                    .then(|| Self(text.to_owned()))
            }

            /// Wraps a value read back from storage, which wrote it valid.
            pub fn from_stored(text: String) -> Self {
                Self(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// A tenant: the unit of isolation. Nothing of one tenant is visible to another.
    TenantId,
    "ten_"
);
typed_id!(
    /// The public half of an API key (the secret is separate and never stored).
    ApiKeyId,
    "key_"
);
typed_id!(
    /// A service (verification profile); `VA` + 32 hex like a Twilio Verify service sid.
    ServiceId,
    "VA"
);

typed_id!(
    /// An event (`msg_…`): its Standard Webhooks `webhook-id`, the same on
    /// every endpoint and every retry.
    EventId,
    "msg_"
);
typed_id!(
    /// A webhook endpoint of a tenant.
    WebhookEndpointId,
    "whe_"
);
typed_id!(
    /// One event on its way to one endpoint (a row of the outbox).
    MessageId,
    "wm_"
);
typed_id!(
    /// One delivery attempt of a message, as the delivery log shows it.
    AttemptId,
    "wa_"
);

typed_id!(
    /// A verification (`ver_…`). The Twilio-compatible surface names the
    /// same verification `VE` + the same 32 hex digits.
    VerificationId,
    "ver_"
);
typed_id!(
    /// One message handed to a provider (a verification's send or a
    /// delivery the CRM asked for).
    DeliveryId,
    "dlv_"
);

typed_id!(
    /// An authenticator of a user (TOTP app, HOTP or YubiKey token,
    /// recovery codes, passkey).
    AuthenticatorId,
    "auth_"
);
typed_id!(
    /// A second-factor challenge in a login flow.
    ChallengeId,
    "chl_"
);

typed_id!(
    /// A help-desk caller verification.
    CallerVerificationId,
    "cv_"
);

impl VerificationId {
    /// The Twilio-style sid of this verification: `VE` + its hex digits.
    pub fn twilio_sid(&self) -> String {
        format!("VE{}", &self.0[Self::PREFIX.len()..])
    }

    /// The verification a Twilio-style `VE…` sid names.
    pub fn from_twilio_sid(sid: &str) -> Option<Self> {
        Self::parse(&format!("{}{}", Self::PREFIX, sid.strip_prefix("VE")?))
    }
}

/// A tenant's Twilio-style account sid: `AC` + 32 lowercase hex.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct AccountSid(String);

impl AccountSid {
    pub fn generate() -> Self {
        Self(format!("AC{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_keep_their_prefix() {
        let id = ApiKeyId::generate();
        assert!(id.as_str().starts_with("key_"));
        assert_eq!(ApiKeyId::parse(id.as_str()), Some(id));
        let service = ServiceId::generate();
        assert!(service.as_str().starts_with("VA"));
        assert_eq!(service.as_str().len(), 34);
    }

    #[test]
    fn foreign_or_malformed_ids_do_not_parse() {
        let key = ApiKeyId::generate();
        assert_eq!(TenantId::parse(key.as_str()), None);
        assert_eq!(ApiKeyId::parse("key_123"), None);
        assert_eq!(ApiKeyId::parse("key_0123456789ABCDEF0123456789abcdef"), None);
    }

    #[test]
    fn verification_ids_map_to_and_from_twilio_sids() {
        let id = VerificationId::generate();
        let sid = id.twilio_sid();
        assert!(sid.starts_with("VE") && sid.len() == 34);
        assert_eq!(VerificationId::from_twilio_sid(&sid), Some(id));
        assert_eq!(VerificationId::from_twilio_sid("VA0123"), None);
    }

    #[test]
    fn account_sid_is_ac_and_32_lowercase_hex() {
        let sid = AccountSid::generate();
        let hex = sid.as_str().strip_prefix("AC").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}
