//! Verifications and the send counters of the fraud limits. Each state
//! change is one conditional statement whose `WHERE` carries the whole
//! rule (still pending, unexpired, under the limit, same code), so the
//! database, not a read in Rust, decides who wins a race.

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::event::Event;
use vouchsafe_core::fraud::SendCounter;
use vouchsafe_core::ids::{ServiceId, TenantId, VerificationId};
use vouchsafe_core::store::{ReadForCheck, Resend, SendRefusal, StoreError, StoreResult, VerificationStore};
use vouchsafe_core::verification::{Verification, VerificationStatus};

use crate::audit::append_audit;
use crate::sqlite_reads::{read, row};
use crate::tx::{Tx, exec, fetch, release_savepoint, rollback_savepoint, savepoint};
use crate::webhooks::{approval_effects, insert_event};
use crate::{SqlStore, map_err};

macro_rules! verification_columns {
    () => {
        "id, tenant_id, service_id, destination, channel, locale, country, status, code_hash, attempts, \
         max_attempts, send_count, window_started_at, window_sends, last_sent_at, expires_at, created_at, updated_at"
    };
}

macro_rules! select_verification {
    ($rest:literal) => {
        concat!("SELECT ", verification_columns!(), " FROM verifications ", $rest)
    };
}

row! {
    struct VerificationRow {
        id: String,
        tenant_id: String,
        service_id: String,
        destination: String,
        channel: String,
        locale: Option<String>,
        country: Option<String>,
        status: String,
        code_hash: String,
        attempts: i64,
        max_attempts: i64,
        send_count: i64,
        window_started_at: i64,
        window_sends: i64,
        last_sent_at: i64,
        expires_at: i64,
        created_at: i64,
        updated_at: i64,
    }
}

/// Counts a wrong code that leaves an attempt over, with no audit entry
/// (binds: `$1` now, `$2` tenant, `$3` id). Both ways of counting one
/// share it: `record_wrong_code` and, on PostgreSQL, the check's read.
macro_rules! count_wrong_code_not_last {
    () => {
        "UPDATE verifications SET attempts = attempts + 1, updated_at = $1 \
         WHERE tenant_id = $2 AND id = $3 AND status = 'pending' AND expires_at > $1 \
         AND attempts + 1 < max_attempts"
    };
}

/// A verification row and whether the statement that found it counted a
/// wrong code (its column after the verification's).
struct CheckedRow {
    verification: VerificationRow,
    counted: bool,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for CheckedRow {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok(CheckedRow { verification: VerificationRow::from_row(row)?, counted: row.try_get("counted")? })
    }
}

impl crate::sqlite_reads::FromSqliteRow for CheckedRow {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let verification = VerificationRow::from_sqlite(row)?;
        Ok(CheckedRow { verification, counted: crate::sqlite_reads::column(row, 18, "counted")? })
    }
}

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl TryFrom<VerificationRow> for Verification {
    type Error = StoreError;

    fn try_from(r: VerificationRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Damaged(format!("verification {} has an unreadable {what}", r.id));
        Ok(Verification {
            channel: Channel::parse(&r.channel).ok_or_else(|| bad("channel"))?,
            status: VerificationStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            tenant_id: TenantId::from_stored(r.tenant_id),
            service_id: ServiceId::from_stored(r.service_id),
            to: r.destination,
            locale: r.locale,
            country: r.country,
            code_hash: r.code_hash,
            attempts: count(r.attempts),
            max_attempts: count(r.max_attempts),
            send_count: count(r.send_count),
            window_started_at: from_unix_ms(r.window_started_at),
            window_sends: count(r.window_sends),
            last_sent_at: from_unix_ms(r.last_sent_at),
            expires_at: from_unix_ms(r.expires_at),
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
            id: VerificationId::from_stored(r.id),
        })
    }
}

