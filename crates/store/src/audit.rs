//! The audit log. [`append_audit`] runs inside the transaction of the
//! change it records: it advances the tenant's head row with one
//! conditional `UPDATE … RETURNING` (which also serialises concurrent
//! appends of a tenant on that row), chains the hash under the audit key
//! (`SqlStore::use_audit_key`; no key, no audited write), and inserts the
//! event.

use async_trait::async_trait;
use vouchsafe_core::audit::{AuditEntry, AuditEvent, AuditKey, KEYED_PREFIX, chain_hash};
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::store::{AuditStore, StoreResult};

use crate::tx::{Tx, exec, fetch};
use crate::{SqlStore, map_err, on_pool};

/// Appends `entry` for `tenant` inside the open transaction `tx`, hashed
/// under `key`.
pub(crate) async fn append_audit(
    tx: &mut Tx<'_>,
    key: &AuditKey,
    tenant: &str,
    entry: &AuditEntry,
) -> Result<(), sqlx::Error> {
    let (seq, prev_hash) = fetch!(
        tx,
        one(i64, String),
        "UPDATE audit_heads SET seq = seq + 1 WHERE tenant_id = $1 RETURNING seq, hash",
        [tenant]
    )?;
    let hash = chain_hash(key, &prev_hash, seq, entry);
    exec!(
        tx,
        "INSERT INTO audit_events (tenant_id, seq, at, actor, action, target, outcome, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            tenant,
            seq,
            to_unix_ms(entry.at),
            &entry.actor,
            &entry.action,
            &entry.target,
            &entry.outcome,
            &prev_hash,
            &hash
        ]
    )?;
    exec!(tx, "UPDATE audit_heads SET hash = $1 WHERE tenant_id = $2", [&hash, tenant])?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            seq: r.seq,
            entry: AuditEntry {
                actor: r.actor,
                action: r.action,
                target: r.target,
                outcome: r.outcome,
                at: from_unix_ms(r.at),
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn audit_events(&self, tenant: &TenantId, after: i64, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        let rows: Vec<AuditRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(
                "SELECT seq, at, actor, action, target, outcome, prev_hash, hash FROM audit_events \
                 WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(tenant.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        )
        .map_err(map_err)?;
        Ok(rows.into_iter().map(AuditEvent::from).collect())
    }

    async fn audit_head(&self, tenant: &TenantId) -> StoreResult<i64> {
        let (seq,): (i64,) = on_pool!(self.db(), pool =>
            sqlx::query_as("SELECT seq FROM audit_heads WHERE tenant_id = $1").bind(tenant.as_str()).fetch_one(pool).await
        )
        .map_err(map_err)?;
        Ok(seq)
    }

    async fn pin_unkeyed_chains(&self, entry: &AuditEntry) -> StoreResult<u64> {
        let unkeyed = format!("{KEYED_PREFIX}%");
        let (due, tenants): (Option<(String,)>, Vec<(String,)>) = on_pool!(self.db(), pool => async {
            let due = sqlx::query_as("SELECT value FROM meta WHERE key = 'audit_pin_due'").fetch_optional(pool).await?;
            let tenants = sqlx::query_as("SELECT tenant_id FROM audit_heads WHERE seq > 0 AND hash NOT LIKE $1")
                .bind(&unkeyed)
                .fetch_all(pool)
                .await?;
            Ok::<_, sqlx::Error>((due, tenants))
        }
        .await)
        .map_err(map_err)?;
        if due.is_none() {
            return Ok(0);
        }
        let mut pinned = 0;
        for (tenant,) in tenants {
            let input = (self.audit_key().map_err(map_err)?, entry.clone(), tenant, unkeyed.clone());
            // The head row is the gate: a second process finds it keyed.
            pinned += self
                .write(input, |conn, (key, entry, tenant, unkeyed)| {
                    Box::pin(async move {
                        let unpinned = exec!(
                            conn,
                            "UPDATE audit_heads SET seq = seq WHERE tenant_id = $1 AND hash NOT LIKE $2",
                            [tenant, unkeyed]
                        )?;
                        if unpinned == 1 {
                            append_audit(conn, key, tenant, entry).await?;
                        }
                        Ok(unpinned)
                    })
                })
                .await
                .map_err(map_err)?;
        }
        // Last, so a crash part-way leaves the rest to the next start.
        self.write((), |conn, ()| {
            Box::pin(async move { exec!(conn, "DELETE FROM meta WHERE key = 'audit_pin_due'", []) })
        })
        .await
        .map_err(map_err)?;
        Ok(pinned)
    }
}
