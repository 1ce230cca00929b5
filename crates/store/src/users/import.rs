//! Bringing tokens in from another system (`authenticators import`): a
//! batch of authenticators written in one transaction, and the check the
//! CLI makes before writing anything, which of a batch's users already
//! have an active token.
//!
//! An import is thousands of rows. On SQLite the writer runs in-process,
//! so one statement per row is cheap; on PostgreSQL every statement is a
//! round trip, and a batch of 2,000 tokens was 6,000 of them (a million
//! users took 13 minutes). There a batch whose tokens are one per user and
//! kind (what the CLI sends) is three statements over arrays, whatever its
//! size. The statements and their order are the same as row by row, so
//! what the rows see is too: users created, unconfirmed left-overs (or,
//! when replacing, every token of the kind) deleted, and the insert
//! refusing beside an active token, so a batch meeting one rolls back
//! whole and names the first item refused.

use std::collections::HashSet;

use vouchsafe_core::audit::{AuditEntry, AuditKey};
use vouchsafe_core::authenticator::{Authenticator, AuthenticatorKind};
use vouchsafe_core::clock::to_unix_ms;
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::store::{ImportMode, ImportOutcome, StoreError, StoreResult};

use super::{Insert, insert_authenticator};
use crate::audit::append_audit;
use crate::sqlite_reads::read;
use crate::tx::{Tx, exec, release_savepoint, rollback_savepoint, savepoint};
use crate::{SqlStore, map_err};

/// [`UserStore::import_authenticators`]: `items` in one transaction with
/// one audit entry.
///
/// [`UserStore::import_authenticators`]: vouchsafe_core::store::UserStore::import_authenticators
pub(super) async fn import(
    store: &SqlStore,
    tenant: &TenantId,
    items: &[Authenticator],
    mode: ImportMode,
    now: time::OffsetDateTime,
    audit: &AuditEntry,
) -> StoreResult<ImportOutcome> {
    let at = to_unix_ms(now);
    let input = (store.audit_key().map_err(map_err)?, tenant.clone(), items.to_vec(), audit.clone());
    store
        .write(input, move |conn, (key, tenant, items, audit)| {
            Box::pin(async move { import_in(conn, key, tenant.as_str(), items, mode, at, audit).await })
        })
        .await
        .map_err(map_err)
}

async fn import_in(
    conn: &mut Tx<'_>,
    key: &AuditKey,
    tenant: &str,
    items: &[Authenticator],
    mode: ImportMode,
    at: i64,
    audit: &AuditEntry,
) -> Result<ImportOutcome, sqlx::Error> {
    // Its own savepoint: an import refused part-way must undo the items
    // it already inserted, and still answer, not fail.
    savepoint!(conn)?;
    let refused = match conn {
        Tx::Postgres(pg) if items.len() > 1 && one_per_user_and_kind(items) => {
            import_batch_postgres(pg.statement(), tenant, items, mode, at).await?
        }
        _ => import_one_by_one(conn, tenant, items, mode, at).await?,
    };
    if let Some(index) = refused {
        rollback_savepoint!(conn)?;
        return Ok(ImportOutcome::WouldReplace { index });
    }
    append_audit(conn, key, tenant, audit).await?;
    release_savepoint!(conn)?;
    Ok(ImportOutcome::Imported(items.len() as u64))
}

/// Whether no two items are the same user's token of the same kind. Two
/// such would meet each other row by row (the second deleting or refused
/// by the first), which statements over the whole batch at once cannot
/// reproduce; such a batch goes row by row.
fn one_per_user_and_kind(items: &[Authenticator]) -> bool {
    let mut seen = HashSet::with_capacity(items.len());
    items.iter().all(|a| seen.insert((a.user_id.as_str(), a.kind)))
}