/// Approves verification `$id` of tenant `$tenant` at `$at` if it is still
/// pending, unexpired, has attempts left and still has code hash `$hash`
/// (each argument the placeholder that binds it): written once for the
/// transaction (SQLite) and the one statement (PostgreSQL) that approve.
macro_rules! approve_if_pending {
    ($at:literal, $tenant:literal, $id:literal, $hash:literal) => {
        concat!(
            "UPDATE verifications SET status = 'approved', updated_at = ",
            $at,
            " WHERE tenant_id = ",
            $tenant,
            " AND id = ",
            $id,
            " AND status = 'pending' AND expires_at > ",
            $at,
            " AND attempts < max_attempts AND code_hash = ",
            $hash
        )
    };
}

/// Counting up to three counters in one statement: each row is inserted
/// at 1 or, when its counter exists, incremented only while under its own
/// limit (the `CASE` picks the row's limit by its scope and key). With
/// `returning`, the rows counted come back.
macro_rules! count_upsert {
    ($($values:literal),+; $cases:literal $(, $returning:literal)?) => {
        concat!(
            "INSERT INTO send_counters (tenant_id, scope, key, bucket, count) VALUES ",
            $($values,)+
            " ON CONFLICT (tenant_id, scope, key, bucket) DO UPDATE SET count = send_counters.count + 1 \
             WHERE send_counters.count < CASE ",
            $cases,
            " END"
            $(, $returning)?
        )
    };
}

/// One counter counted ([`count_upsert!`] of one row, nothing returned):
/// a row changed when it was counted, none when it was full.
const COUNT_ONE: &str = count_upsert!("($1, $2, $3, $4, 1)"; "WHEN TRUE THEN CAST($5 AS BIGINT)");

/// What counting one send's counters did: those counted, and the first
/// that was full (counting stops with that counter's statement).
struct Counting<'a> {
    counted: Vec<&'a SendCounter>,
    full: Option<&'a SendCounter>,
}

/// Increments every counter of one send on `tx`, each only while it is
/// under its limit: on PostgreSQL three to a statement (one round trip for
/// a send's counters, and the row locks they take held no longer than
/// that statement's transaction), on SQLite's writer one. Stops after the
/// statement that found a counter full: the caller then undoes what was
/// counted.
async fn count_sends_in<'a>(tx: &mut Tx<'_>, counters: &'a [SendCounter]) -> Result<Counting<'a>, sqlx::Error> {
    // Binds each counter's five values, in the order of its row.
    macro_rules! count {
        ([$($c:ident),+], $sql:expr) => {
            fetch!(
                tx,
                all(String, String),
                $sql,
                [$($c.tenant_id.as_str(), $c.scope, &$c.key, $c.bucket, i64::from($c.limit)),+]
            )?
        };
    }
    let mut counting = Counting { counted: Vec::new(), full: None };
    if matches!(tx, Tx::Writer(_)) {
        // SQLite's writer: a statement per counter, its count of changed
        // rows saying whether it counted. Nothing is gained by fewer
        // statements there (no round trips), and a `RETURNING` answers
        // through a temporary b-tree, opened and dropped at each run: about
        // half of a start's count (412,018 → 380,015 instructions a start).
        for c in counters {
            let counted = exec!(tx, COUNT_ONE, [c.tenant_id.as_str(), c.scope, &c.key, c.bucket, i64::from(c.limit)])?;
            if counted == 0 {
                counting.full = Some(c);
                break;
            }
            counting.counted.push(c);
        }
        return Ok(counting);
    }
    for chunk in counters.chunks(3) {
        let counted: Vec<(String, String)> = match chunk {
            [a] => count!(
                [a],
                count_upsert!("($1, $2, $3, $4, 1)"; "WHEN TRUE THEN CAST($5 AS BIGINT)", " RETURNING scope, key")
            ),
            [a, b] => count!(
                [a, b],
                count_upsert!("($1, $2, $3, $4, 1), ", "($6, $7, $8, $9, 1)";
                    "WHEN send_counters.scope = $2 AND send_counters.key = $3 THEN CAST($5 AS BIGINT) \
                     ELSE CAST($10 AS BIGINT)", " RETURNING scope, key")
            ),
            [a, b, c] => count!(
                [a, b, c],
                count_upsert!("($1, $2, $3, $4, 1), ", "($6, $7, $8, $9, 1), ", "($11, $12, $13, $14, 1)";
                    "WHEN send_counters.scope = $2 AND send_counters.key = $3 THEN CAST($5 AS BIGINT) \
                     WHEN send_counters.scope = $7 AND send_counters.key = $8 THEN CAST($10 AS BIGINT) \
                     ELSE CAST($15 AS BIGINT)", " RETURNING scope, key")
            ),
            _ => unreachable!("chunks of at most three"),
        };
        let was_counted = |c: &SendCounter| counted.iter().any(|(scope, key)| scope == c.scope && *key == c.key);
        let (this_counted, full): (Vec<&SendCounter>, Vec<&SendCounter>) = chunk.iter().partition(|c| was_counted(c));
        counting.counted.extend(this_counted);
        if let Some(first) = full.first() {
            counting.full = Some(first);
            break;
        }
    }
    Ok(counting)
}

