//! Provider credentials (sealed; this crate never sees them in the clear)
//! and providers.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::provider::{
    CREDENTIALS_PER_TENANT, CredentialInfo, PROVIDERS_PER_TENANT, ProviderConfig, ProviderKind, ProviderSettings,
};
use vouchsafe_core::service::{channels_from_text, channels_to_text};
use vouchsafe_core::store::{ProviderStore, ProvidersToSend, StoreError, StoreResult};

use crate::audit::append_audit;
use crate::sqlite_reads::{FromSqliteRow, column, read, row};
use crate::tenants::{Counted, before_counting};
use crate::tx::{Tx, exec, fetch};
use crate::{SqlStore, map_err, on_pool, one_row};

row! {
    struct CredentialRow {
        name: String,
        kind as "type": String,
        created_at: i64,
        updated_at: i64,
    }
}

impl From<CredentialRow> for CredentialInfo {
    fn from(r: CredentialRow) -> Self {
        CredentialInfo {
            name: r.name,
            kind: r.kind,
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        }
    }
}

macro_rules! select_provider {
    ($rest:literal) => {
        concat!(
            "SELECT tenant_id, name, type, channels, priority, credential, settings, enabled, created_at, updated_at \
             FROM providers ",
            $rest
        )
    };
}

/// Moves the version a send keeps `tenant`'s providers at
/// (`versioned_cache.rs`). Every write a send could see calls it in its
/// own transaction: a provider saved or deleted, a credential saved (a
/// rotation changes what a provider opens).
async fn providers_changed(conn: &mut Tx<'_>, tenant: &str) -> Result<u64, sqlx::Error> {
    exec!(conn, "UPDATE tenants SET providers_version = providers_version + 1 WHERE id = $1", [tenant])
}

/// The refusal of a provider beyond [`PROVIDERS_PER_TENANT`].
fn at_provider_limit() -> StoreError {
    StoreError::LimitReached("the tenant has as many providers as it may; delete one first")
}

row! {
    struct SealedRow {
        sealed: Vec<u8>,
    }
}

row! {
    struct ProviderRow {
        tenant_id: String,
        name: String,
        kind as "type": String,
        channels: String,
        priority: i64,
        credential: Option<String>,
        settings: String,
        enabled: bool,
        created_at: i64,
        updated_at: i64,
    }
}

impl TryFrom<ProviderRow> for ProviderConfig {
    type Error = StoreError;

    fn try_from(r: ProviderRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Damaged(format!("provider {} has an unreadable {what}", r.name));
        let kind = ProviderKind::parse(&r.kind).ok_or_else(|| bad("type"))?;
        let settings: serde_json::Value = serde_json::from_str(&r.settings).map_err(|_| bad("settings"))?;
        Ok(ProviderConfig {
            settings: ProviderSettings::parse(kind, &settings).map_err(|_| bad("settings"))?,
            priority: i32::try_from(r.priority).map_err(|_| bad("priority"))?,
            tenant_id: TenantId::from_stored(r.tenant_id),
            channels: channels_from_text(&r.channels),
            credential: r.credential,
            enabled: r.enabled,
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
            name: r.name,
        })
    }
}

/// The tenant's providers in the order they are tried, each with the
/// credential it names (still sealed) and the providers' version, all
/// from one statement so they agree. A provider's columns come first, as
/// [`select_provider!`] selects them for `ProviderRow`.
const PROVIDERS_TO_SEND: &str = concat!(
    "SELECT p.*, c.sealed AS sealed, t.providers_version AS providers_version FROM (",
    select_provider!("WHERE tenant_id = $1"),
    ") p JOIN tenants t ON t.id = p.tenant_id \
     LEFT JOIN credentials c ON c.tenant_id = p.tenant_id AND c.name = p.credential \
     ORDER BY p.priority, p.name"
);

/// Where the columns after a provider's ten sit.
const AFTER_PROVIDER: usize = 10;

/// One row of [`PROVIDERS_TO_SEND`].
struct ProviderToSendRow {
    provider: ProviderRow,
    sealed: Option<Vec<u8>>,
    version: i64,
}

impl<'r> FromRow<'r, PgRow> for ProviderToSendRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            provider: ProviderRow::from_row(row)?,
            sealed: row.try_get("sealed")?,
            version: row.try_get("providers_version")?,
        })
    }
}

