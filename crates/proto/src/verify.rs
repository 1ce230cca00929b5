//! Requests and responses of verifications, deliveries, credentials and
//! providers (API.md, "Credentials and providers", "Verifications",
//! "Deliveries").

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVerificationRequest {
    /// E.164 phone number (any format libphonenumber reads with a `+`
    /// country code) or, for `email`, an email address.
    pub to: String,
    /// `sms`, `voice` or `email`.
    pub channel: String,
    /// `VA…`; the tenant's `default` service when left out.
    #[serde(default)]
    pub service_id: Option<String>,
    /// Language of the message (`es`, `pt-BR`, …); English by default.
    #[serde(default)]
    pub locale: Option<String>,
    /// ISO 3166-1 alpha-2 country a phone number written without `+` and
    /// a country code is read in (`(415) 555-2671` with `US`); the tenant's
    /// `geo.default_country` when left out.
    #[serde(default)]
    pub default_country: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerificationResponse {
    /// `ver_…`
    pub id: String,
    pub to: String,
    pub channel: String,
    /// `pending`, `approved`, `canceled`, `expired` or `max_attempts_reached`.
    pub status: String,
    pub service_id: String,
    pub attempts_remaining: u32,
    pub send_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckVerificationRequest {
    pub code: String,
    /// The destination the code was sent to (with `service_id`), or…
    #[serde(default)]
    pub to: Option<String>,
    /// …the verification's id.
    #[serde(default)]
    pub verification_id: Option<String>,
    #[serde(default)]
    pub service_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckVerificationResponse {
    pub id: String,
    pub status: String,
    /// Whether this check approved the verification.
    pub valid: bool,
    pub attempts_remaining: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeliveryRequest {
    /// Phone number (E.164) or email address.
    pub to: String,
    pub channel: String,
    /// The one-time password the CRM made. Never stored or logged.
    pub code: String,
    /// The CRM's default text; `{code}` is replaced. The channel template
    /// is used when left out.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub network_id: Option<String>,
    /// ISO 3166-1 alpha-2 country a phone number written without `+` and
    /// a country code is read in (`(415) 555-2671` with `US`); the tenant's
    /// `geo.default_country` when left out.
    #[serde(default)]
    pub default_country: Option<String>,
    #[serde(default)]
    pub experience_id: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryResponse {
    /// `dlv_…`
    pub id: String,
    /// Salesforce's delivery result: `SUCCESS`, `PROVIDER_ERROR`,
    /// `INVALID_PHONE_NUMBER`, `COUNTRY_BLOCK`, `MESSAGE_LIMIT_EXCEEDED`, `EXCEPTION`.
    pub result: String,
    /// The provider that took it (or was tried last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A delivery as recorded, with the provider's receipt when one came.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    pub id: String,
    pub result: String,
    /// `rejected`, `sent`, `failed`, `delivered` or `undelivered`.
    pub status: String,
    pub channel: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A credential, written once and never read back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CredentialRequest {
    Basic { username: String, password: String },
    Bearer { token: String },
    Header { header: String, value: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialResponse {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialList {
    pub credentials: Vec<CredentialResponse>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    /// `console`, `http`, `twilio`, `telesign` or `smtp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Channels it carries; every channel its type supports when left out.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Lower is tried first (default 100).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Name of the credential it authenticates with.
    #[serde(default)]
    pub credential: Option<String>,
    /// Type-specific settings; each type also takes `timeout_ms` (default 10000).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Option<Value>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderResponse {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub channels: Vec<String>,
    pub priority: i32,
    pub credential: Option<String>,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderResponse>,
}
