//! Requests and responses of caller verifications (API.md, "Caller
//! verification"). Nothing here ever carries the code or the link.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCallerVerificationRequest {
    /// The CRM record the call is about (a case id).
    pub record_id: String,
    /// `case` by default.
    #[serde(default)]
    pub record_type: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `sms`, `voice` or `email`; the tenant's default when left out.
    #[serde(default)]
    pub channel: Option<String>,
    /// Seconds the customer has (the tenant's default, 60, when left out).
    #[serde(default)]
    pub time_allowed_s: Option<u32>,
    /// The agent on the call, for the record's transaction log.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The customer as a user of vouchsafe: their enrolled authenticators
    /// are then asked for before they can approve.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Language of the message (`es`, `pt-BR`, …): the tenant's caller
    /// template for it, else the built-in one; English by default.
    #[serde(default)]
    pub locale: Option<String>,
    /// ISO 3166-1 alpha-2 country a phone number written without `+` and
    /// a country code is read in (`(415) 555-2671` with `US`); the tenant's
    /// `geo.default_country` when left out.
    #[serde(default)]
    pub default_country: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallerVerificationResponse {
    /// `cv_…`
    pub id: String,
    pub record_id: String,
    pub record_type: String,
    /// `pending`, `verified`, `denied`, `failed`, `expired` or `canceled`.
    pub status: String,
    pub channel: String,
    /// Where the message went, masked.
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub time_allowed_s: u32,
    pub attempts_remaining: u32,
    pub expires_at: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckCallerCodeRequest {
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckCallerCodeResponse {
    pub id: String,
    pub status: String,
    pub valid: bool,
    pub attempts_remaining: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransactionList {
    /// Newest first.
    pub transactions: Vec<CallerVerificationResponse>,
}