/// Counts one send inside `tx`, all or nothing, under a savepoint of its
/// own: the refusal for the first counter that was full (every count of
/// this send undone), or `None` when all were counted. For a write whose
/// count stands alone or precedes what it counts (a test event's message).
pub(crate) async fn count_sends_or_refuse(
    tx: &mut Tx<'_>,
    counters: &[SendCounter],
    now: OffsetDateTime,
) -> Result<Option<SendRefusal>, sqlx::Error> {
    savepoint!(tx)?;
    if let Some(full) = count_sends_in(tx, counters).await?.full {
        rollback_savepoint!(tx)?;
        return Ok(Some(fraud_refusal(full, now)));
    }
    release_savepoint!(tx)?;
    Ok(None)
}

/// Marks the pending verification of a destination (service `$service`,
/// key `$key`) expired once its time is up (now `$at`), freeing its
/// one-pending slot for a new one (each argument the placeholder that
/// binds it): written once for the transaction (SQLite) and the one
/// statement (PostgreSQL) that store a new verification.
macro_rules! expire_pending {
    ($at:literal, $service:literal, $key:literal) => {
        concat!(
            "UPDATE verifications SET status = 'expired', updated_at = ",
            $at,
            " WHERE service_id = ",
            $service,
            " AND destination_key = ",
            $key,
            " AND status = 'pending' AND expires_at <= ",
            $at
        )
    };
}

/// A new verification's row: its columns bound as `$1`–`$19` by
/// [`insert_verification!`].
const INSERT_VERIFICATION: &str = concat!(
    "INSERT INTO verifications (",
    verification_columns!(),
    ", destination_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
);

/// PostgreSQL's [`expire_pending!`] and [`INSERT_VERIFICATION`] in one
/// statement (the insert's parameters; the expiry's are `$17`, `$3` and
/// `$19`).
/// The insert reads a count of the expired rows, so the expiry has run to
/// the end before the row is inserted; the one-pending index then finds
/// the row it expired deleted by this statement, and only a verification
/// still pending stops the insert (no row comes back).
const CREATE_VERIFICATION_POSTGRES: &str = concat!(
    "WITH expired AS (",
    expire_pending!("$17", "$3", "$19"),
    " RETURNING 1) INSERT INTO verifications (",
    verification_columns!(),
    ", destination_key) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 \
     FROM (SELECT COUNT(*) FROM expired) AS freed \
     ON CONFLICT (service_id, destination_key) WHERE status = 'pending' DO NOTHING RETURNING 1"
);

