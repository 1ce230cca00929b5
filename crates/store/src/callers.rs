//! Caller verifications: each ending is a conditional `UPDATE … RETURNING`
//! on a pending row, with its event and audit entry in the same
//! transaction, so an expiry swept on one node and an approval on another
//! cannot both win.

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::audit::{AuditEntry, AuditKey};
use vouchsafe_core::caller::{CallerMethod, CallerStatus, CallerVerification};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::ids::{CallerVerificationId, TenantId};
use vouchsafe_core::store::{CallerStore, StoreError, StoreResult};

use crate::audit::append_audit;
use crate::sqlite_reads::row;
use crate::tx::{Tx, exec, fetch};
use crate::webhooks::insert_event;
use crate::{SqlStore, map_err, on_pool};

macro_rules! columns {
    () => {
        "id, tenant_id, record_id, record_type, user_id, destination, channel, agent_id, status, link_hash, code_hash, \
         attempts, max_attempts, time_allowed_s, expires_at, completed_at, created_at, updated_at"
    };
}

row! {
#[derive(Clone)]
struct Row {
    id: String,
    tenant_id: String,
    record_id: String,
    record_type: String,
    user_id: Option<String>,
    destination: String,
    channel: String,
    agent_id: Option<String>,
    status: String,
    link_hash: String,
    code_hash: String,
    attempts: i64,
    max_attempts: i64,
    time_allowed_s: i64,
    expires_at: i64,
    completed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}
}

impl TryFrom<Row> for CallerVerification {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Damaged(format!("caller verification {} has an unreadable {what}", r.id));
        Ok(CallerVerification {
            channel: Channel::parse(&r.channel).ok_or_else(|| bad("channel"))?,
            status: CallerStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            id: CallerVerificationId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            record_id: r.record_id,
            record_type: r.record_type,
            user_id: r.user_id,
            destination: r.destination,
            agent_id: r.agent_id,
            link_hash: r.link_hash,
            code_hash: r.code_hash,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(0),
            time_allowed_s: u32::try_from(r.time_allowed_s).unwrap_or(0),
            expires_at: from_unix_ms(r.expires_at),
            completed_at: r.completed_at.map(from_unix_ms),
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        })
    }
}

/// Inside the open transaction `tx`, appends the `completed` event of the
/// caller verification `row` has just ended, and its audit entry.
async fn append_ending(tx: &mut Tx<'_>, key: &AuditKey, row: &Row, ending: &Ending) -> Result<(), sqlx::Error> {
    let ended: CallerVerification =
        row.clone().try_into().map_err(|e: StoreError| sqlx::Error::Protocol(e.to_string()))?;
    insert_event(tx, &ended.completed_event(ending.now, ending.method), "").await?;
    append_audit(tx, key, ending.tenant.as_str(), &ending.audit).await
}

/// What ending a caller verification writes beside its row.
struct Ending {
    key: AuditKey,
    tenant: TenantId,
    id: CallerVerificationId,
    now: OffsetDateTime,
    method: Option<CallerMethod>,
    audit: AuditEntry,
}

#[async_trait]
impl CallerStore for SqlStore {
    async fn create_caller_verification(&self, cv: &CallerVerification, audit: &AuditEntry) -> StoreResult<()> {
        let sql = concat!(
            "INSERT INTO caller_verifications (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        self.write_audited(cv.tenant_id.as_str(), audit, cv.clone(), move |conn, cv| {
            Box::pin(async move {
                exec!(
                    conn,
                    sql,
                    [
                        cv.id.as_str(),
                        cv.tenant_id.as_str(),
                        &cv.record_id,
                        &cv.record_type,
                        cv.user_id.as_deref(),
                        &cv.destination,
                        cv.channel.as_str(),
                        cv.agent_id.as_deref(),
                        cv.status.as_str(),
                        &cv.link_hash,
                        &cv.code_hash,
                        i64::from(cv.attempts),
                        i64::from(cv.max_attempts),
                        i64::from(cv.time_allowed_s),
                        to_unix_ms(cv.expires_at),
                        cv.completed_at.map(to_unix_ms),
                        to_unix_ms(cv.created_at),
                        to_unix_ms(cv.updated_at),
                    ]
                )
            })
        })
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn caller_verification(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
    ) -> StoreResult<CallerVerification> {
        let sql = concat!("SELECT ", columns!(), " FROM caller_verifications WHERE tenant_id = $1 AND id = $2");
        let row: Row =
            on_pool!(self.db(), pool => sqlx::query_as(sql).bind(tenant.as_str()).bind(id.as_str()).fetch_one(pool).await)
                .map_err(map_err)?;
        row.try_into()
    }

