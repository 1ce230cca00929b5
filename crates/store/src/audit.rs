//! The audit log, in two steps.
//!
//! 1. [`append_audit`] runs inside the transaction of the change it
//!    records and inserts the entry into `audit_pending`: one insert that
//!    shares no row with any other writer, so audited writes of one tenant
//!    do not wait for each other.
//! 2. [`chain_pending`] gives pending entries their place in the tenant's
//!    chain: under the tenant's head row (`UPDATE audit_heads … RETURNING`,
//!    which serialises chainers of a tenant across processes), each entry in
//!    the order of its id gets the next sequence number and its HMAC over
//!    the previous hash under the audit key, moves into `audit_events`, and
//!    the head moves on, in one transaction per batch.
//!
//! Every server chains in the background (`AuditStore::chain_audit`, a few
//! times a second), and every read of the log chains its tenant first, so
//! a reader always sees every entry committed before it asked. An entry is
//! durable with its change either way; what waits is only its HMAC (so,
//! for that moment, someone with write access to the database could drop
//! the entry unnoticed, as they could the change itself; once chained,
//! neither goes unnoticed). The
//! key is required to append as well as to chain (no key, no audited
//! write), so a process that could not chain what it wrote never writes.

use async_trait::async_trait;
use vouchsafe_core::audit::{AuditEntry, AuditEvent, AuditKey, KEYED_PREFIX, chain_hash};
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::store::{AuditStore, StoreResult};

use crate::sqlite_reads::{read, row};
use crate::tx::{Tx, exec, fetch};
use crate::{SqlStore, map_err, on_pool};

/// Records `entry` for `tenant` inside the open transaction `tx`, to be
/// chained under `_key` (see the module's note on why it is required).
pub(crate) async fn append_audit(
    tx: &mut Tx<'_>,
    _key: &AuditKey,
    tenant: &str,
    entry: &AuditEntry,
) -> Result<(), sqlx::Error> {
    exec!(
        tx,
        "INSERT INTO audit_pending (tenant_id, at, actor, action, target, outcome) VALUES ($1, $2, $3, $4, $5, $6)",
        [tenant, to_unix_ms(entry.at), &entry.actor, &entry.action, &entry.target, &entry.outcome]
    )?;
    Ok(())
}

/// How many pending entries one chaining transaction takes.
const CHAIN_BATCH: i64 = 500;

row! {
    struct PendingRow {
        id: i64,
        at: i64,
        actor: String,
        action: String,
        target: String,
        outcome: String,
    }
}

/// Chains up to [`CHAIN_BATCH`] pending entries of `tenant` inside the open
/// transaction `tx`, in the order of their ids; how many it chained.
pub(crate) async fn chain_pending(tx: &mut Tx<'_>, key: &AuditKey, tenant: &str) -> Result<usize, sqlx::Error> {
    // The head row's lock is taken first: a second chainer of this tenant
    // waits here, then finds only the entries this one left.
    let (mut seq, mut hash) = fetch!(
        tx,
        one(i64, String),
        "UPDATE audit_heads SET seq = seq WHERE tenant_id = $1 RETURNING seq, hash",
        [tenant]
    )?;
    let pending = fetch!(
        tx,
        all PendingRow,
        "SELECT id, at, actor, action, target, outcome FROM audit_pending WHERE tenant_id = $1 ORDER BY id LIMIT $2",
        [tenant, CHAIN_BATCH]
    )?;
    let mut chained = Vec::with_capacity(pending.len());
    for row in pending {
        let entry = AuditEntry {
            actor: row.actor,
            action: row.action,
            target: row.target,
            outcome: row.outcome,
            at: from_unix_ms(row.at),
        };
        seq += 1;
        let prev_hash = std::mem::take(&mut hash);
        hash = chain_hash(key, &prev_hash, seq, &entry);
        chained.push(Chained { pending_id: row.id, seq, at: row.at, entry, prev_hash, hash: hash.clone() });
    }
    move_into_chain(tx, tenant, &chained).await?;
    if !chained.is_empty() {
        exec!(tx, "UPDATE audit_heads SET seq = $1, hash = $2 WHERE tenant_id = $3", [seq, &hash, tenant])?;
    }
    Ok(chained.len())
}

/// A pending entry with its place in the chain.
struct Chained {
    pending_id: i64,
    seq: i64,
    at: i64,
    entry: AuditEntry,
    prev_hash: String,
    hash: String,
}

/// The start of an insert of chained entries, shared by both engines'
/// statements (which differ only in where the rows come from).
macro_rules! insert_audit_events {
    () => {
        "INSERT INTO audit_events (tenant_id, seq, at, actor, action, target, outcome, prev_hash, hash) "
    };
}

