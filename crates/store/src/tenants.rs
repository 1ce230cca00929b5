//! Tenants and their settings.

use async_trait::async_trait;
use vouchsafe_core::audit::{AuditEntry, GENESIS_HASH};
use vouchsafe_core::clock::to_unix_ms;
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{StoreError, StoreResult, TenantStore, Versioned};
use vouchsafe_core::tenant::Tenant;

use crate::audit::append_audit;
use crate::providers::INSERT_CONSOLE_PROVIDER;
use crate::rows::TenantRow;
use crate::services::{INSERT_SERVICE, bind_service};
use crate::sqlite_reads::{read, row};
use crate::{SqlStore, audited, map_err, on_pool, one_row};

/// `SELECT` of every tenant column, followed by a literal clause.
macro_rules! select_tenant {
    ($rest:literal) => {
        concat!("SELECT id, name, account_sid, default_service_id, created_at FROM tenants ", $rest)
    };
}

fn settings_text(settings: &Settings) -> StoreResult<String> {
    serde_json::to_string(settings).map_err(|e| StoreError::Backend(e.to_string()))
}

row! {
    /// A tenant's settings document and its version.
    struct SettingsRow {
        document: String,
        version: i64,
    }
}

#[async_trait]
impl TenantStore for SqlStore {
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        default_service: &Service,
        settings: &Settings,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let document = settings_text(settings)?;
        let at = to_unix_ms(tenant.created_at);
        on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO tenants (id, name, account_sid, default_service_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant.id.as_str())
                .bind(&tenant.name)
                .bind(tenant.account_sid.as_str())
                .bind(tenant.default_service_id.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO tenant_settings (tenant_id, document, version, updated_at) VALUES ($1, $2, 1, $3)")
                .bind(tenant.id.as_str())
                .bind(&document)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            bind_service!(sqlx::query(INSERT_SERVICE), default_service).execute(&mut *tx).await?;
            sqlx::query(INSERT_CONSOLE_PROVIDER).bind(tenant.id.as_str()).bind(at).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2)")
                .bind(tenant.id.as_str())
                .bind(GENESIS_HASH)
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, &key, tenant.id.as_str(), audit);
            tx.commit().await
        }
        .await)
        .map_err(map_err)
    }

    async fn tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        Ok(read!(self, one TenantRow, select_tenant!("WHERE id = $1"), [id.as_str()])?.into())
    }

    async fn tenant_by_name(&self, name: &str) -> StoreResult<Tenant> {
        let row: TenantRow = on_pool!(self.db(), pool => sqlx::query_as(select_tenant!("WHERE name = $1")).bind(name).fetch_one(pool).await)
            .map_err(map_err)?;
        Ok(row.into())
    }

    async fn settings(&self, tenant: &TenantId) -> StoreResult<Versioned<Settings>> {
        let sql = "SELECT document, version FROM tenant_settings WHERE tenant_id = $1";
        let SettingsRow { document, version } = read!(self, one SettingsRow, sql, [tenant.as_str()])?;
        let doc =
            serde_json::from_str(&document).map_err(|e| StoreError::Backend(format!("settings of {tenant}: {e}")))?;
        // Read with the current defaults so members added by later versions
        // of the server appear without a migration.
        let value =
            Settings::from_document(doc).map_err(|e| StoreError::Backend(format!("settings of {tenant}: {e}")))?;
        Ok(Versioned { value, version })
    }

    async fn replace_settings(
        &self,
        tenant: &TenantId,
        settings: &Settings,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let document = settings_text(settings)?;
        one_row(
            audited!(self, tenant.as_str(), audit, pool =>
                sqlx::query(
                    "UPDATE tenant_settings SET document = $1, version = version + 1, updated_at = $2 \
                     WHERE tenant_id = $3 AND version = $4",
                )
                .bind(&document)
                .bind(to_unix_ms(audit.at))
                .bind(tenant.as_str())
                .bind(expected_version)
            ),
            StoreError::Stale,
        )
    }
}
