//! API keys: stored by the keyed hash of their secret, revocable at once.

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::api_key::{API_KEYS_PER_TENANT, ApiKey, NewApiKey, REVOKED_KEYS_KEPT_FOR};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::ids::{ApiKeyId, TenantId};
use vouchsafe_core::store::{ApiKeyStore, ConsoleSession, StoreError, StoreResult};

use crate::rows::ApiKeyRow;
use crate::sqlite_reads::read;
use crate::tenants::{Counted, before_counting};
use crate::tx::{Tx, exec};
use crate::{Db, SqlStore, key_cache, map_err, on_pool, one_row};

/// `SELECT` of every API-key column except the hash, followed by a literal clause.
macro_rules! select_key {
    ($rest:literal) => {
        concat!("SELECT id, tenant_id, name, role, hint, created_at, revoked_at FROM api_keys ", $rest)
    };
}

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn create_console_session(&self, session: &ConsoleSession) -> StoreResult<()> {
        self.write(session.clone(), |conn, session| {
            Box::pin(async move {
                exec!(
                    conn,
                    "INSERT INTO console_sessions (id_hash, tenant_id, key_id, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    [
                        session.id_hash.as_str(),
                        session.tenant_id.as_str(),
                        session.key_id.as_str(),
                        to_unix_ms(session.expires_at),
                        to_unix_ms(session.created_at)
                    ]
                )
            })
        })
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
        let row: Option<(String, String, i64, i64)> = read!(
            self,
            optional(String, String, i64, i64),
            "SELECT tenant_id, key_id, expires_at, created_at FROM console_sessions WHERE id_hash = $1",
            [id_hash]
        )?;
        Ok(row.and_then(|(tenant, key, expires_at, created_at)| {
            Some(ConsoleSession {
                id_hash: id_hash.to_owned(),
                tenant_id: TenantId::parse(&tenant)?,
                key_id: ApiKeyId::parse(&key)?,
                expires_at: from_unix_ms(expires_at),
                created_at: from_unix_ms(created_at),
            })
        }))
    }

    async fn end_console_session(&self, id_hash: &str) -> StoreResult<()> {
        self.write(id_hash.to_owned(), |conn, id_hash| {
            Box::pin(async move { exec!(conn, "DELETE FROM console_sessions WHERE id_hash = $1", [id_hash.as_str()]) })
        })
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn prune_console_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let at = to_unix_ms(now);
        self.write(at, |conn, at| {
            Box::pin(async move { exec!(conn, "DELETE FROM console_sessions WHERE expires_at <= $1", [*at]) })
        })
        .await
        .map_err(map_err)
    }

    async fn create_api_key(&self, new: &NewApiKey, audit: &AuditEntry) -> StoreResult<()> {
        let inserted = self
            .write_audited(new.key.tenant_id.as_str(), audit, new.clone(), |conn, new| {
                let k = &new.key;
                Box::pin(async move {
                    // SECURITY: the count sees every creation that committed before.
                    before_counting(conn, Counted::Tenant(k.tenant_id.as_str())).await?;
                    exec!(
                        conn,
                        "INSERT INTO api_keys (id, tenant_id, name, role, secret_hash, hint, created_at, revoked_at) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, NULL \
                         WHERE (SELECT COUNT(*) FROM api_keys WHERE tenant_id = $2) < $8",
                        [
                            k.id.as_str(),
                            k.tenant_id.as_str(),
                            &k.name,
                            k.role.as_str(),
                            &new.secret_hash,
                            &k.hint,
                            to_unix_ms(k.created_at),
                            i64::from(API_KEYS_PER_TENANT)
                        ]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        // The message names REVOKED_KEYS_KEPT_FOR's 30 days.
        const _: () = assert!(REVOKED_KEYS_KEPT_FOR.whole_days() == 30);
        if inserted == 0 {
            return Err(StoreError::LimitReached(
                "the tenant holds as many API keys as it may (revoked ones count for 30 days); revoke one first",
            ));
        }
        Ok(())
    }

    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        let read = || async {
            let sql = select_key!("WHERE secret_hash = $1 AND revoked_at IS NULL");
            let row = read!(self, optional ApiKeyRow, sql, [secret_hash])?;
            row.map(ApiKey::try_from).transpose()
        };
        // Kept while changes to keys are heard (`key_cache`).
        let keys = match self.db() {
            Db::Postgres { pool, keys, .. } => {
                keys.follow(pool);
                keys
            }
            Db::Sqlite { readers, keys, .. } => {
                keys.follow_file(readers);
                keys
            }
        };
        if let Some(key) = keys.get(secret_hash) {
            return Ok(Some(key));
        }
        let began = keys.epoch();
        let key = read().await?;
        if let Some(key) = &key {
            keys.put(secret_hash, key, began);
        }
        Ok(key)
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
        let revoked = self
            .write_audited(
                tenant.as_str(),
                audit,
                (to_unix_ms(audit.at), tenant.clone(), id.clone()),
                |conn, (at, tenant, id)| {
                    Box::pin(async move {
                        let changed = exec!(
                            conn,
                            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE tenant_id = $2 AND id = $3",
                            [*at, tenant.as_str(), id.as_str()]
                        )?;
                        // Every node's kept keys are forgotten as this commits.
                        if let Tx::Postgres(pg) = conn {
                            sqlx::query("SELECT pg_notify($1, $2)")
                                .bind(key_cache::CHANNEL)
                                .bind(key_cache::REVOKED)
                                .execute(pg.statement())
                                .await?;
                        }
                        Ok(changed)
                    })
                },
            )
            .await;
        // This node's kept keys at once, whatever it has heard; every other
        // node's (or process's, on a SQLite file) within `SETTLE`, so it
        // answers only then (see `key_cache`).
        let (Db::Postgres { keys, .. } | Db::Sqlite { keys, .. }) = self.db();
        keys.forget_all();
        if matches!(revoked, Ok(1)) {
            tokio::time::sleep(key_cache::SETTLE).await;
        }
        one_row(revoked, StoreError::NotFound)
    }

    async fn prune_revoked_api_keys(&self, before: OffsetDateTime) -> StoreResult<u64> {
        // A revoked key is refused whether its row is there or not (the
        // lookup reads unrevoked keys only), and no node keeps it: dropping
        // the row changes nothing but the list and the tenant's count.
        let before = to_unix_ms(before);
        self.write(before, |conn, before| {
            Box::pin(async move {
                exec!(conn, "DELETE FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at <= $1", [*before])
            })
        })
        .await
        .map_err(map_err)
    }
}
