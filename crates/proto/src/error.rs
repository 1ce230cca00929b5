//! The error body every endpoint answers with, and its stable codes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable, machine-readable error codes (API.md, "Conventions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    InvalidRequest,
    InvalidPhoneNumber,
    GeoNotPermitted,
    MaxSendAttemptsReached,
    UserLocked,
    PhishingResistantFactorRequired,
    ProviderUnavailable,
    PayloadTooLarge,
    /// The server is at capacity for this kind of work (slow-on-purpose
    /// hashing); try again after `Retry-After`.
    RateLimited,
    /// The object changed meanwhile, or a unique name is taken.
    Conflict,
    Internal,
    /// The database is unreachable.
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidPhoneNumber => "invalid_phone_number",
            Self::GeoNotPermitted => "geo_not_permitted",
            Self::MaxSendAttemptsReached => "max_send_attempts_reached",
            Self::UserLocked => "user_locked",
            Self::PhishingResistantFactorRequired => "phishing_resistant_factor_required",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::Conflict => "conflict",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }
}

/// `{"error": {...}}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// A sentence for people; never contains secrets or internal details.
    pub message: String,
    /// The HTTP status, repeated for clients that lose it.
    pub status: u16,
    /// The offending field (dotted path) for `invalid_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
