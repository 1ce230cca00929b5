//! The storage contract. The `store` crate implements it over SQLite and
//! PostgreSQL; the server only ever sees this trait. Every method is one
//! statement or one transaction, and every state change that can race is a
//! conditional write (`… WHERE version = ?`), never a read-modify-write.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::api_key::{ApiKey, NewApiKey};
use crate::ids::{ApiKeyId, ServiceId, TenantId};
use crate::service::Service;
use crate::settings::Settings;
use crate::tenant::Tenant;

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
pub trait Store: MetaStore + TenantStore + ServiceStore + ApiKeyStore + Send + Sync + 'static {}

impl<T: MetaStore + TenantStore + ServiceStore + ApiKeyStore + Send + Sync + 'static> Store for T {}

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
    async fn create_tenant(&self, tenant: &Tenant, default_service: &Service, settings: &Settings) -> StoreResult<()>;
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
        at: OffsetDateTime,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ServiceStore {
    async fn create_service(&self, service: &Service) -> StoreResult<()>;
    async fn service(&self, tenant: &TenantId, id: &ServiceId) -> StoreResult<Versioned<Service>>;
    async fn service_by_name(&self, tenant: &TenantId, name: &str) -> StoreResult<Service>;
    async fn list_services(&self, tenant: &TenantId) -> StoreResult<Vec<Service>>;
    /// Replaces a service if it is still at `expected_version`.
    async fn replace_service(&self, service: &Service, expected_version: i64) -> StoreResult<()>;
    async fn delete_service(&self, tenant: &TenantId, id: &ServiceId) -> StoreResult<()>;
}

#[async_trait]
pub trait ApiKeyStore {
    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<()>;
    /// The unrevoked key whose secret hashes to `secret_hash`.
    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<ApiKey>;
    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; it stops working with the next request.
    async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId, at: OffsetDateTime) -> StoreResult<()>;
}
