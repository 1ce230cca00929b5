//! Deliveries: one message handed to providers, either a verification's
//! code or a code the CRM made itself (API.md, "Deliveries"). The record
//! keeps where it went, which provider took it and what became of it —
//! never the code or the message text.

use time::OffsetDateTime;

use crate::channel::Channel;
use crate::field_error::FieldError;
use crate::ids::{DeliveryId, TenantId, VerificationId};

/// A code a CRM made, to deliver: 4 to 12 printable ASCII characters (no
/// spaces), as one-time passcodes are.
pub fn check_crm_code(code: &str) -> Result<(), FieldError> {
    if (4..=12).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(FieldError::new("code", "must be 4 to 12 printable characters"))
    }
}

/// SECURITY: a CRM's own message text must carry the code, as `{code}` or
/// written in: a message without it would be delivered, counted and
/// answered `SUCCESS` while the person never got the code.
pub fn check_message_carries_code(message: &str, code: &str) -> Result<(), FieldError> {
    if message.contains("{code}") || message.contains(code) {
        Ok(())
    } else {
        Err(FieldError::new("message", "must contain {code} or the code itself"))
    }
}

/// Salesforce's delivery result (`Auth.VerificationResult`-style enum of a
/// custom OTP delivery handler), so a handler can pass it straight through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Success,
    ProviderError,
    InvalidPhoneNumber,
    CountryBlock,
    MessageLimitExceeded,
    Exception,
}

impl DeliveryResult {
    pub const ALL: [Self; 6] = [
        Self::Success,
        Self::ProviderError,
        Self::InvalidPhoneNumber,
        Self::CountryBlock,
        Self::MessageLimitExceeded,
        Self::Exception,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::ProviderError => "PROVIDER_ERROR",
            Self::InvalidPhoneNumber => "INVALID_PHONE_NUMBER",
            Self::CountryBlock => "COUNTRY_BLOCK",
            Self::MessageLimitExceeded => "MESSAGE_LIMIT_EXCEEDED",
            Self::Exception => "EXCEPTION",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Where a delivery stands. `sent` means a provider accepted it; a
/// provider's receipt later moves it to `delivered` or `undelivered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Refused before any provider was asked (bad number, geo, limits).
    Rejected,
    /// Accepted by a provider.
    Sent,
    /// Every provider of the channel failed.
    Failed,
    /// The provider's receipt says the handset or mailbox got it.
    Delivered,
    /// The provider's receipt says it could not be delivered.
    Undelivered,
}

impl DeliveryStatus {
    pub const ALL: [Self; 5] = [Self::Rejected, Self::Sent, Self::Failed, Self::Delivered, Self::Undelivered];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    /// The verification whose code this carried, if any.
    pub verification_id: Option<VerificationId>,
    pub channel: Channel,
    /// E.164 or email address (as given when it did not parse).
    pub to: String,
    pub country: Option<String>,
    pub status: DeliveryStatus,
    pub result: DeliveryResult,
    /// The provider that accepted it (or was tried last).
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    /// Why it failed, in words safe to show (no secrets, no URLs).
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_use_salesforce_names() {
        for r in DeliveryResult::ALL {
            assert_eq!(DeliveryResult::parse(r.as_str()), Some(r));
        }
        assert_eq!(DeliveryResult::MessageLimitExceeded.as_str(), "MESSAGE_LIMIT_EXCEEDED");
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }
}

#[cfg(test)]
mod crm_code_tests {
    use super::*;

    #[test]
    fn crm_codes_and_their_messages() {
        for good in ["1234", "739184", "ABCD-1234", "123456789012"] {
            assert!(check_crm_code(good).is_ok(), "{good}");
        }
        for bad in ["", "123", "1234567890123", "12 34", "12\n34", "１２３４"] {
            assert!(check_crm_code(bad).is_err(), "{bad:?}");
        }
        assert!(check_message_carries_code("Your code is {code}", "739184").is_ok());
        assert!(check_message_carries_code("Your code is 739184", "739184").is_ok());
        assert_eq!(check_message_carries_code("Hello there", "739184").unwrap_err().field, "message");
    }
}