/// Runs `$sql` with `[$how]` (`[exec]`, or `[fetch row,]`) on `$conn`,
/// binding verification `$v`'s columns and its destination key `$key`.
macro_rules! insert_verification {
    ($conn:expr, [$how:ident $($row:tt)*], $sql:expr, $v:expr, $key:expr) => {
        $how!(
            $conn,
            $($row)*
            $sql,
            [
                $v.id.as_str(),
                $v.tenant_id.as_str(),
                $v.service_id.as_str(),
                &$v.to,
                $v.channel.as_str(),
                $v.locale.as_deref(),
                $v.country.as_deref(),
                $v.status.as_str(),
                &$v.code_hash,
                i64::from($v.attempts),
                i64::from($v.max_attempts),
                i64::from($v.send_count),
                to_unix_ms($v.window_started_at),
                i64::from($v.window_sends),
                to_unix_ms($v.last_sent_at),
                to_unix_ms($v.expires_at),
                to_unix_ms($v.created_at),
                to_unix_ms($v.updated_at),
                $key,
            ]
        )
    };
}

impl SqlStore {
    /// PostgreSQL's [`VerificationStore::create_verification`]: the send's
    /// counters first, in a statement that does not wait for its flush
    /// ([`SqlStore::count_sends_unflushed`]); then the verification in one
    /// statement ([`CREATE_VERIFICATION_POSTGRES`]), whose durable commit
    /// carries the counts to disk too. Inside one transaction the counters
    /// would stay locked through the verification's flush, and a tenant's
    /// starts would go one flush at a time.
    async fn create_verification_in_one_statement(
        &self,
        v: &Verification,
        counters: &[SendCounter],
    ) -> StoreResult<Result<(), SendRefusal>> {
        if let Some(refusal) = self.count_sends_unflushed(counters, v.created_at).await? {
            return Ok(Err(refusal));
        }
        let inserted = self
            .write_statement((v.clone(), v.match_key()), |conn, (v, key)| {
                Box::pin(async move {
                    insert_verification!(conn, [fetch optional(i32,),], CREATE_VERIFICATION_POSTGRES, v, key)
                })
            })
            .await
            .map_err(map_err)?;
        if inserted.is_none() {
            // This send was not made: its counts are given back.
            self.uncount_sends(counters).await;
            return Err(StoreError::Conflict("already exists"));
        }
        Ok(Ok(()))
    }

    /// Counts one send in a statement of its own that does not wait for
    /// its flush (see [`SqlStore::write_statement_unflushed`]), all or
    /// nothing: the refusal for the first counter that was full, or `None`
    /// when all were counted. Each counter's row is locked only while the
    /// statement runs: in a transaction it stayed locked through the round
    /// trips to its `COMMIT`, and a tenant's starts, which all count its
    /// one tenant-wide counter, waited on each other for them. With no
    /// transaction to roll back, a refused send gives back the counts it
    /// made; until it has, those counters are one over, which can only
    /// refuse another send sooner, never let one through.
    async fn count_sends_unflushed(
        &self,
        counters: &[SendCounter],
        now: OffsetDateTime,
    ) -> StoreResult<Option<SendRefusal>> {
        let (counted, full) = self
            .write_statement_unflushed(counters.to_vec(), |conn, counters| {
                Box::pin(async move {
                    let counting = count_sends_in(conn, counters).await?;
                    let counted: Vec<SendCounter> = counting.counted.into_iter().cloned().collect();
                    Ok((counted, counting.full.cloned()))
                })
            })
            .await
            .map_err(map_err)?;
        let Some(full) = full else {
            return Ok(None);
        };
        if !counted.is_empty() {
            self.uncount_sends(&counted).await;
        }
        Ok(Some(fraud_refusal(&full, now)))
    }

