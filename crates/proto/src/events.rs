//! Webhook endpoints, their delivery log, and the audit log.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpointRequest {
    /// http(s) URL; must not point at a private address (API.md, "Outbound addresses").
    pub url: String,
    /// Event types to receive; absent or empty means all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookEndpointRequest {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// `true` re-enables an endpoint the server disabled after `410 Gone`.
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointResponse {
    /// `whe_…`
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhookEndpointResponse {
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// `whsec_` + base64: shown this once, stored encrypted.
    pub secret: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointList {
    pub webhook_endpoints: Vec<WebhookEndpointResponse>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the old secret keeps signing beside the new one (0–604800 s, default 86400).
    #[serde(default)]
    pub grace_s: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RotatedSecretResponse {
    pub id: String,
    /// The new `whsec_…` secret, shown this once.
    pub secret: String,
    pub previous_secret_expires_at: String,
}

/// Health check of the receiving endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PingResponse {
    pub healthy: bool,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestEventResponse {
    /// The `webhook-id` the endpoint will receive (through the outbox, with retries).
    pub event_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttemptResponse {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt of the event, 2 for the first retry, …
    pub attempt: u32,
    pub at: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// `delivered`, `failed` (will retry), `dead` (schedule used up) or `gone` (410).
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryAttemptResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventResponse {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub hash: String,
    pub prev_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventList {
    pub events: Vec<AuditEventResponse>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditVerifyResponse {
    pub valid: bool,
    pub count: u64,
    /// The first sequence number whose event was changed, removed or moved.
    pub first_bad_seq: Option<i64>,
    /// The keyed hash of the last event (absent for an empty log). Record
    /// it elsewhere with `count`: a later check that still shows this hash
    /// at that point proves nothing before it changed.
    pub head_hash: Option<String>,
}
