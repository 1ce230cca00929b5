//! The storage contract. The `store` crate implements it over SQLite and
//! PostgreSQL; the server only ever sees this trait. Every method is one
//! statement or one transaction, and every state change that can race is a
//! conditional write (`… WHERE version = ?`), never a read-modify-write.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::api_key::{ApiKey, NewApiKey};
use crate::audit::{AuditEntry, AuditEvent};
use crate::event::{Event, EventType};
use crate::ids::{ApiKeyId, AttemptId, EventId, MessageId, ServiceId, TenantId, WebhookEndpointId};
use crate::service::Service;
use crate::settings::Settings;
use crate::tenant::Tenant;
use crate::webhook::WebhookEndpoint;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique name or value is taken.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A conditional update found the row changed since it was read.
    #[error("changed since it was read")]
    Stale,
    /// The database failed; the text is for logs, never for clients.
    #[error("database error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A value with the version it was read at, for conditional updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i64,
}

/// Everything the server needs from storage, one sub-trait per concern.
pub trait Store:
    MetaStore + TenantStore + ServiceStore + ApiKeyStore + AuditStore + WebhookStore + Send + Sync + 'static
{
}

impl<T> Store for T where
    T: MetaStore + TenantStore + ServiceStore + ApiKeyStore + AuditStore + WebhookStore + Send + Sync + 'static
{
}

#[async_trait]
pub trait MetaStore {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// The master-key check value stored at first start, if any.
    async fn key_check(&self) -> StoreResult<Option<String>>;
    /// Stores the check value unless one is stored already.
    async fn init_key_check(&self, value: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait TenantStore {
    /// Creates a tenant with its default service (whose id the tenant names)
    /// and settings, atomically.
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        default_service: &Service,
        settings: &Settings,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn tenant(&self, id: &TenantId) -> StoreResult<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant>;
    async fn settings(&self, tenant: &TenantId) -> StoreResult<Versioned<Settings>>;
    /// Replaces the settings if they are still at `expected_version`
    /// (`Stale` otherwise, and the caller re-reads and retries).
    async fn replace_settings(
        &self,
        tenant: &TenantId,
        settings: &Settings,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ServiceStore {
    async fn create_service(&self, service: &Service, audit: &AuditEntry) -> StoreResult<()>;
    async fn service(&self, tenant: &TenantId, id: &ServiceId) -> StoreResult<Versioned<Service>>;
    async fn service_by_name(&self, tenant: &TenantId, name: &str) -> StoreResult<Service>;
    async fn list_services(&self, tenant: &TenantId) -> StoreResult<Vec<Service>>;
    /// Replaces a service if it is still at `expected_version`.
    async fn replace_service(&self, service: &Service, expected_version: i64, audit: &AuditEntry) -> StoreResult<()>;
    async fn delete_service(&self, tenant: &TenantId, id: &ServiceId, audit: &AuditEntry) -> StoreResult<()>;
}

#[async_trait]
pub trait ApiKeyStore {
    async fn create_api_key(&self, key: &NewApiKey, audit: &AuditEntry) -> StoreResult<()>;
    /// The unrevoked key whose secret hashes to `secret_hash`.
    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<ApiKey>;
    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; it stops working with the next request.
    async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId, audit: &AuditEntry) -> StoreResult<()>;
}

/// Every audited change is appended in the same transaction as the change
/// itself (the methods above take an [`AuditEntry`]); this reads it back.
#[async_trait]
pub trait AuditStore {
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn audit_events(&self, tenant: &TenantId, after: i64, limit: i64) -> StoreResult<Vec<AuditEvent>>;
    /// The last sequence number handed out (0 before the first event).
    async fn audit_head(&self, tenant: &TenantId) -> StoreResult<i64>;
}

/// An endpoint's signing secrets, sealed with the master key.
#[derive(Debug, Clone)]
pub struct SealedSecrets {
    pub current: Vec<u8>,
    /// The secret replaced by the last rotation, still signed with until
    /// the instant given.
    pub previous: Option<(Vec<u8>, OffsetDateTime)>,
}

/// A message claimed by one dispatcher: everything needed to send it.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub id: MessageId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub tenant_id: TenantId,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub body: String,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// The lease this dispatcher holds; finishing is conditional on it.
    pub lease: i64,
    pub secrets: SealedSecrets,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    Delivered,
    RetryAt(OffsetDateTime),
    /// The schedule is used up: dead-lettered.
    Dead,
    /// The endpoint answered `410 Gone`: the message ends and the endpoint
    /// is disabled.
    Gone,
}

impl MessageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::RetryAt(_) => "failed",
            Self::Dead => "dead",
            Self::Gone => "gone",
        }
    }
}

/// A message with the outcome of its attempt, ready to be recorded.
#[derive(Debug, Clone)]
pub struct Finished {
    pub message: DueMessage,
    pub outcome: MessageOutcome,
    pub attempt: Attempt,
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub message_id: MessageId,
    pub tenant_id: TenantId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub event_type: String,
    pub attempt: u32,
    pub at: OffsetDateTime,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// `delivered`, `failed`, `dead` or `gone`.
    pub outcome: String,
}

#[async_trait]
pub trait WebhookStore {
    async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        sealed_secret: &[u8],
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn webhook_endpoint(&self, tenant: &TenantId, id: &WebhookEndpointId) -> StoreResult<WebhookEndpoint>;
    async fn list_webhook_endpoints(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Saves url, description, events, enabled and disabled_reason.
    async fn update_webhook_endpoint(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()>;
    /// Deletes an endpoint with its pending messages and its delivery log.
    async fn delete_webhook_endpoint(
        &self,
        tenant: &TenantId,
        id: &WebhookEndpointId,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn webhook_secrets(&self, tenant: &TenantId, id: &WebhookEndpointId) -> StoreResult<SealedSecrets>;
    /// Makes `sealed_secret` current; the old one stays valid until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        tenant: &TenantId,
        id: &WebhookEndpointId,
        sealed_secret: &[u8],
        previous_until: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Stores an event and one message per enabled endpoint that wants it,
    /// in one transaction. (Changes that cause events do the same inside
    /// their own transaction.)
    async fn enqueue_event(&self, event: &Event, only_endpoint: Option<&WebhookEndpointId>) -> StoreResult<usize>;
    /// Claims up to `limit` due messages of enabled endpoints, leasing them
    /// until `lease_until`. A message is claimed by one caller at a time.
    async fn claim_due_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<DueMessage>>;
    /// Records attempts and moves each message on while its lease is still
    /// ours, all in one transaction (one durable commit for a whole batch).
    async fn finish_messages(&self, finished: &[Finished]) -> StoreResult<()>;
    /// Attempts to one endpoint, newest first, before the attempt `before`.
    async fn webhook_attempts(
        &self,
        tenant: &TenantId,
        endpoint: &WebhookEndpointId,
        before: Option<&AttemptId>,
        limit: i64,
    ) -> StoreResult<Vec<Attempt>>;
    /// Messages waiting to be delivered (all tenants), for the metrics.
    async fn outbox_depth(&self) -> StoreResult<i64>;
}