    /// Gives back the counts of a send counted by
    /// [`SqlStore::count_sends_unflushed`] that was then not made. Should
    /// this fail, the send stays counted: an over-count only refuses
    /// sooner.
    async fn uncount_sends(&self, counters: &[SendCounter]) {
        let given_back = self
            .write_unflushed(counters.to_vec(), |conn, counters| {
                Box::pin(async move {
                    for c in counters {
                        exec!(
                            conn,
                            "UPDATE send_counters SET count = count - 1 \
                             WHERE tenant_id = $1 AND scope = $2 AND key = $3 AND bucket = $4 AND count > 0",
                            [c.tenant_id.as_str(), c.scope, &c.key, c.bucket]
                        )?;
                    }
                    Ok(())
                })
            })
            .await;
        if let Err(e) = given_back {
            tracing::warn!(error = %e, "a send not made stays counted");
        }
    }
}

/// How a start or a resend ended inside its write. The group commit
/// answers an error by rolling back every write of its group, so refusals
/// and a lost race are outcomes, not errors: the send's own savepoint
/// undoes its writes.
enum SendWrite<T> {
    Written(T),
    Refused(SendRefusal),
    /// A pending verification for the destination already exists.
    AlreadyExists,
    /// The verification to resend is gone, or no longer pending.
    NotFound,
}

impl<T> SendWrite<T> {
    /// The store's answer: refusals are `Ok(Err(_))`, the rest errors.
    fn into_result(self) -> StoreResult<Result<T, SendRefusal>> {
        match self {
            SendWrite::Written(out) => Ok(Ok(out)),
            SendWrite::Refused(refusal) => Ok(Err(refusal)),
            SendWrite::AlreadyExists => Err(StoreError::Conflict("already exists")),
            SendWrite::NotFound => Err(StoreError::NotFound),
        }
    }
}

pub(crate) fn fraud_refusal(counter: &SendCounter, now: OffsetDateTime) -> SendRefusal {
    SendRefusal::Fraud { scope: counter.scope, retry_after_s: counter.retry_after_s(now) }
}

fn seconds_until(at_ms: i64, now_ms: i64) -> u64 {
    // Rounded up, at least 1: `Retry-After: 0` would invite a busy loop.
    u64::try_from((at_ms - now_ms + 999) / 1000).unwrap_or(0).max(1)
}

