//! Tenants and their settings.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};
use vouchsafe_core::audit::{AuditEntry, GENESIS_HASH};
use vouchsafe_core::clock::to_unix_ms;
use vouchsafe_core::ids::{ServiceId, TenantId};
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{SettingsAndService, StoreError, StoreResult, TenantStore, Versioned};
use vouchsafe_core::tenant::Tenant;

use crate::audit::append_audit;
use crate::providers::INSERT_CONSOLE_PROVIDER;
use crate::rows::{ServiceRow, TenantRow};
use crate::services::insert_service;
use crate::sqlite_reads::{FromSqliteRow, column, read, row};
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

/// A tenant's settings with one of its services (`$2`, or the tenant's
/// default one when null). The service's columns come first, in
/// `ServiceRow`'s order; `$3` is the version of the settings kept parsed
/// (or -1): at that version the document is not sent.
const SETTINGS_AND_SERVICE: &str = "SELECT sv.*, t.default_service_id AS default_service_id, \
     s.version AS settings_version, \
     CASE WHEN s.version = $3 THEN NULL ELSE s.document END AS settings_document \
     FROM tenants t JOIN tenant_settings s ON s.tenant_id = t.id \
     JOIN (SELECT id, tenant_id, name, code_length, ttl_s, channels, version, created_at, updated_at \
     FROM services) sv ON sv.tenant_id = t.id AND sv.id = COALESCE($2, t.default_service_id) \
     WHERE t.id = $1";

/// Where the columns after the service's nine sit.
const AFTER_SERVICE: usize = 9;

struct SettingsAndServiceRow {
    service: ServiceRow,
    default_service_id: String,
    settings_version: i64,
    settings_document: Option<String>,
}

impl<'r> FromRow<'r, PgRow> for SettingsAndServiceRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            service: ServiceRow::from_row(row)?,
            default_service_id: row.try_get("default_service_id")?,
            settings_version: row.try_get("settings_version")?,
            settings_document: row.try_get("settings_document")?,
        })
    }
}

impl FromSqliteRow for SettingsAndServiceRow {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            service: ServiceRow::from_sqlite(row)?,
            default_service_id: column(row, AFTER_SERVICE, "default_service_id")?,
            settings_version: column(row, AFTER_SERVICE + 1, "settings_version")?,
            settings_document: column(row, AFTER_SERVICE + 2, "settings_document")?,
        })
    }
}

impl SqlStore {
    /// The version `tenant`'s settings are kept parsed at, or -1: a
    /// statement that reads the settings sends their document only when
    /// it finds another version.
    pub(crate) fn kept_settings_version(&self, tenant: &TenantId) -> i64 {
        self.settings.version(tenant.as_str()).unwrap_or(-1)
    }

    /// `tenant`'s settings as a statement found them at `version`: parsed
    /// from `document` when it was sent, else the copy kept at that
    /// version (read again should a newer one have been kept meanwhile).
    pub(crate) async fn settings_found(
        &self,
        tenant: &TenantId,
        version: i64,
        document: Option<&str>,
    ) -> StoreResult<Versioned<Settings>> {
        match document {
            Some(document) => self.parsed_settings(tenant, version, document),
            None => match self.settings.get(tenant.as_str(), version) {
                Some(value) => Ok(Versioned { value, version }),
                None => self.settings(tenant).await,
            },
        }
    }

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

    async fn settings_and_service(
        &self,
        tenant: &TenantId,
        service: Option<&ServiceId>,
    ) -> StoreResult<SettingsAndService> {
        let kept = self.kept_settings_version(tenant);
        let row = read!(
            self,
            one SettingsAndServiceRow,
            SETTINGS_AND_SERVICE,
            [tenant.as_str(), service.map(ServiceId::as_str), kept]
        )?;
        let settings = self.settings_found(tenant, row.settings_version, row.settings_document.as_deref()).await?;
        let service = Versioned::<Service>::from(row.service).value;
        let is_default = service.id.as_str() == row.default_service_id;
        Ok(SettingsAndService { settings, service, is_default })
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