/// Writes the items one at a time: the index of the first one the insert
/// refused, if any (the caller rolls back).
async fn import_one_by_one(
    conn: &mut Tx<'_>,
    tenant: &str,
    items: &[Authenticator],
    mode: ImportMode,
    at: i64,
) -> Result<Option<usize>, sqlx::Error> {
    for (index, a) in items.iter().enumerate() {
        exec!(
            conn,
            "INSERT INTO users (tenant_id, id, phone, email, display_name, privileged, \
             locked_until, created_at, updated_at) VALUES ($1, $2, NULL, NULL, NULL, FALSE, 0, $3, $3) \
             ON CONFLICT (tenant_id, id) DO NOTHING",
            [tenant, &a.user_id, at]
        )?;
        // Unconfirmed left-overs always go; an active authenticator only
        // when replacing.
        let only_unconfirmed = mode == ImportMode::KeepActive;
        exec!(
            conn,
            "DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND type = $3 \
             AND ($4 = FALSE OR status <> 'active')",
            [tenant, &a.user_id, a.kind.as_str(), only_unconfirmed]
        )?;
        // The insert itself refuses while an active one is there, so an
        // enrollment confirmed meanwhile is never overwritten.
        if insert_authenticator(conn, a, Insert::UnlessActive).await? == 0 {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// [`import_one_by_one`]'s three statements, each over the whole batch:
/// the users, the deletions, and the insert that refuses beside an active
/// token. Items are one per user and kind, so no row of the batch meets
/// another. The index of the first item refused, if any.
async fn import_batch_postgres(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    items: &[Authenticator],
    mode: ImportMode,
    at: i64,
) -> Result<Option<usize>, sqlx::Error> {
    let text = |field: fn(&Authenticator) -> &str| items.iter().map(|a| field(a).to_owned()).collect::<Vec<String>>();
    let users = text(|a| &a.user_id);
    let kinds = text(|a| a.kind.as_str());
    sqlx::query(
        "INSERT INTO users (tenant_id, id, phone, email, display_name, privileged, locked_until, \
         created_at, updated_at) SELECT $1, u, NULL, NULL, NULL, FALSE, 0, $3, $3 FROM UNNEST($2::text[]) AS u \
         ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(tenant)
    .bind(&users)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM authenticators a USING UNNEST($2::text[], $3::text[]) AS i (user_id, type) \
         WHERE a.tenant_id = $1 AND a.user_id = i.user_id AND a.type = i.type \
         AND ($4 = FALSE OR a.status <> 'active')",
    )
    .bind(tenant)
    .bind(&users)
    .bind(&kinds)
    .bind(mode == ImportMode::KeepActive)
    .execute(&mut *conn)
    .await?;
    let inserted: Vec<(String,)> = sqlx::query_as(concat!(
        "INSERT INTO authenticators (",
        authenticator_columns!(),
        ") SELECT i.id, $1, i.user_id, i.type, i.status, i.label, i.params, i.sealed, i.counter, i.created_at, \
         i.updated_at, i.last_used_at \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], \
         $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[]) \
         AS i (id, user_id, type, status, label, params, sealed, counter, created_at, updated_at, last_used_at) \
         WHERE NOT EXISTS (SELECT 1 FROM authenticators x WHERE x.tenant_id = $1 AND x.user_id = i.user_id \
         AND x.type = i.type AND x.status = 'active') \
         RETURNING id"
    ))
    .bind(tenant)
    .bind(text(|a| a.id.as_str()))
    .bind(&users)
    .bind(&kinds)
    .bind(text(|a| a.status.as_str()))
    .bind(items.iter().map(|a| a.label.clone()).collect::<Vec<Option<String>>>())
    .bind(items.iter().map(|a| a.params.to_stored()).collect::<Vec<String>>())
    .bind(items.iter().map(|a| a.sealed.clone()).collect::<Vec<Vec<u8>>>())
    .bind(items.iter().map(|a| a.counter).collect::<Vec<i64>>())
    .bind(items.iter().map(|a| to_unix_ms(a.created_at)).collect::<Vec<i64>>())
    .bind(items.iter().map(|a| to_unix_ms(a.updated_at)).collect::<Vec<i64>>())
    .bind(items.iter().map(|a| a.last_used_at.map(to_unix_ms)).collect::<Vec<Option<i64>>>())
    .fetch_all(&mut *conn)
    .await?;
    if inserted.len() == items.len() {
        return Ok(None);
    }
    let inserted: HashSet<String> = inserted.into_iter().map(|(id,)| id).collect();
    Ok(items.iter().position(|a| !inserted.contains(a.id.as_str())))
}

/// [`UserStore::active_authenticators_among`]: one read for the whole
/// list, the names passed as one JSON array so both engines take them as
/// a single parameter.
///
/// [`UserStore::active_authenticators_among`]: vouchsafe_core::store::UserStore::active_authenticators_among
pub(super) async fn active_among(
    store: &SqlStore,
    tenant: &TenantId,
    users: &[String],
) -> StoreResult<Vec<(String, AuthenticatorKind)>> {
    let names = serde_json::to_string(users).map_err(|e| StoreError::Damaged(e.to_string()))?;
    let sql = if store.is_postgres() {
        "SELECT user_id, type FROM authenticators WHERE tenant_id = $1 AND status = 'active' \
         AND user_id IN (SELECT json_array_elements_text($2::json))"
    } else {
        "SELECT user_id, type FROM authenticators WHERE tenant_id = $1 AND status = 'active' \
         AND user_id IN (SELECT value FROM json_each($2))"
    };
    let rows: Vec<(String, String)> = read!(store, all(String, String), sql, [tenant.as_str(), names.as_str()])?;
    rows.into_iter()
        .map(|(user, kind)| match AuthenticatorKind::parse(&kind) {
            Some(kind) => Ok((user, kind)),
            None => Err(StoreError::Damaged(format!("user {user:?} has an authenticator of unknown type {kind}"))),
        })
        .collect()
}
