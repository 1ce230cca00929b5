//! Requests and responses of `/v1` and the operational endpoints.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Tells "absent" (`None`) from "null" (`Some(None)`) in PATCH bodies.
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantResponse {
    pub id: String,
    pub name: String,
    /// `AC` + 32 lowercase hex; the user name of the Twilio-compatible surface.
    pub account_sid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// `admin`, `agent` or `webhook`.
    pub role: String,
    /// A label for people (up to 100 characters).
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: String,
    pub name: String,
    pub role: String,
    /// Last four characters of the secret, to tell keys apart.
    pub hint: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    pub id: String,
    pub name: String,
    pub role: String,
    pub tenant_id: String,
    /// `vsk_…`: shown this once, stored only as a hash.
    pub secret: String,
    pub hint: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyResponse>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceRequest {
    /// Shown in messages ("Your {service} verification code…").
    pub name: String,
    /// 4–10; absent uses the tenant setting `otp.code_length`.
    #[serde(default)]
    pub code_length: Option<u32>,
    /// 30–86400; absent uses the tenant setting `otp.ttl_s`.
    #[serde(default)]
    pub ttl_s: Option<u32>,
    /// Channels this service may send on (`sms`, `voice`, `email`); all by default.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// Members present are changed; `null` for `code_length`/`ttl_s` returns
/// them to the tenant setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub code_length: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub ttl_s: Option<Option<u32>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceResponse {
    /// `VA` + 32 hex, also the service sid of the Twilio-compatible surface.
    pub id: String,
    pub name: String,
    pub code_length: Option<u32>,
    pub ttl_s: Option<u32>,
    pub channels: Vec<String>,
    /// Whether native endpoints use this service when none is named.
    pub is_default: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<ServiceResponse>,
}
