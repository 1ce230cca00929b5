//! Caller verifications: each ending is a conditional `UPDATE … RETURNING`
//! on a pending row, with its event and audit entry in the same
//! transaction, so an expiry swept on one node and an approval on another
//! cannot both win.

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::caller::{CallerStatus, CallerVerification};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::event::Event;
use vouchsafe_core::ids::{CallerVerificationId, TenantId};
use vouchsafe_core::store::{CallerStore, StoreError, StoreResult};

use crate::audit::append_audit;
use crate::webhooks::insert_event;
use crate::{SqlStore, audited, map_err, on_pool};

macro_rules! columns {
    () => {
        "id, tenant_id, record_id, record_type, user_id, destination, channel, agent_id, status, link_hash, code_hash, \
         attempts, max_attempts, time_allowed_s, expires_at, completed_at, created_at, updated_at"
    };
}

#[derive(Clone, sqlx::FromRow)]
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

impl TryFrom<Row> for CallerVerification {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Backend(format!("caller verification {} has an unreadable {what}", r.id));
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

/// Inside the open transaction `$tx`, appends the event `$event` makes of
/// the ended caller verification in `$row`, and its audit entry (hashed
/// under `$key`).
macro_rules! append_ending {
    ($tx:ident, $key:expr, $row:expr, $event:expr, $tenant:expr, $audit:expr) => {{
        let ended: CallerVerification =
            $row.clone().try_into().map_err(|e: StoreError| sqlx::Error::Protocol(e.to_string()))?;
        insert_event!($tx, &$event(&ended), "");
        append_audit!($tx, $key, $tenant, $audit);
    }};
}

#[async_trait]
impl CallerStore for SqlStore {
    async fn create_caller_verification(&self, cv: &CallerVerification, audit: &AuditEntry) -> StoreResult<()> {
        let sql = concat!(
            "INSERT INTO caller_verifications (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        audited!(self, cv.tenant_id.as_str(), audit, pool =>
            sqlx::query(sql)
                .bind(cv.id.as_str())
                .bind(cv.tenant_id.as_str())
                .bind(&cv.record_id)
                .bind(&cv.record_type)
                .bind(cv.user_id.as_deref())
                .bind(&cv.destination)
                .bind(cv.channel.as_str())
                .bind(cv.agent_id.as_deref())
                .bind(cv.status.as_str())
                .bind(&cv.link_hash)
                .bind(&cv.code_hash)
                .bind(i64::from(cv.attempts))
                .bind(i64::from(cv.max_attempts))
                .bind(i64::from(cv.time_allowed_s))
                .bind(to_unix_ms(cv.expires_at))
                .bind(cv.completed_at.map(to_unix_ms))
                .bind(to_unix_ms(cv.created_at))
                .bind(to_unix_ms(cv.updated_at))
        )
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
        event: &(dyn for<'c> Fn(&'c CallerVerification) -> Event + Sync),
        audit: &AuditEntry,
    ) -> StoreResult<Option<CallerVerification>> {
        let at = to_unix_ms(now);
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
        let row: Option<Row> = on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            let row: Option<Row> = sqlx::query_as(sql)
                .bind(status.as_str())
                .bind(at)
                .bind(tenant.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = &row {
                append_ending!(tx, &key, row, event, tenant.as_str(), audit);
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(row)
        }
        .await)
        .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn caller_wrong_code(
        &self,
        tenant: &TenantId,
        id: &CallerVerificationId,
        now: OffsetDateTime,
        event: &(dyn for<'c> Fn(&'c CallerVerification) -> Event + Sync),
        audit: &AuditEntry,
    ) -> StoreResult<Option<CallerVerification>> {
        let at = to_unix_ms(now);
        let sql = concat!(
            "UPDATE caller_verifications SET attempts = attempts + 1, updated_at = $1, \
             status = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE status END, \
             completed_at = CASE WHEN attempts + 1 >= max_attempts THEN $1 ELSE completed_at END \
             WHERE tenant_id = $2 AND id = $3 AND status = 'pending' AND expires_at > $1 \
             AND attempts < max_attempts RETURNING ",
            columns!()
        );
        let row: Option<Row> = on_pool!(self.db(), pool => async {
            let key = self.audit_key()?;
            let mut tx = pool.begin().await?;
            let row: Option<Row> =
                sqlx::query_as(sql).bind(at).bind(tenant.as_str()).bind(id.as_str()).fetch_optional(&mut *tx).await?;
            if let Some(row) = &row
                && row.status == "failed"
            {
                append_ending!(tx, &key, row, event, tenant.as_str(), audit);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await)
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