impl FromSqliteRow for ProviderToSendRow {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            provider: ProviderRow::from_sqlite(row)?,
            sealed: column(row, AFTER_PROVIDER, "sealed")?,
            version: column(row, AFTER_PROVIDER + 1, "providers_version")?,
        })
    }
}

/// The statement that gives every new tenant its console provider.
pub(crate) const INSERT_CONSOLE_PROVIDER: &str = "INSERT INTO providers \
    (tenant_id, name, type, channels, priority, credential, settings, enabled, created_at, updated_at) \
    VALUES ($1, 'console', 'console', 'sms,voice,email', 1000, NULL, '{}', TRUE, $2, $2)";

#[async_trait]
impl ProviderStore for SqlStore {
    async fn put_credential(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: &str,
        sealed: &[u8],
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<CredentialInfo> {
        let input = (
            self.audit_key().map_err(map_err)?,
            tenant.clone(),
            name.to_owned(),
            kind.to_owned(),
            sealed.to_vec(),
            to_unix_ms(now),
            audit.clone(),
        );
        let row = self
            .write(input, |conn, (key, tenant, name, kind, sealed, at, audit)| {
                Box::pin(async move {
                    // SECURITY: the count sees every save that committed before.
                    before_counting(conn, Counted::Tenant(tenant.as_str())).await?;
                    // Saved while the tenant is under its limit of
                    // credentials, or under a name it has (a rotation).
                    let row = fetch!(
                        conn,
                        optional CredentialRow,
                        "INSERT INTO credentials (tenant_id, name, type, sealed, created_at, updated_at) \
                         SELECT $1, $2, $3, $4, $5, $5 \
                         WHERE (SELECT COUNT(*) FROM credentials WHERE tenant_id = $1) < $6 \
                         OR EXISTS (SELECT 1 FROM credentials WHERE tenant_id = $1 AND name = $2) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET type = $3, sealed = $4, updated_at = $5 \
                         RETURNING name, type, created_at, updated_at",
                        [tenant.as_str(), name, kind, sealed, *at, i64::from(CREDENTIALS_PER_TENANT)]
                    )?;
                    let Some(row) = row else {
                        return Ok(Err(StoreError::LimitReached(
                            "the tenant has as many credentials as it may; delete one first",
                        )));
                    };
                    providers_changed(conn, tenant.as_str()).await?;
                    append_audit(conn, key, tenant.as_str(), audit).await?;
                    Ok(Ok(row))
                })
            })
            .await
            .map_err(map_err)?;
        Ok(row?.into())
    }

    async fn list_credentials(&self, tenant: &TenantId) -> StoreResult<Vec<CredentialInfo>> {
        let rows: Vec<CredentialRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(
                "SELECT name, type, created_at, updated_at FROM credentials WHERE tenant_id = $1 ORDER BY name",
            )
            .bind(tenant.as_str())
            .fetch_all(pool)
            .await
        )
        .map_err(map_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn sealed_credential(&self, tenant: &TenantId, name: &str) -> StoreResult<Vec<u8>> {
        // On the send path of every start: read in place on SQLite.
        let sql = "SELECT sealed FROM credentials WHERE tenant_id = $1 AND name = $2";
        Ok(read!(self, one SealedRow, sql, [tenant.as_str(), name])?.sealed)
    }

    async fn delete_credential(&self, tenant: &TenantId, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        // The NOT EXISTS keeps a credential in use from being deleted, in
        // the same statement, so a provider saved meanwhile cannot dangle.
        let deleted = self
            .write_audited(tenant.as_str(), audit, (tenant.clone(), name.to_owned()), |conn, (tenant, name)| {
                Box::pin(async move {
                    exec!(
                        conn,
                        "DELETE FROM credentials WHERE tenant_id = $1 AND name = $2 AND NOT EXISTS \
                         (SELECT 1 FROM providers WHERE tenant_id = $1 AND credential = $2)",
                        [tenant.as_str(), name]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        if deleted == 1 {
            return Ok(());
        }
        self.sealed_credential(tenant, name).await?;
        Err(StoreError::Conflict("a provider uses this credential"))
    }

    async fn put_provider(&self, p: &ProviderConfig, audit: &AuditEntry) -> StoreResult<ProviderConfig> {
        let settings = p.settings.to_value().to_string();
        // Saved only when its credential exists and the tenant is under its
        // limit of providers (a provider saved again under its own name
        // does not add one).
        let sql = concat!(
            "INSERT INTO providers (tenant_id, name, type, channels, priority, credential, settings, enabled, \
             created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9 \
             WHERE ($6 IS NULL OR EXISTS (SELECT 1 FROM credentials WHERE tenant_id = $1 AND name = $6)) \
             AND ((SELECT COUNT(*) FROM providers WHERE tenant_id = $1) < $10 \
              OR EXISTS (SELECT 1 FROM providers WHERE tenant_id = $1 AND name = $2)) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET type = $3, channels = $4, priority = $5, credential = $6, \
             settings = $7, enabled = $8, updated_at = $9 ",
            "RETURNING tenant_id, name, type, channels, priority, credential, settings, enabled, created_at, updated_at"
        );
        let input = (self.audit_key().map_err(map_err)?, p.clone(), settings, audit.clone());
        let saved = self
            .write(input, move |conn, (key, p, settings, audit)| {
                Box::pin(async move {
                    // SECURITY: the count sees every save that committed before.
                    before_counting(conn, Counted::Tenant(p.tenant_id.as_str())).await?;
                    let row = fetch!(
                        conn,
                        optional ProviderRow,
                        sql,
                        [
                            p.tenant_id.as_str(),
                            &p.name,
                            p.kind().as_str(),
                            channels_to_text(&p.channels),
                            i64::from(p.priority),
                            p.credential.as_deref(),
                            settings,
                            p.enabled,
                            to_unix_ms(p.updated_at),
                            i64::from(PROVIDERS_PER_TENANT),
                        ]
                    )?;
                    let Some(row) = row else {
                        // Which condition refused it, read in the same transaction.
                        let credential = match p.credential.as_deref() {
                            None => 1,
                            Some(name) => {
                                fetch!(
                                    conn,
                                    one(i64,),
                                    "SELECT COUNT(*) FROM credentials WHERE tenant_id = $1 AND name = $2",
                                    [p.tenant_id.as_str(), name]
                                )?
                                .0
                            }
                        };
                        return Ok(Err(if credential == 0 { StoreError::NotFound } else { at_provider_limit() }));
                    };
                    providers_changed(conn, p.tenant_id.as_str()).await?;
                    append_audit(conn, key, p.tenant_id.as_str(), audit).await?;
                    Ok(Ok(row))
                })
            })
            .await
            .map_err(map_err)?;
        saved?.try_into()
    }

    async fn list_providers(&self, tenant: &TenantId) -> StoreResult<Vec<ProviderConfig>> {
        let sql = select_provider!("WHERE tenant_id = $1 ORDER BY priority, name");
        // On the send path of every start: read in place on SQLite.
        let rows = read!(self, all ProviderRow, sql, [tenant.as_str()])?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn providers_to_send(&self, tenant: &TenantId, seen: i64) -> StoreResult<Arc<ProvidersToSend>> {
        if let Some(kept) = self.providers.get(tenant.as_str(), seen) {
            return Ok(kept);
        }
        // On the send path of every start whose tenant's providers are not
        // kept at the version its request found: read in place on SQLite.
        let rows = read!(self, all ProviderToSendRow, PROVIDERS_TO_SEND, [tenant.as_str()])?;
        // No providers at all: nothing to keep (and no version was read).
        let Some(version) = rows.first().map(|row| row.version) else {
            return Ok(Arc::default());
        };
        let mut to_send = ProvidersToSend { version, ..ProvidersToSend::default() };
        for row in rows {
            if let (Some(name), Some(sealed)) = (&row.provider.credential, row.sealed) {
                to_send.sealed.insert(name.clone(), sealed);
            }
            to_send.providers.push(row.provider.try_into()?);
        }
        let to_send = Arc::new(to_send);
        self.providers.put(tenant.as_str(), version, &to_send);
        Ok(to_send)
    }

    async fn delete_provider(&self, tenant: &TenantId, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        one_row(
            self.write_audited(tenant.as_str(), audit, (tenant.clone(), name.to_owned()), |conn, (tenant, name)| {
                Box::pin(async move {
                    let deleted = exec!(
                        conn,
                        "DELETE FROM providers WHERE tenant_id = $1 AND name = $2",
                        [tenant.as_str(), name]
                    )?;
                    if deleted > 0 {
                        providers_changed(conn, tenant.as_str()).await?;
                    }
                    Ok(deleted)
                })
            })
            .await,
            StoreError::NotFound,
        )
    }
}