/// Inserts `chained` into `audit_events` and deletes them from
/// `audit_pending`, inside the chaining transaction `tx`.
async fn move_into_chain(tx: &mut Tx<'_>, tenant: &str, chained: &[Chained]) -> Result<(), sqlx::Error> {
    match tx {
        // On PostgreSQL a statement is a round trip, and the head row stays
        // locked until the commit: the batch goes in one INSERT and one
        // DELETE, its columns bound as arrays. Row by row, a backlog of
        // 500 entries took 1,000 round trips and about a second, so
        // chaining fell behind audited writes (a right-code check writes
        // one entry) and went on taking PostgreSQL's CPU after them.
        Tx::Postgres(pg) => {
            let column = |f: fn(&Chained) -> &str| chained.iter().map(f).collect::<Vec<&str>>();
            sqlx::query(concat!(
                insert_audit_events!(),
                "SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
                 $7::TEXT[], $8::TEXT[], $9::TEXT[])"
            ))
            .bind(tenant)
            .bind(chained.iter().map(|c| c.seq).collect::<Vec<i64>>())
            .bind(chained.iter().map(|c| c.at).collect::<Vec<i64>>())
            .bind(column(|c| &c.entry.actor))
            .bind(column(|c| &c.entry.action))
            .bind(column(|c| &c.entry.target))
            .bind(column(|c| &c.entry.outcome))
            .bind(column(|c| &c.prev_hash))
            .bind(column(|c| &c.hash))
            .execute(pg.statement())
            .await?;
            // By id, never by range: an entry with a lower id can commit
            // after this batch was read, and it waits for the next one.
            sqlx::query("DELETE FROM audit_pending WHERE id = ANY($1)")
                .bind(chained.iter().map(|c| c.pending_id).collect::<Vec<i64>>())
                .execute(pg.statement())
                .await?;
        }
        // On the SQLite writer a statement is a call on its own thread.
        Tx::Writer(_) => {
            for c in chained {
                let e = &c.entry;
                exec!(
                    tx,
                    concat!(insert_audit_events!(), "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                    [tenant, c.seq, c.at, &e.actor, &e.action, &e.target, &e.outcome, &c.prev_hash, &c.hash]
                )?;
                exec!(tx, "DELETE FROM audit_pending WHERE id = $1", [c.pending_id])?;
            }
        }
    }
    Ok(())
}

impl SqlStore {
    /// Chains every pending entry of `tenant`, a batch per transaction;
    /// how many. A store without the audit key chains nothing (and cannot
    /// have written anything to chain). A tenant with nothing pending, as
    /// most reads of the log find, costs one read, not a write.
    pub(crate) async fn chain_tenant(&self, tenant: &str) -> StoreResult<u64> {
        let Ok(key) = self.audit_key() else {
            return Ok(0);
        };
        let any = read!(self, optional(i64,), "SELECT id FROM audit_pending WHERE tenant_id = $1 LIMIT 1", [tenant])?;
        if any.is_none() {
            return Ok(0);
        }
        let input = (key, tenant.to_owned());
        let mut chained = 0;
        loop {
            let n = self
                .write(input.clone(), |conn, (key, tenant)| Box::pin(chain_pending(conn, key, tenant)))
                .await
                .map_err(map_err)?;
            chained += n as u64;
            if (n as i64) < CHAIN_BATCH {
                return Ok(chained);
            }
        }
    }
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
        // Chained first, so the reader sees every entry committed before it asked.
        self.chain_tenant(tenant.as_str()).await?;
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
        self.chain_tenant(tenant.as_str()).await?;
        let (seq,): (i64,) = on_pool!(self.db(), pool =>
            sqlx::query_as("SELECT seq FROM audit_heads WHERE tenant_id = $1").bind(tenant.as_str()).fetch_one(pool).await
        )
        .map_err(map_err)?;
        Ok(seq)
    }

    async fn chain_audit(&self) -> StoreResult<u64> {
        let tenants = read!(self, all(String,), "SELECT DISTINCT tenant_id FROM audit_pending LIMIT 1000", [])?;
        let mut chained = 0;
        for (tenant,) in tenants {
            chained += self.chain_tenant(&tenant).await?;
        }
        Ok(chained)
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
                            // Chained at once (with whatever was pending
                            // before it): the keyed head is what tells a
                            // second process this chain is pinned.
                            append_audit(conn, key, tenant, entry).await?;
                            while chain_pending(conn, key, tenant).await? > 0 {}
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