#[async_trait]
impl VerificationStore for SqlStore {
    async fn create_verification(
        &self,
        v: &Verification,
        counters: &[SendCounter],
    ) -> StoreResult<Result<(), SendRefusal>> {
        if self.is_postgres() {
            return self.create_verification_in_one_statement(v, counters).await;
        }
        let now = to_unix_ms(v.created_at);
        let outcome = self
            .write((v.clone(), counters.to_vec(), v.match_key()), move |conn, (v, counters, key)| {
                Box::pin(async move {
                    savepoint!(conn)?;
                    // Write first: frees the one-pending slot of an expired verification.
                    exec!(conn, expire_pending!("$1", "$2", "$3"), [now, v.service_id.as_str(), key])?;
                    let inserted = insert_verification!(conn, [exec], INSERT_VERIFICATION, v, key);
                    match inserted {
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                            rollback_savepoint!(conn)?;
                            return Ok(SendWrite::AlreadyExists);
                        }
                        other => other?,
                    };
                    if let Some(full) = count_sends_in(conn, counters).await?.full {
                        rollback_savepoint!(conn)?;
                        return Ok(SendWrite::Refused(fraud_refusal(full, v.created_at)));
                    }
                    release_savepoint!(conn)?;
                    Ok(SendWrite::Written(()))
                })
            })
            .await
            .map_err(map_err)?;
        outcome.into_result()
    }

    async fn resend_verification(
        &self,
        r: &Resend,
        counters: &[SendCounter],
    ) -> StoreResult<Result<Verification, SendRefusal>> {
        let now = to_unix_ms(r.now);
        // A send window that has run out starts afresh with this send.
        let update = concat!(
            "UPDATE verifications SET code_hash = $1, channel = $2, locale = $3, send_count = send_count + 1, \
             window_sends = CASE WHEN window_started_at <= $4 - $5 THEN 1 ELSE window_sends + 1 END, \
             window_started_at = CASE WHEN window_started_at <= $4 - $5 THEN $4 ELSE window_started_at END, \
             last_sent_at = $4, expires_at = $6, updated_at = $4 \
             WHERE tenant_id = $7 AND id = $8 AND status = 'pending' AND expires_at > $4 \
             AND last_sent_at <= $4 - $9 AND (window_started_at <= $4 - $5 OR window_sends < $10) RETURNING ",
            verification_columns!()
        );
        let select = select_verification!("WHERE tenant_id = $1 AND id = $2");
        // As in `create_verification`: refusals undo this resend's own
        // savepoint and are returned as outcomes.
        let outcome = self
            .write((r.clone(), counters.to_vec()), move |conn, (r, counters)| {
                Box::pin(async move {
                    savepoint!(conn)?;
                    let updated = fetch!(
                        conn,
                        optional VerificationRow,
                        update,
                        [
                            &r.code_hash,
                            r.channel.as_str(),
                            r.locale.as_deref(),
                            now,
                            r.send_window_ms,
                            to_unix_ms(r.expires_at),
                            r.tenant_id.as_str(),
                            r.id.as_str(),
                            r.cooldown_ms,
                            i64::from(r.max_sends),
                        ]
                    )?;
                    let Some(updated) = updated else {
                        // Refused: say which rule, from the row as it stands.
                        let row =
                            fetch!(conn, optional VerificationRow, select, [r.tenant_id.as_str(), r.id.as_str()])?;
                        rollback_savepoint!(conn)?;
                        return Ok(match row {
                            Some(row) if row.status == "pending" && row.expires_at > now => {
                                if row.last_sent_at > now - r.cooldown_ms {
                                    SendWrite::Refused(SendRefusal::Cooldown {
                                        retry_after_s: seconds_until(row.last_sent_at + r.cooldown_ms, now),
                                    })
                                } else {
                                    SendWrite::Refused(SendRefusal::MaxSends {
                                        retry_after_s: seconds_until(row.window_started_at + r.send_window_ms, now),
                                    })
                                }
                            }
                            _ => SendWrite::NotFound,
                        });
                    };
                    if let Some(full) = count_sends_in(conn, counters).await?.full {
                        rollback_savepoint!(conn)?;
                        return Ok(SendWrite::Refused(fraud_refusal(full, r.now)));
                    }
                    release_savepoint!(conn)?;
                    Ok(SendWrite::Written(updated))
                })
            })
            .await
            .map_err(map_err)?;
        match outcome.into_result()? {
            Ok(row) => Ok(Ok(row.try_into()?)),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    async fn verification(&self, tenant: &TenantId, id: &VerificationId) -> StoreResult<Verification> {
        let sql = select_verification!("WHERE tenant_id = $1 AND id = $2");
        read!(self, one VerificationRow, sql, [tenant.as_str(), id.as_str()])?.try_into()
    }

    async fn verification_for_check(
        &self,
        tenant: &TenantId,
        id: &VerificationId,
        candidate: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<ReadForCheck> {
        // On SQLite a read is a call on a reader thread, far cheaper than a
        // hand-off to the writer: the check reads, then counts if it must.
        if !self.is_postgres() {
            return self.verification(tenant, id).await.map(ReadForCheck::Read);
        }
        // On PostgreSQL every statement is a round trip. The UPDATE counts
        // the code when its hash is not the stored one; the SELECT after it
        // reads the row (as it stood before the statement) only when it
        // did not. SECURITY: the database's comparison may stop at the
        // first differing byte, but what it compares is two keyed hashes
        // (HMAC under the server's key): a caller chooses the code, never
        // the bytes compared, so how long it took says nothing about the
        // stored hash. It only ever decides to count; an approval is still
        // decided by the engine's constant-time comparison.
        let sql = concat!(
            "WITH counted AS (",
            count_wrong_code_not_last!(),
            " AND code_hash IS DISTINCT FROM $4 RETURNING ",
            verification_columns!(),
            ") SELECT ",
            verification_columns!(),
            ", TRUE AS counted FROM counted UNION ALL SELECT ",
            verification_columns!(),
            ", FALSE FROM verifications WHERE tenant_id = $2 AND id = $3 AND NOT EXISTS (SELECT 1 FROM counted)"
        );
        let input = (tenant.clone(), id.clone(), candidate.map(str::to_owned));
        let at = to_unix_ms(now);
        let found = self
            .write_statement(input, move |conn, (tenant, id, candidate)| {
                Box::pin(async move {
                    fetch!(conn, optional CheckedRow, sql, [at, tenant.as_str(), id.as_str(), candidate.as_deref()])
                })
            })
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let verification = found.verification.try_into()?;
        Ok(if found.counted { ReadForCheck::CountedWrong(verification) } else { ReadForCheck::Read(verification) })
    }

    async fn verification_by_to(
        &self,
        tenant: &TenantId,
        service: &ServiceId,
        key: &str,
    ) -> StoreResult<Option<Verification>> {
        let sql = select_verification!(
            "WHERE tenant_id = $1 AND service_id = $2 AND destination_key = $3 \
             ORDER BY CASE WHEN status = 'pending' THEN 0 ELSE 1 END, created_at DESC, id DESC LIMIT 1"
        );
        let row = read!(self, optional VerificationRow, sql, [tenant.as_str(), service.as_str(), key])?;
        row.map(TryInto::try_into).transpose()
    }

    async fn approve_verification(
        &self,
        v: &Verification,
        now: OffsetDateTime,
        event: &Event,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let at = to_unix_ms(now);
        let input = (self.audit_key().map_err(map_err)?, v.clone(), event.clone(), audit.clone());
        if self.is_postgres() {
            // One statement for the approval, its event with its messages,
            // and its audit entry: a transaction of five statements was six
            // round trips. Its approval is the transaction's below
            // (`approve_if_pending!`); its inserts select from it.
            let approve = concat!(
                "WITH approved AS (",
                approve_if_pending!("$14", "$3", "$6", "$7"),
                " RETURNING id), ",
                approval_effects!(),
                "SELECT COUNT(*) FROM approved"
            );
            return self
                .write_statement(input, move |conn, (_, v, event, audit)| {
                    Box::pin(async move {
                        let (approved,) = fetch!(
                            conn,
                            one(i64,),
                            approve,
                            [
                                event.id.as_str(),
                                to_unix_ms(event.created_at),
                                v.tenant_id.as_str(),
                                event.event_type.as_str(),
                                "", // $5, not read (see `approval_effects!`)
                                v.id.as_str(),
                                &v.code_hash,
                                event.body(),
                                to_unix_ms(audit.at),
                                &audit.actor,
                                &audit.action,
                                &audit.target,
                                &audit.outcome,
                                at,
                            ]
                        )?;
                        Ok(approved == 1)
                    })
                })
                .await
                .map_err(map_err);
        }
        self.write(input, move |conn, (key, v, event, audit)| {
            Box::pin(async move {
                let approved = exec!(
                    conn,
                    approve_if_pending!("$1", "$2", "$3", "$4"),
                    [at, v.tenant_id.as_str(), v.id.as_str(), &v.code_hash]
                )? == 1;
                if approved {
                    insert_event(conn, event, "").await?;
                    append_audit(conn, key, v.tenant_id.as_str(), audit).await?;
                }
                Ok(approved)
            })
        })
        .await
        .map_err(map_err)
    }

    async fn record_wrong_code(
        &self,
        tenant: &TenantId,
        id: &VerificationId,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Verification>> {
        let at = to_unix_ms(now);
        // A wrong code that leaves an attempt over writes no audit entry, so
        // it is one statement with no transaction around it (one round trip
        // on PostgreSQL). Only when that statement finds nothing to count —
        // the last attempt, or the verification ended — does the audited
        // transaction below run; its own `WHERE` decides that case.
        let not_last = concat!(count_wrong_code_not_last!(), " RETURNING ", verification_columns!());
        let reread =
            concat!("SELECT ", verification_columns!(), " FROM verifications WHERE tenant_id = $2 AND id = $3");
        let counted = self
            .write_statement((tenant.clone(), id.clone()), move |conn, (tenant, id)| {
                Box::pin(async move {
                    let (tenant, id) = (tenant.as_str(), id.as_str());
                    if matches!(conn, Tx::Writer(_)) {
                        // SQLite's writer: the update, then the row read back
                        // in the same transaction, where nothing else writes.
                        // A `RETURNING` there opens a temporary b-tree and
                        // zeroes its page (a twentieth of a wrong-code check's
                        // instructions).
                        if exec!(conn, count_wrong_code_not_last!(), [at, tenant, id])? == 0 {
                            return Ok(None);
                        }
                        return fetch!(conn, optional VerificationRow, reread, [at, tenant, id]);
                    }
                    fetch!(conn, optional VerificationRow, not_last, [at, tenant, id])
                })
            })
            .await
            .map_err(map_err)?;
        if let Some(row) = counted {
            return row.try_into().map(Some);
        }
        let sql = concat!(
            "UPDATE verifications SET attempts = attempts + 1, updated_at = $1, \
             status = CASE WHEN attempts + 1 >= max_attempts THEN 'max_attempts_reached' ELSE status END \
             WHERE tenant_id = $2 AND id = $3 AND status = 'pending' AND expires_at > $1 \
             AND attempts < max_attempts RETURNING ",
            verification_columns!()
        );
        let input = (self.audit_key().map_err(map_err)?, tenant.clone(), id.clone(), audit.clone());
        let row = self
            .write(input, move |conn, (key, tenant, id, audit)| {
                Box::pin(async move {
                    let row = fetch!(conn, optional VerificationRow, sql, [at, tenant.as_str(), id.as_str()])?;
                    if row.as_ref().is_some_and(|r| r.status == "max_attempts_reached") {
                        append_audit(conn, key, tenant.as_str(), audit).await?;
                    }
                    Ok(row)
                })
            })
            .await
            .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn end_verification(
        &self,
        tenant: &TenantId,
        id: &VerificationId,
        canceled: bool,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let at = to_unix_ms(now);
        // Cancel ends any pending verification; expire only one whose time is up.
        let (status, until) = if canceled { ("canceled", i64::MAX) } else { ("expired", at) };
        let changed = self
            .write_audited(tenant.as_str(), audit, (tenant.clone(), id.clone()), move |conn, (tenant, id)| {
                Box::pin(async move {
                    exec!(
                        conn,
                        "UPDATE verifications SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4 \
                         AND status = 'pending' AND expires_at <= $5",
                        [status, at, tenant.as_str(), id.as_str(), until]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn clear_cooldown(&self, tenant: &TenantId, id: &VerificationId, send_count: u32) -> StoreResult<()> {
        let input = (tenant.clone(), id.clone(), i64::from(send_count));
        self.write(input, |conn, (tenant, id, send_count)| {
            Box::pin(async move {
                exec!(
                    conn,
                    "UPDATE verifications SET last_sent_at = 0 WHERE tenant_id = $1 AND id = $2 AND send_count = $3 \
                     AND status = 'pending'",
                    [tenant.as_str(), id.as_str(), *send_count]
                )
            })
        })
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn count_sends(&self, counters: &[SendCounter], now: OffsetDateTime) -> StoreResult<Result<(), SendRefusal>> {
        let refused = self
            .write(counters.to_vec(), move |conn, counters| Box::pin(count_sends_or_refuse(conn, counters, now)))
            .await
            .map_err(map_err)?;
        Ok(refused.map_or(Ok(()), Err))
    }

    async fn prune_send_counters(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(before_ms, |conn, before_ms| {
            Box::pin(async move { exec!(conn, "DELETE FROM send_counters WHERE bucket < $1", [*before_ms]) })
        })
        .await
        .map_err(map_err)
    }
}