    async fn caller_verification_by_link(&self, link_hash: &str) -> StoreResult<CallerVerification> {
        let sql = concat!("SELECT ", columns!(), " FROM caller_verifications WHERE link_hash = $1");
        let row: Row =
            on_pool!(self.db(), pool => sqlx::query_as(sql).bind(link_hash).fetch_one(pool).await).map_err(map_err)?;
        row.try_into()
    }

    async fn end_caller_verification(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
        status: CallerStatus,
        now: OffsetDateTime,
        method: Option<CallerMethod>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<CallerVerification>> {
        // Expiry needs the time to be up; every other ending needs it not to be.
        let sql = if status == CallerStatus::Expired {
            concat!(
                "UPDATE caller_verifications SET status = $1, completed_at = $2, updated_at = $2 \
                 WHERE tenant_id = $3 AND id = $4 AND status = 'pending' AND expires_at <= $2 RETURNING ",
                columns!()
            )
        } else {
            concat!(
                "UPDATE caller_verifications SET status = $1, completed_at = $2, updated_at = $2 \
                 WHERE tenant_id = $3 AND id = $4 AND status = 'pending' AND expires_at > $2 RETURNING ",
                columns!()
            )
        };
        let ending = self.ending(tenant, id, now, method, audit).map_err(map_err)?;
        let row = self
            .write(ending, move |conn, ending| {
                Box::pin(async move {
                    let at = to_unix_ms(ending.now);
                    let row =
                        fetch!(conn, optional Row, sql, [status.as_str(), at, ending.tenant.as_str(), ending.id.as_str()])?;
                    if let Some(row) = &row {
                        append_ending(conn, &ending.key, row, ending).await?;
                    }
                    Ok(row)
                })
            })
            .await
            .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn caller_wrong_code(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
        now: OffsetDateTime,
        method: Option<CallerMethod>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<CallerVerification>> {
        let sql = concat!(
            "UPDATE caller_verifications SET attempts = attempts + 1, updated_at = $1, \
             status = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE status END, \
             completed_at = CASE WHEN attempts + 1 >= max_attempts THEN $1 ELSE completed_at END \
             WHERE tenant_id = $2 AND id = $3 AND status = 'pending' AND expires_at > $1 \
             AND attempts < max_attempts RETURNING ",
            columns!()
        );
        let ending = self.ending(tenant, id, now, method, audit).map_err(map_err)?;
        let row = self
            .write(ending, move |conn, ending| {
                Box::pin(async move {
                    let at = to_unix_ms(ending.now);
                    let row = fetch!(conn, optional Row, sql, [at, ending.tenant.as_str(), ending.id.as_str()])?;
                    if let Some(row) = &row
                        && row.status == "failed"
                    {
                        append_ending(conn, &ending.key, row, ending).await?;
                    }
                    Ok(row)
                })
            })
            .await
            .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn due_caller_verifications(&self, now: OffsetDateTime, limit: i64) -> StoreResult<Vec<CallerVerification>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM caller_verifications WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
        );
        let rows: Vec<Row> =
            on_pool!(self.db(), pool => sqlx::query_as(sql).bind(to_unix_ms(now)).bind(limit).fetch_all(pool).await)
                .map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn record_transactions(
        &self,
        tenant: &TenantId,
        record_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<CallerVerification>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM caller_verifications WHERE tenant_id = $1 AND record_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<Row> = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).bind(record_id).bind(limit).fetch_all(pool).await
        )
        .map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

impl SqlStore {
    /// The owned values ending caller verification `id` writes.
    fn ending(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
        now: OffsetDateTime,
        method: Option<CallerMethod>,
        audit: &AuditEntry,
    ) -> Result<Ending, sqlx::Error> {
        Ok(Ending { key: self.audit_key()?, tenant: tenant.clone(), id: id.clone(), now, method, audit: audit.clone() })
    }
}
