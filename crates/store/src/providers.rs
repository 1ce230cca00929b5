//! Provider credentials (sealed; this crate never sees them in the clear)
//! and providers.

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::provider::{CredentialInfo, ProviderConfig, ProviderKind};
use vouchsafe_core::service::{channels_from_text, channels_to_text};
use vouchsafe_core::store::{ProviderStore, StoreError, StoreResult};

use crate::audit::append_audit;
use crate::{SqlStore, audited, map_err, on_pool, one_row};

#[derive(sqlx::FromRow)]
struct CredentialRow {
    name: String,
    #[sqlx(rename = "type")]
    kind: String,
    created_at: i64,
    updated_at: i64,
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

#[derive(sqlx::FromRow)]
struct ProviderRow {
    tenant_id: String,
    name: String,
    #[sqlx(rename = "type")]
    kind: String,
    channels: String,
    priority: i64,
    credential: Option<String>,
    settings: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProviderRow> for ProviderConfig {
    type Error = StoreError;

    fn try_from(r: ProviderRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Backend(format!("provider {} has an unreadable {what}", r.name));
        Ok(ProviderConfig {
            kind: ProviderKind::parse(&r.kind).ok_or_else(|| bad("type"))?,
            settings: serde_json::from_str(&r.settings).map_err(|_| bad("settings"))?,
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
        let at = to_unix_ms(now);
        let row: CredentialRow = on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            let row: CredentialRow = sqlx::query_as(
                "INSERT INTO credentials (tenant_id, name, type, sealed, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET type = $3, sealed = $4, updated_at = $5 \
                 RETURNING name, type, created_at, updated_at",
            )
            .bind(tenant.as_str())
            .bind(name)
            .bind(kind)
            .bind(sealed)
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
            append_audit!(tx, &key, tenant.as_str(), audit);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await)
        .map_err(map_err)?;
        Ok(row.into())
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
        let (sealed,): (Vec<u8>,) = on_pool!(self.db(), pool =>
            sqlx::query_as("SELECT sealed FROM credentials WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.as_str())
                .bind(name)
                .fetch_one(pool)
                .await
        )
        .map_err(map_err)?;
        Ok(sealed)
    }

    async fn delete_credential(&self, tenant: &TenantId, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        // The NOT EXISTS keeps a credential in use from being deleted, in
        // the same statement, so a provider saved meanwhile cannot dangle.
        let deleted = audited!(self, tenant.as_str(), audit, pool =>
            sqlx::query(
                "DELETE FROM credentials WHERE tenant_id = $1 AND name = $2 AND NOT EXISTS \
                 (SELECT 1 FROM providers WHERE tenant_id = $1 AND credential = $2)",
            )
            .bind(tenant.as_str())
            .bind(name)
        )
        .map_err(map_err)?;
        if deleted == 1 {
            return Ok(());
        }
        self.sealed_credential(tenant, name).await?;
        Err(StoreError::Conflict("a provider uses this credential"))
    }

    async fn put_provider(&self, p: &ProviderConfig, audit: &AuditEntry) -> StoreResult<ProviderConfig> {
        let settings = p.settings.to_string();
        let sql = concat!(
            "INSERT INTO providers (tenant_id, name, type, channels, priority, credential, settings, enabled, \
             created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9 \
             WHERE $6 IS NULL OR EXISTS (SELECT 1 FROM credentials WHERE tenant_id = $1 AND name = $6) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET type = $3, channels = $4, priority = $5, credential = $6, \
             settings = $7, enabled = $8, updated_at = $9 ",
            "RETURNING tenant_id, name, type, channels, priority, credential, settings, enabled, created_at, updated_at"
        );
        let row: Option<ProviderRow> = on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            let row: Option<ProviderRow> = sqlx::query_as(sql)
                .bind(p.tenant_id.as_str())
                .bind(&p.name)
                .bind(p.kind.as_str())
                .bind(channels_to_text(&p.channels))
                .bind(i64::from(p.priority))
                .bind(p.credential.as_deref())
                .bind(&settings)
                .bind(p.enabled)
                .bind(to_unix_ms(p.updated_at))
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                append_audit!(tx, &key, p.tenant_id.as_str(), audit);
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(row)
        }
        .await)
        .map_err(map_err)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    async fn list_providers(&self, tenant: &TenantId) -> StoreResult<Vec<ProviderConfig>> {
        let sql = select_provider!("WHERE tenant_id = $1 ORDER BY priority, name");
        let rows: Vec<ProviderRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).fetch_all(pool).await
        )
        .map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn delete_provider(&self, tenant: &TenantId, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        one_row(
            audited!(self, tenant.as_str(), audit, pool =>
                sqlx::query("DELETE FROM providers WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name)
            ),
            StoreError::NotFound,
        )
    }
}
