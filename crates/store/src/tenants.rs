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
use crate::tx::{Tx, exec};
use crate::{SqlStore, map_err, on_pool, one_row};

/// Whose rows a write counts against a limit.
#[derive(Clone, Copy)]
pub(crate) enum Counted<'a> {
    /// A tenant's: its webhook endpoints, providers, credentials, services
    /// and API keys.
    Tenant(&'a str),
    /// A user's authenticators.
    User { tenant: &'a str, user: &'a str },
}

/// SECURITY: makes the writes that count the same owner's rows against a
/// limit wait for each other, so that concurrent ones cannot pass the
/// limit together; call it first in the write, then count and insert in a
/// statement of its own. SQLite's writer runs one write at a time already.
/// On PostgreSQL this locks the owner's row (the tenant's, or the user's),
/// and the next statement takes its snapshot once the lock is held (the
/// lock and the count in one statement would count from before the wait).
/// `NO KEY UPDATE` does not block the owner's other writes, whose foreign
/// keys take `KEY SHARE`.
pub(crate) async fn before_counting(conn: &mut Tx<'_>, owner: Counted<'_>) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(pg) = conn {
        let lock = match owner {
            Counted::Tenant(tenant) => {
                sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE").bind(tenant)
            }
            Counted::User { tenant, user } => {
                sqlx::query("SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE")
                    .bind(tenant)
                    .bind(user)
            }
        };
        lock.execute(pg.statement()).await?;
    }
    Ok(())
}

/// `SELECT` of every tenant column, followed by a literal clause.
macro_rules! select_tenant {
    ($rest:literal) => {
        concat!("SELECT id, name, account_sid, default_service_id, created_at FROM tenants ", $rest)
    };
}

fn settings_text(settings: &Settings) -> StoreResult<String> {
    serde_json::to_string(settings).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// The columns of `tenant_settings s` that a read of settings selects:
/// the version, and the document only when it is not at version `$kept`
/// (the version kept parsed, or -1), so an unchanged document is neither
/// sent nor parsed again. Read them with [`FoundSettingsRow`].
macro_rules! found_settings_columns {
    ($kept:literal) => {
        concat!(
            "s.version AS settings_version, CASE WHEN s.version = ",
            $kept,
            " THEN NULL ELSE s.document END AS settings_document"
        )
    };
}
pub(crate) use found_settings_columns;

row! {
    /// A tenant's settings as [`found_settings_columns!`] selects them.
    pub(crate) struct FoundSettingsRow {
        version as "settings_version": i64,
        document as "settings_document": Option<String>,
    }
}

/// A tenant's settings with one of its services (`$2`, or the tenant's
/// default one when null), `$3` the settings' version kept parsed. The
/// service's columns come first, in `ServiceRow`'s order, then the
/// settings', then the default service's id and the providers' version.
const SETTINGS_AND_SERVICE: &str = concat!(
    "SELECT sv.*, ",
    found_settings_columns!("$3"),
    ", t.default_service_id AS default_service_id, t.providers_version AS providers_version \
     FROM tenants t JOIN tenant_settings s ON s.tenant_id = t.id \
     JOIN (SELECT id, tenant_id, name, code_length, ttl_s, channels, version, created_at, updated_at \
     FROM services) sv ON sv.tenant_id = t.id AND sv.id = COALESCE($2, t.default_service_id) \
     WHERE t.id = $1"
);

/// Where the columns after the service's nine sit.
const AFTER_SERVICE: usize = 9;

struct SettingsAndServiceRow {
    service: ServiceRow,
    settings: FoundSettingsRow,
    default_service_id: String,
    providers_version: i64,
}

impl<'r> FromRow<'r, PgRow> for SettingsAndServiceRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            service: ServiceRow::from_row(row)?,
            settings: FoundSettingsRow::from_row(row)?,
            default_service_id: row.try_get("default_service_id")?,
            providers_version: row.try_get("providers_version")?,
        })
    }
}

impl FromSqliteRow for SettingsAndServiceRow {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            service: ServiceRow::from_sqlite(row)?,
            settings: FoundSettingsRow::from_sqlite_at(row, AFTER_SERVICE)?,
            default_service_id: column(row, AFTER_SERVICE + 2, "default_service_id")?,
            providers_version: column(row, AFTER_SERVICE + 3, "providers_version")?,
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

    /// `tenant`'s settings as a statement found them: parsed from the
    /// document when it was sent, else the copy kept at that version,
    /// else (a newer version was kept meanwhile) the document read again.
    pub(crate) async fn settings_found(
        &self,
        tenant: &TenantId,
        found: FoundSettingsRow,
    ) -> StoreResult<Versioned<Settings>> {
        if let Some(document) = &found.document {
            return self.parsed_settings(tenant, found.version, document);
        }
        if let Some(value) = self.settings.get(tenant.as_str(), found.version) {
            return Ok(Versioned { value, version: found.version });
        }
        let sql = concat!("SELECT ", found_settings_columns!("-1"), " FROM tenant_settings s WHERE s.tenant_id = $1");
        let found = read!(self, one FoundSettingsRow, sql, [tenant.as_str()])?;
        let document =
            found.document.ok_or_else(|| StoreError::Damaged(format!("settings of {tenant}: no document")))?;
        self.parsed_settings(tenant, found.version, &document)
    }

    /// Parses `document`, `tenant`'s settings at `version`, and keeps it for
    /// the reads that find the same version.
    fn parsed_settings(&self, tenant: &TenantId, version: i64, document: &str) -> StoreResult<Versioned<Settings>> {
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
        let sql = concat!("SELECT ", found_settings_columns!("$2"), " FROM tenant_settings s WHERE s.tenant_id = $1");
        let found = read!(self, one FoundSettingsRow, sql, [tenant.as_str(), self.kept_settings_version(tenant)])?;
        self.settings_found(tenant, found).await
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
        let settings = self.settings_found(tenant, row.settings).await?;
        let service = Versioned::<Service>::from(row.service).value;
        let is_default = service.id.as_str() == row.default_service_id;
        Ok(SettingsAndService { settings, service, is_default, providers_version: row.providers_version })
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
