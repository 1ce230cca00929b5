//! API keys: stored by the keyed hash of their secret, revocable at once.

use async_trait::async_trait;
use vouchsafe_core::api_key::{ApiKey, NewApiKey};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::clock::to_unix_ms;
use vouchsafe_core::ids::{ApiKeyId, TenantId};
use vouchsafe_core::store::{ApiKeyStore, StoreError, StoreResult};

use crate::rows::ApiKeyRow;
use crate::sqlite_reads::read;
use crate::{SqlStore, audited, map_err, on_pool, one_row};

/// `SELECT` of every API-key column except the hash, followed by a literal clause.
macro_rules! select_key {
    ($rest:literal) => {
        concat!("SELECT id, tenant_id, name, role, hint, created_at, revoked_at FROM api_keys ", $rest)
    };
}

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn create_api_key(&self, new: &NewApiKey, audit: &AuditEntry) -> StoreResult<()> {
        let k = &new.key;
        audited!(self, k.tenant_id.as_str(), audit, pool =>
            sqlx::query(
                "INSERT INTO api_keys (id, tenant_id, name, role, secret_hash, hint, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
            )
            .bind(k.id.as_str())
            .bind(k.tenant_id.as_str())
            .bind(&k.name)
            .bind(k.role.as_str())
            .bind(&new.secret_hash)
            .bind(&k.hint)
            .bind(to_unix_ms(k.created_at))
        )
        .map_err(map_err)?;
        Ok(())
    }

    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        let sql = select_key!("WHERE secret_hash = $1 AND revoked_at IS NULL");
        let row = read!(self, optional ApiKeyRow, sql, [secret_hash])?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<ApiKey> {
        let sql = select_key!("WHERE tenant_id = $1 AND id = $2");
        let row: ApiKeyRow = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).bind(id.as_str()).fetch_one(pool).await
        )
        .map_err(map_err)?;
        row.try_into()
    }

    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        let sql = select_key!("WHERE tenant_id = $1 ORDER BY created_at, id");
        let rows: Vec<ApiKeyRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).fetch_all(pool).await
        )
        .map_err(map_err)?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId, audit: &AuditEntry) -> StoreResult<()> {
        // Revoking twice keeps the first time; an unknown id is NotFound.
        one_row(
            audited!(self, tenant.as_str(), audit, pool =>
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE tenant_id = $2 AND id = $3",
                )
                .bind(to_unix_ms(audit.at))
                .bind(tenant.as_str())
                .bind(id.as_str())
            ),
            StoreError::NotFound,
        )
    }
}
