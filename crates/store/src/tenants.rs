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
use crate::services::insert_service;
use crate::sqlite_reads::{read, row};
use crate::tx::exec;
use crate::{SqlStore, map_err, on_pool, one_row};

/// `SELECT` of every tenant column, followed by a literal clause.
macro_rules! select_tenant {
    ($rest:literal) => {
        concat!("SELECT id, name, account_sid, default_service_id, created_at FROM tenants ", $rest)
    };
}

fn settings_text(settings: &Settings) -> StoreResult<String> {
    serde_json::to_string(settings).map_err(|e| StoreError::Backend(Box::new(e)))
}

row! {
    /// A tenant's settings document and its version.
    struct SettingsRow {
        document: String,
        version: i64,
    }
}

impl SqlStore {
    /// Parses `document`, `tenant`'s settings at `version`, and keeps it for
    /// the reads that find the same version.
    pub(crate) fn parsed_settings(
        &self,
        tenant: &TenantId,
        version: i64,
        document: &str,
    ) -> StoreResult<Versioned<Settings>> {
        let doc =
            serde_json::from_str(document).map_err(|e| StoreError::Damaged(format!("settings of {tenant}: {e}")))?;
        // Read with the current defaults so members added by later versions
        // of the server appear without a migration.
        let value =
            Settings::from_document(doc).map_err(|e| StoreError::Damaged(format!("settings of {tenant}: {e}")))?;
        self.settings.put(tenant.as_str(), version, &value);
        Ok(Versioned { value, version })
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
        let input =
            (self.audit_key().map_err(map_err)?, tenant.clone(), default_service.clone(), document, audit.clone());
        self.write(input, move |conn, (key, tenant, default_service, document, audit)| {
            Box::pin(async move {
                let id = tenant.id.as_str();
                exec!(
                    conn,
                    "INSERT INTO tenants (id, name, account_sid, default_service_id, created_at) VALUES ($1, $2, $3, $4, $5)",
                    [id, &tenant.name, tenant.account_sid.as_str(), tenant.default_service_id.as_str(), at]
                )?;
                exec!(
                    conn,
                    "INSERT INTO tenant_settings (tenant_id, document, version, updated_at) VALUES ($1, $2, 1, $3)",
                    [id, document, at]
                )?;
                insert_service(conn, default_service).await?;
                exec!(conn, INSERT_CONSOLE_PROVIDER, [id, at])?;
                exec!(conn, "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2)", [id, GENESIS_HASH])?;
                append_audit(conn, key, id, audit).await
            })
        })
        .await
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
        let sql = "SELECT version FROM tenant_settings WHERE tenant_id = $1";
        let (version,) = read!(self, one(i64,), sql, [tenant.as_str()])?;
        if let Some(value) = self.settings.get(tenant.as_str(), version) {
            return Ok(Versioned { value, version });
        }
        let sql = "SELECT document, version FROM tenant_settings WHERE tenant_id = $1";
        let SettingsRow { document, version } = read!(self, one SettingsRow, sql, [tenant.as_str()])?;
        self.parsed_settings(tenant, version, &document)
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
            self.write_audited(
                tenant.as_str(),
                audit,
                (document, to_unix_ms(audit.at), tenant.clone(), expected_version),
                |conn, (document, at, tenant, expected)| {
                    Box::pin(async move {
                        exec!(
                            conn,
                            "UPDATE tenant_settings SET document = $1, version = version + 1, updated_at = $2 \
                             WHERE tenant_id = $3 AND version = $4",
                            [document, *at, tenant.as_str(), *expected]
                        )
                    })
                },
            )
            .await,
            StoreError::Stale,
        )
    }
}
