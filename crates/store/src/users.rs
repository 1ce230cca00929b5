//! Users, authenticators, recovery codes and challenges. An answer's
//! effects — the authenticator's counter moving forward (or a recovery
//! code spent), the challenge's state, the user's lockout counters, the
//! events and audit entries — are written in one transaction, each step a
//! conditional statement, so a code is accepted once and a crash loses
//! no attempt count.
//!
//! A user's consecutive failures are counted in `user_failures`, a row
//! only while there are some (migration 0021): a wrong answer writes that
//! small table, not the user's row in `users`, which with a million users
//! was a page of its own each time. The lock they cause stays in `users`,
//! on the row every write for the user locks first, so a check of it made
//! after that lock reads the latest lock.
//!
//! On PostgreSQL, where writers run side by side, every write that locks
//! more than one of a user's rows takes them in one order — the user's
//! row first, then an authenticator or recovery code, then the challenge —
//! so two writes for one user wait on each other in turn and never
//! deadlock (a counted answer and an approval racing did: each held the
//! row the other wanted next).

use std::sync::LazyLock;

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::recovery::StoredCode;
use vouchsafe_core::authenticator::{
    AUTHENTICATORS_PER_USER, Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorStatus,
    AuthenticatorUse,
};
use vouchsafe_core::challenge::{Challenge, ChallengeStatus, Factor};
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::event::Event;
use vouchsafe_core::ids::{AuthenticatorId, ChallengeId, TenantId, VerificationId};
use vouchsafe_core::store::{
    AnswerGate, ApprovalOutcome, ChallengeToAnswer, FailureEffects, FailureOutcome, ImportMode, ImportOutcome, Lockout,
    StoreError, StoreResult, UserStore,
};
use vouchsafe_core::user::{Contacts, User};

use crate::audit::append_audit;
use crate::sqlite_reads::{read, row};
use crate::tenants::{Counted, before_counting};
use crate::tx::{Tx, exec, fetch};
use crate::webhooks::{approval_effects, insert_event};
use crate::{SqlStore, map_err, on_pool, one_row};

macro_rules! authenticator_columns {
    () => {
        "id, tenant_id, user_id, type, status, label, params, sealed, counter, created_at, updated_at, last_used_at"
    };
}

/// A user's columns as [`UserRow`] reads them, from `users` with the
/// failure count beside it ([`failures_of_user!`]).
macro_rules! user_columns {
    () => {
        concat!(
            "tenant_id, id, phone, email, display_name, privileged, ",
            failures_of_user!(),
            " AS failures, locked_until, created_at, updated_at"
        )
    };
}

/// The failures counted for the user of the `users` row in scope: their
/// row in `user_failures`, or 0 without one.
macro_rules! failures_of_user {
    () => {
        "COALESCE((SELECT f.failures FROM user_failures f \
         WHERE f.tenant_id = users.tenant_id AND f.user_id = users.id), 0)"
    };
}

/// Inserts authenticator `a` inside `tx`; answers the rows inserted. With
/// [`Insert::UnlessActive`], only while its user has no active
/// authenticator of its kind (the statement itself decides).
async fn insert_authenticator(tx: &mut Tx<'_>, a: &Authenticator, how: Insert) -> Result<u64, sqlx::Error> {
    // The limit is written into the text, as the statements share their parameters.
    static UNDER_LIMIT: LazyLock<String> = LazyLock::new(|| {
        format!(
            concat!(
                "INSERT INTO authenticators (",
                authenticator_columns!(),
                ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 WHERE (\
                 SELECT COUNT(*) FROM authenticators WHERE tenant_id = $2 AND user_id = $3) < {}"
            ),
            AUTHENTICATORS_PER_USER
        )
    });
    let sql = match how {
        Insert::UnderLimit => UNDER_LIMIT.as_str(),
        Insert::UnlessActive => concat!(
            "INSERT INTO authenticators (",
            authenticator_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 WHERE NOT EXISTS (\
             SELECT 1 FROM authenticators WHERE tenant_id = $2 AND user_id = $3 AND type = $4 \
             AND status = 'active')"
        ),
    };
    exec!(
        tx,
        sql,
        [
            a.id.as_str(),
            a.tenant_id.as_str(),
            &a.user_id,
            a.kind.as_str(),
            a.status.as_str(),
            a.label.as_deref(),
            a.params.to_stored(),
            &a.sealed,
            a.counter,
            to_unix_ms(a.created_at),
            to_unix_ms(a.updated_at),
            a.last_used_at.map(to_unix_ms),
        ]
    )
}

/// When [`insert_authenticator`] adds one.
#[derive(Clone, Copy)]
enum Insert {
    /// While its user has fewer than [`AUTHENTICATORS_PER_USER`] (an
    /// enrollment; the caller locks the user first, with
    /// `tenants::before_counting`).
    UnderLimit,
    /// While its user has no active one of its kind (an import, which
    /// first drops the user's unconfirmed ones of that kind, so it
    /// replaces rather than adds).
    UnlessActive,
}

row! {
    struct UserRow {
        tenant_id: String,
        id: String,
        phone: Option<String>,
        email: Option<String>,
        display_name: Option<String>,
        privileged: bool,
        failures: i64,
        locked_until: i64,
        created_at: i64,
        updated_at: i64,
    }
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            tenant_id: TenantId::from_stored(r.tenant_id),
            id: r.id,
            phone: r.phone,
            email: r.email,
            display_name: r.display_name,
            privileged: r.privileged,
            failures: u32::try_from(r.failures).unwrap_or(u32::MAX),
            locked_until: (r.locked_until > 0).then(|| from_unix_ms(r.locked_until)),
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        }
    }
}

row! {
    struct AuthenticatorRow {
        id: String,
        tenant_id: String,
        user_id: String,
        kind as "type": String,
        status: String,
        label: Option<String>,
        params: String,
        sealed: Vec<u8>,
        counter: i64,
        created_at: i64,
        updated_at: i64,
        last_used_at: Option<i64>,
    }
}

impl TryFrom<AuthenticatorRow> for Authenticator {
    type Error = StoreError;

    fn try_from(r: AuthenticatorRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Damaged(format!("authenticator {} has an unreadable {what}", r.id));
        let kind = AuthenticatorKind::parse(&r.kind).ok_or_else(|| bad("type"))?;
        Ok(Authenticator {
            kind,
            status: AuthenticatorStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            params: AuthenticatorParams::from_stored(kind, &r.params).map_err(|e| bad(&e))?,
            id: AuthenticatorId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            user_id: r.user_id,
            label: r.label,
            sealed: r.sealed,
            counter: r.counter,
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
            last_used_at: r.last_used_at.map(from_unix_ms),
        })
    }
}

macro_rules! challenge_columns {
    () => {
        "id, tenant_id, user_id, factor, action, redirect_url, status, attempts, max_attempts, verification_id, \
         expires_at, verified_at, created_at, updated_at, passkey_options, passkey_state"
    };
}

/// Whether challenge `$id` of tenant `$tenant` may be approved at `$at`:
/// pending, unexpired, within its attempts, its user not locked (each
/// argument the placeholder that binds it). Written once for the
/// approval's `UPDATE` and, on PostgreSQL, the guard of the counter it
/// moves in the same statement. `$unlocked`, when given, says how the
/// user is read: by default from `users`; PostgreSQL's one-statement
/// approval reads the row its `held` CTE has locked (see the module).
macro_rules! challenge_approvable {
    ($at:literal, $tenant:literal, $id:literal) => {
        challenge_approvable!(
            $at,
            $tenant,
            $id,
            concat!(
                "NOT EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = challenges.tenant_id \
                 AND u.id = challenges.user_id AND u.locked_until > ",
                $at,
                ")"
            )
        )
    };
    ($at:literal, $tenant:literal, $id:literal, $unlocked:expr) => {
        concat!(
            "tenant_id = ",
            $tenant,
            " AND id = ",
            $id,
            " AND status = 'pending' AND expires_at > ",
            $at,
            " AND attempts <= max_attempts AND ",
            $unlocked
        )
    };
}

/// PostgreSQL's one-statement writes take the user's row first (see the
/// module on lock order) in a `held` CTE: user `$user` of tenant
/// `$tenant`, with their lock as of taking the row.
macro_rules! held_user {
    ($tenant:literal, $user:literal) => {
        concat!(
            "held AS (SELECT locked_until FROM users WHERE tenant_id = ",
            $tenant,
            " AND id = ",
            $user,
            " FOR NO KEY UPDATE)"
        )
    };
}

/// [`challenge_approvable!`]'s user condition in PostgreSQL's
/// one-statement approval: the user's row as its `held` CTE locked it,
/// at `$14`.
macro_rules! held_user_unlocked {
    () => {
        "NOT EXISTS (SELECT 1 FROM held WHERE locked_until > $14)"
    };
}

/// Approves the challenge [`challenge_approvable!`] names, at `$at`.
macro_rules! approve_challenge_if_approvable {
    ($at:literal, $tenant:literal, $id:literal $(, $unlocked:expr)?) => {
        concat!(
            "UPDATE challenges SET status = 'approved', verified_at = ",
            $at,
            ", updated_at = ",
            $at,
            " WHERE ",
            challenge_approvable!($at, $tenant, $id $(, $unlocked)?)
        )
    };
}

row! {
    struct ChallengeRow {
        id: String,
        tenant_id: String,
        user_id: String,
        factor: String,
        action: String,
        redirect_url: Option<String>,
        status: String,
        attempts: i64,
        max_attempts: i64,
        verification_id: Option<String>,
        expires_at: i64,
        verified_at: Option<i64>,
        created_at: i64,
        updated_at: i64,
        passkey_options: Option<String>,
        passkey_state: Option<String>,
    }
}

impl TryFrom<ChallengeRow> for Challenge {
    type Error = StoreError;

    fn try_from(r: ChallengeRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Damaged(format!("challenge {} has an unreadable {what}", r.id));
        Ok(Challenge {
            factor: Factor::parse(&r.factor).ok_or_else(|| bad("factor"))?,
            status: ChallengeStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            id: ChallengeId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            user_id: r.user_id,
            action: r.action,
            redirect_url: r.redirect_url,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(0),
            verification_id: r.verification_id.map(VerificationId::from_stored),
            passkey_options: r.passkey_options,
            passkey_state: r.passkey_state,
            expires_at: from_unix_ms(r.expires_at),
            verified_at: r.verified_at.map(from_unix_ms),
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        })
    }
}

/// What PostgreSQL's one-statement approval found: the counter moved (0
/// or 1), the challenge approvable in its snapshot (0 or 1), and the
/// approved challenge as the statement wrote it, if it did.
struct ApprovalRow {
    moved: i64,
    approvable: i64,
    approved: Option<ChallengeRow>,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for ApprovalRow {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let approved = row.try_get::<Option<String>, _>("id")?.map(|_| ChallengeRow::from_row(row)).transpose()?;
        Ok(ApprovalRow { moved: row.try_get("moved")?, approvable: row.try_get("approvable")?, approved })
    }
}

/// The same columns in place (`fetch!` reads either engine; the statement
/// itself runs only on PostgreSQL).
impl crate::sqlite_reads::FromSqliteRow for ApprovalRow {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        use crate::sqlite_reads::column;
        let approved =
            column::<Option<String>>(row, 2, "id")?.map(|_| ChallengeRow::from_sqlite_at(row, 2)).transpose()?;
        Ok(ApprovalRow { moved: column(row, 0, "moved")?, approvable: column(row, 1, "approvable")?, approved })
    }
}

/// Whether an approval went through (the approved row), or why it
/// stopped (then rolled back).
enum Step {
    Done(Box<ChallengeRow>),
    Stop(ApprovalOutcome),
}

impl Step {
    fn into_outcome(self) -> StoreResult<ApprovalOutcome> {
        Ok(match self {
            Step::Done(approved) => ApprovalOutcome::Approved(Box::new((*approved).try_into()?)),
            Step::Stop(outcome) => outcome,
        })
    }
}

/// SECURITY: locks a user whose counted failures reached the threshold and
/// who is not locked yet, writing `user.locked` (event and audit entry)
/// only when this statement set the lock: one lock, one event, however
/// many answers race. Whether it did.
async fn lock_at_threshold(
    conn: &mut Tx<'_>,
    key: &vouchsafe_core::audit::AuditKey,
    lockout: &Lockout,
) -> Result<bool, sqlx::Error> {
    let (tenant, user, at) = (lockout.tenant.as_str(), lockout.user.as_str(), to_unix_ms(lockout.at));
    let locked = exec!(
        conn,
        concat!(
            "UPDATE users SET locked_until = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND id = $4 AND locked_until = 0 AND ",
            failures_of_user!(),
            " >= $5"
        ),
        [to_unix_ms(lockout.lock_until), at, tenant, user, i64::from(lockout.threshold)]
    )?;
    if locked == 1 {
        let (event, audit) = lockout.locked();
        insert_event(conn, &event, "").await?;
        append_audit(conn, key, tenant, &audit).await?;
    }
    Ok(locked == 1)
}

/// Whether user `$3` of tenant `$2` may have an answer counted at `$1`
/// against the lockout threshold `$4`: unlocked and under it, or locked
/// until a time that is up. Written once for the count and for the read
/// of SQLite's writer (`users::answer::COUNTS`); `$failures` is how the
/// statement reads the user's count ([`failures_of_user!`] by default).
macro_rules! user_countable {
    () => {
        user_countable!(failures_of_user!())
    };
    ($failures:expr) => {
        concat!("((locked_until = 0 AND ", $failures, " < $4) OR (locked_until > 0 AND locked_until <= $1))")
    };
}

/// A countable user's failures with one more answer counted: after a lock
/// whose time is up, this answer is the first. `$failures` as in
/// [`user_countable!`].
macro_rules! counted_failures {
    () => {
        counted_failures!(failures_of_user!())
    };
    ($failures:expr) => {
        concat!("CASE WHEN locked_until > 0 THEN 1 ELSE ", $failures, " + 1 END")
    };
}

/// Deletes user `$2`'s (tenant `$1`) failure count: a right answer's
/// clearing, or the user's deletion; [`clear_user_failures`] adds its
/// condition.
///
/// [`clear_user_failures`]: vouchsafe_core::store::UserStore::clear_user_failures
macro_rules! clear_failures {
    () => {
        "DELETE FROM user_failures WHERE tenant_id = $1 AND user_id = $2"
    };
}

/// [`clear_failures!`] as it is run on its own.
const CLEAR_FAILURES: &str = clear_failures!();

/// Counts an answer of user `$3` of tenant `$2` at `$1` against the
/// lockout threshold `$4`, while the user is unlocked and under it. A lock
/// whose time is up is over: counting starts afresh, with this answer as
/// the first failure (the threshold is at least 1, `core::settings`), and
/// [`END_LOCK_THAT_IS_UP`] then clears the lock. The count is read beside
/// the user's row, so on PostgreSQL the user's row must be locked by an
/// earlier statement ([`hold_user_first`]): then no count can commit
/// between the read and the write. `returning` answers the failures
/// counted (SQLite's writer counts in place without it, see
/// `answer::count_in_place`).
macro_rules! count_user_answer {
    () => {
        concat!(
            "INSERT INTO user_failures (tenant_id, user_id, failures, updated_at) SELECT tenant_id, id, ",
            counted_failures!(),
            ", $1 FROM users WHERE tenant_id = $2 AND id = $3 AND ",
            user_countable!(),
            " ON CONFLICT (tenant_id, user_id) DO UPDATE SET failures = excluded.failures, \
             updated_at = excluded.updated_at"
        )
    };
    (returning) => {
        concat!(count_user_answer!(), " RETURNING failures")
    };
}

/// Ends user `$3`'s (tenant `$2`) lock whose time is up at `$1`, after
/// [`count_user_answer!`] counted their first answer since. Changes
/// nothing for a user who is unlocked or still locked.
const END_LOCK_THAT_IS_UP: &str = "UPDATE users SET locked_until = 0, updated_at = $1 \
    WHERE tenant_id = $2 AND id = $3 AND locked_until > 0 AND locked_until <= $1";

/// Whether challenge `$5` of user `$3` (tenant `$2`) can take an answer's
/// attempt at `$1`: pending, unexpired, attempts left.
macro_rules! challenge_takeable {
    () => {
        "tenant_id = $2 AND id = $5 AND user_id = $3 AND status = 'pending' AND expires_at > $1 \
         AND attempts < max_attempts"
    };
}

/// Takes one attempt of challenge `$5` of user `$3` (tenant `$2`, at
/// `$1`) while it is pending, unexpired and has attempts left; `$and` is
/// added to its conditions. `returning` answers the attempts taken.
macro_rules! take_challenge_attempt {
    ($and:literal) => {
        concat!("UPDATE challenges SET attempts = attempts + 1, updated_at = $1 WHERE ", challenge_takeable!(), $and)
    };
    ($and:literal, returning) => {
        concat!(take_challenge_attempt!($and), " RETURNING attempts")
    };
}

/// Takes user `user`'s row (on PostgreSQL; SQLite's one writer needs no
/// lock) before a write locks any other row of theirs, the order the
/// module sets. The same lock as [`before_counting`]'s, taken for order
/// rather than for a count.
async fn hold_user_first(conn: &mut Tx<'_>, tenant: &str, user: &str) -> Result<(), sqlx::Error> {
    before_counting(conn, Counted::User { tenant, user }).await
}

impl SqlStore {
    /// PostgreSQL: [`UserStore::reserve_answer`]'s usual case as one
    /// statement (a `WITH` that takes the challenge's attempt only if the
    /// user's answer was counted), one round trip for what was a
    /// transaction of four. `None` when the answer is to no challenge, or
    /// the user could not be counted (locked, or at the threshold): the
    /// transaction then handles it. When the user was counted but the challenge was no longer
    /// pending (a race with its settling), the count is given back; until
    /// then it errs toward locking sooner, never later.
    async fn reserve_answer_in_one_statement(&self, lockout: &Lockout) -> StoreResult<Option<AnswerGate>> {
        let Some(challenge) = &lockout.challenge else { return Ok(None) };
        let (tenant, user, at) = (&lockout.tenant, lockout.user.as_str(), to_unix_ms(lockout.at));
        // `held` locks the user's row first (see the module) and reads its
        // lock as of that lock. The count is an upsert on the latest row,
        // whatever the statement's snapshot holds: one insert for an
        // unlocked user (counted while under the threshold), one for the
        // first answer after a lock whose time is up (counted from 1, and
        // the lock ended).
        let both = concat!(
            "WITH ",
            held_user!("$2", "$3"),
            ", counted_unlocked AS (INSERT INTO user_failures (tenant_id, user_id, failures, updated_at) \
             SELECT $2, $3, 1, $1 FROM held WHERE locked_until = 0 \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET failures = user_failures.failures + 1, updated_at = $1 \
             WHERE user_failures.failures < $4 RETURNING failures), \
             counted_after_lock AS (INSERT INTO user_failures (tenant_id, user_id, failures, updated_at) \
             SELECT $2, $3, 1, $1 FROM held WHERE locked_until > 0 AND locked_until <= $1 \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET failures = 1, updated_at = $1 RETURNING failures), \
             lock_ended AS (UPDATE users SET locked_until = 0, updated_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND EXISTS (SELECT 1 FROM counted_after_lock)), \
             counted AS (SELECT failures FROM counted_unlocked UNION ALL SELECT failures FROM counted_after_lock), \
             taken AS (",
            take_challenge_attempt!(" AND EXISTS (SELECT 1 FROM counted)", returning),
            ") SELECT (SELECT failures FROM counted), (SELECT attempts FROM taken)"
        );
        let input = (tenant.to_string(), user.to_owned(), challenge.as_str().to_owned(), i64::from(lockout.threshold));
        let (failures, taken) = self
            .write_statement(input.clone(), move |conn, (tenant, user, id, threshold)| {
                Box::pin(async move {
                    fetch!(
                        conn,
                        one(Option<i64>, Option<i64>),
                        both,
                        [at, tenant.as_str(), user.as_str(), *threshold, id.as_str()]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        match (failures, taken) {
            (Some(failures), Some(attempt)) => Ok(Some(AnswerGate::Counted {
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
            })),
            (Some(_), None) => {
                self.write_statement(input, move |conn, (tenant, user, _, _)| {
                    Box::pin(async move {
                        exec!(
                            conn,
                            "UPDATE user_failures SET failures = failures - 1, updated_at = $1 \
                             WHERE tenant_id = $2 AND user_id = $3 AND failures > 0",
                            [at, tenant.as_str(), user.as_str()]
                        )
                    })
                })
                .await
                .map_err(map_err)?;
                Ok(Some(AnswerGate::NotPending))
            }
            (None, _) => Ok(None),
        }
    }

    /// [`UserStore::approve_challenge`] on PostgreSQL for a code (a
    /// counter to move) or no authenticator: one statement instead of a
    /// transaction of seven round trips. The counter moves only while the
    /// challenge is approvable, the approval only if the counter moved,
    /// and the user's failures, the event with its messages and the audit
    /// entry select from the approved row. Where the transaction undoes a
    /// moved counter when the approval then fails, here that happens only
    /// if the challenge was settled between the statement's snapshot and
    /// its row lock (a concurrent answer): the code is then spent, not
    /// accepted, which errs toward refusing.
    async fn approve_challenge_in_one_statement(
        &self,
        c: &Challenge,
        used: Option<&AuthenticatorUse>,
        at: i64,
        event: &Event,
        audit: &AuditEntry,
    ) -> StoreResult<ApprovalOutcome> {
        // `approvable` is read once, in the statement's snapshot: it guards
        // the counter and tells a replay from a challenge no longer pending.
        // `held` locks the user's row before any other (see the module):
        // both conditions read the user through it, and every row lock
        // this statement takes comes after theirs.
        let approve = concat!(
            "WITH ",
            held_user!("$3", "$16"),
            ", approvable AS (SELECT id FROM challenges WHERE ",
            challenge_approvable!("$14", "$3", "$6", held_user_unlocked!()),
            "), moved AS (UPDATE authenticators SET counter = $15, last_used_at = $14 \
             WHERE tenant_id = $3 AND id = $7 AND status = 'active' AND counter < $15 \
             AND EXISTS (SELECT 1 FROM approvable) RETURNING id), approved AS (",
            approve_challenge_if_approvable!("$14", "$3", "$6", held_user_unlocked!()),
            " AND ($7 = '' OR EXISTS (SELECT 1 FROM moved)) RETURNING ",
            challenge_columns!(),
            "), cleared AS (DELETE FROM user_failures \
             WHERE tenant_id = $3 AND user_id = $16 AND EXISTS (SELECT 1 FROM approved)), ",
            approval_effects!(),
            "SELECT (SELECT COUNT(*) FROM moved) AS moved, (SELECT COUNT(*) FROM approvable) AS approvable, ",
            challenge_columns!(),
            " FROM (SELECT 1 AS one) AS one LEFT JOIN approved ON TRUE"
        );
        let (authenticator, value) = match used {
            Some(AuthenticatorUse::Counter { id, value }) => (id.as_str().to_owned(), *value),
            _ => (String::new(), 0),
        };
        let input = (c.clone(), authenticator, value, event.clone(), audit.clone());
        let ApprovalRow { moved, approvable, approved } = self
            .write_statement(input, move |conn, (c, authenticator, value, event, audit)| {
                Box::pin(async move {
                    fetch!(
                        conn,
                        one ApprovalRow,
                        approve,
                        [
                            event.id.as_str(),
                            to_unix_ms(event.created_at),
                            c.tenant_id.as_str(),
                            event.event_type.as_str(),
                            "", // $5, not read (see `approval_effects!`)
                            c.id.as_str(),
                            authenticator.as_str(),
                            event.body(),
                            to_unix_ms(audit.at),
                            &audit.actor,
                            &audit.action,
                            &audit.target,
                            &audit.outcome,
                            at,
                            *value,
                            &c.user_id,
                        ]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        Ok(match (approved, approvable, moved) {
            (Some(row), _, _) => ApprovalOutcome::Approved(Box::new(row.try_into()?)),
            (None, 0, _) => ApprovalOutcome::NotPending,
            (None, _, 0) if used.is_some() => ApprovalOutcome::Replayed,
            (None, _, _) => ApprovalOutcome::NotPending,
        })
    }
}

mod answer;
mod import;
mod to_answer;

#[async_trait]
impl UserStore for SqlStore {
    async fn put_user(
        &self,
        tenant: &TenantId,
        id: &str,
        contacts: &Contacts,
        privileged: bool,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<User> {
        let at = to_unix_ms(now);
        let sql = concat!(
            "INSERT INTO users (tenant_id, id, phone, email, display_name, privileged, locked_until, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET phone = $3, email = $4, display_name = $5, privileged = $6, \
             updated_at = $7 RETURNING ",
            user_columns!()
        );
        let input =
            (self.audit_key().map_err(map_err)?, tenant.clone(), id.to_owned(), contacts.clone(), audit.clone());
        let row = self
            .write(input, move |conn, (key, tenant, id, contacts, audit)| {
                Box::pin(async move {
                    let row = fetch!(
                        conn,
                        one UserRow,
                        sql,
                        [
                            tenant.as_str(),
                            id,
                            contacts.phone.as_deref(),
                            contacts.email.as_deref(),
                            contacts.display_name.as_deref(),
                            privileged,
                            at,
                        ]
                    )?;
                    append_audit(conn, key, tenant.as_str(), audit).await?;
                    Ok(row)
                })
            })
            .await
            .map_err(map_err)?;
        Ok(row.into())
    }

    async fn user(&self, tenant: &TenantId, id: &str) -> StoreResult<User> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE tenant_id = $1 AND id = $2");
        Ok(read!(self, one UserRow, sql, [tenant.as_str(), id])?.into())
    }

    async fn delete_user(&self, tenant: &TenantId, id: &str, audit: &AuditEntry) -> StoreResult<()> {
        // What hangs off the user goes first (the foreign keys want it so);
        // for an unknown user those deletes find nothing, and no entry is
        // written.
        let deleted = self
            .write_audited(tenant.as_str(), audit, (tenant.clone(), id.to_owned()), |conn, (tenant, id)| {
                Box::pin(async move {
                    let (tenant, id) = (tenant.as_str(), id.as_str());
                    hold_user_first(conn, tenant, id).await?;
                    exec!(
                        conn,
                        "DELETE FROM recovery_codes WHERE authenticator_id IN \
                         (SELECT id FROM authenticators WHERE tenant_id = $1 AND user_id = $2)",
                        [tenant, id]
                    )?;
                    exec!(conn, "DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2", [tenant, id])?;
                    exec!(conn, "DELETE FROM challenges WHERE tenant_id = $1 AND user_id = $2", [tenant, id])?;
                    exec!(conn, CLEAR_FAILURES, [tenant, id])?;
                    exec!(conn, "DELETE FROM users WHERE tenant_id = $1 AND id = $2", [tenant, id])
                })
            })
            .await
            .map_err(map_err)?;
        if deleted == 1 { Ok(()) } else { Err(StoreError::NotFound) }
    }

    async fn create_authenticator(
        &self,
        a: &Authenticator,
        recovery_codes: &[StoredCode],
        replace_kind: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let input = (self.audit_key().map_err(map_err)?, a.clone(), recovery_codes.to_vec(), audit.clone());
        self.write(input, move |conn, (key, a, recovery_codes, audit)| {
            Box::pin(async move {
                let (tenant, user, kind) = (a.tenant_id.as_str(), a.user_id.as_str(), a.kind.as_str());
                // SECURITY: the count below sees every enrollment that
                // committed before. First, before the deletes: the user's
                // row leads the locks (see the module).
                before_counting(conn, Counted::User { tenant, user }).await?;
                if replace_kind {
                    exec!(
                        conn,
                        "DELETE FROM recovery_codes WHERE authenticator_id IN (SELECT id FROM authenticators \
                         WHERE tenant_id = $1 AND user_id = $2 AND type = $3)",
                        [tenant, user, kind]
                    )?;
                    exec!(
                        conn,
                        "DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND type = $3",
                        [tenant, user, kind]
                    )?;
                }
                if insert_authenticator(conn, a, Insert::UnderLimit).await? == 0 {
                    return Ok(Err(StoreError::LimitReached(
                        "the user has as many authenticators as they may; delete one first",
                    )));
                }
                for (index, code) in recovery_codes.iter().enumerate() {
                    exec!(
                        conn,
                        "INSERT INTO recovery_codes (authenticator_id, idx, hash, lookup_tag, used_at) \
                         VALUES ($1, $2, $3, $4, NULL)",
                        [a.id.as_str(), i64::try_from(index).unwrap_or(i64::MAX), &code.hash, &code.tag]
                    )?;
                }
                append_audit(conn, key, tenant, audit).await?;
                Ok(Ok(()))
            })
        })
        .await
        .map_err(map_err)?
    }

    async fn import_authenticators(
        &self,
        tenant: &TenantId,
        items: &[Authenticator],
        mode: ImportMode,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<ImportOutcome> {
        import::import(self, tenant, items, mode, now, audit).await
    }

    async fn active_authenticators_among(
        &self,
        tenant: &TenantId,
        users: &[String],
    ) -> StoreResult<Vec<(String, AuthenticatorKind)>> {
        import::active_among(self, tenant, users).await
    }

    async fn authenticators(&self, tenant: &TenantId, user: &str) -> StoreResult<Vec<Authenticator>> {
        let sql = concat!(
            "SELECT ",
            authenticator_columns!(),
            " FROM authenticators WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id"
        );
        let rows = read!(self, all AuthenticatorRow, sql, [tenant.as_str(), user])?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn authenticator(&self, tenant: &TenantId, user: &str, id: &AuthenticatorId) -> StoreResult<Authenticator> {
        let sql = concat!(
            "SELECT ",
            authenticator_columns!(),
            " FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND id = $3"
        );
        let row: AuthenticatorRow = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).bind(user).bind(id.as_str()).fetch_one(pool).await
        )
        .map_err(map_err)?;
        row.try_into()
    }

    async fn activate_authenticator(
        &self,
        tenant: &TenantId,
        id: &AuthenticatorId,
        counter: i64,
        sealed: Option<&[u8]>,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let input = (counter, to_unix_ms(now), tenant.clone(), id.clone(), sealed.map(<[u8]>::to_vec));
        let changed = self
            .write_audited(tenant.as_str(), audit, input, |conn, (counter, at, tenant, id, sealed)| {
                Box::pin(async move {
                    exec!(
                        conn,
                        "UPDATE authenticators SET status = 'active', counter = $1, updated_at = $2, last_used_at = $2, \
                         sealed = COALESCE($5, sealed) \
                         WHERE tenant_id = $3 AND id = $4 AND status = 'unconfirmed' AND counter < $1",
                        [*counter, *at, tenant.as_str(), id.as_str(), sealed.as_deref()]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn advance_authenticator(
        &self,
        tenant: &TenantId,
        id: &AuthenticatorId,
        value: i64,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let input = (value, to_unix_ms(now), tenant.clone(), id.clone());
        let changed = self
            .write_audited(tenant.as_str(), audit, input, |conn, (value, at, tenant, id)| {
                Box::pin(async move {
                    exec!(
                        conn,
                        "UPDATE authenticators SET counter = $1, updated_at = $2 \
                         WHERE tenant_id = $3 AND id = $4 AND status = 'active' AND counter < $1",
                        [*value, *at, tenant.as_str(), id.as_str()]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn reseal_authenticator(&self, tenant: &TenantId, id: &AuthenticatorId, sealed: &[u8]) -> StoreResult<()> {
        self.write((sealed.to_vec(), tenant.clone(), id.clone()), |conn, (sealed, tenant, id)| {
            Box::pin(async move {
                exec!(
                    conn,
                    "UPDATE authenticators SET sealed = $1 WHERE tenant_id = $2 AND id = $3 AND status = 'active'",
                    [sealed, tenant.as_str(), id.as_str()]
                )
            })
        })
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn delete_authenticator(
        &self,
        tenant: &TenantId,
        user: &str,
        id: &AuthenticatorId,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        // Its recovery codes go first (the foreign key wants it so); for an
        // unknown authenticator that finds nothing, and no entry is written.
        let deleted = self
            .write_audited(
                tenant.as_str(),
                audit,
                (tenant.clone(), user.to_owned(), id.clone()),
                |conn, (tenant, user, id)| {
                    Box::pin(async move {
                        let (tenant, user, id) = (tenant.as_str(), user.as_str(), id.as_str());
                        exec!(
                            conn,
                            "DELETE FROM recovery_codes WHERE authenticator_id = $1 AND authenticator_id IN \
                         (SELECT id FROM authenticators WHERE tenant_id = $2 AND user_id = $3)",
                            [id, tenant, user]
                        )?;
                        exec!(
                            conn,
                            "DELETE FROM authenticators WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
                            [tenant, user, id]
                        )
                    })
                },
            )
            .await;
        one_row(deleted, StoreError::NotFound)
    }

    async fn unspent_recovery_codes(&self, id: &AuthenticatorId, tag: Option<&str>) -> StoreResult<Vec<(i64, String)>> {
        on_pool!(self.db(), pool =>
            sqlx::query_as(
                "SELECT idx, hash FROM recovery_codes WHERE authenticator_id = $1 AND used_at IS NULL \
                 AND ($2 = '' OR lookup_tag = $2 OR lookup_tag IS NULL) ORDER BY idx",
            )
            .bind(id.as_str())
            .bind(tag.unwrap_or(""))
            .fetch_all(pool)
            .await
        )
        .map_err(map_err)
    }

    async fn create_challenge(&self, c: &Challenge, audit: &AuditEntry) -> StoreResult<()> {
        let sql = concat!(
            "INSERT INTO challenges (",
            challenge_columns!(),
            ", token_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL)"
        );
        let (c, audit) = (c.clone(), audit.clone());
        let key = self.audit_key().map_err(map_err)?;
        self.write((key, c, audit), move |conn, (key, c, audit)| {
            Box::pin(async move {
                exec!(
                    conn,
                    sql,
                    [
                        c.id.as_str(),
                        c.tenant_id.as_str(),
                        &c.user_id,
                        c.factor.as_str(),
                        &c.action,
                        c.redirect_url.as_deref(),
                        c.status.as_str(),
                        i64::from(c.attempts),
                        i64::from(c.max_attempts),
                        c.verification_id.as_ref().map(VerificationId::as_str),
                        to_unix_ms(c.expires_at),
                        c.verified_at.map(to_unix_ms),
                        to_unix_ms(c.created_at),
                        to_unix_ms(c.updated_at),
                        c.passkey_options.as_deref(),
                        c.passkey_state.as_deref(),
                    ]
                )?;
                append_audit(conn, key, c.tenant_id.as_str(), audit).await?;
                Ok::<_, sqlx::Error>(())
            })
        })
        .await
        .map_err(map_err)
    }

    async fn challenge(&self, tenant: &TenantId, id: &ChallengeId) -> StoreResult<Challenge> {
        let sql = concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE tenant_id = $1 AND id = $2");
        read!(self, one ChallengeRow, sql, [tenant.as_str(), id.as_str()])?.try_into()
    }

    async fn challenge_to_answer(&self, tenant: &TenantId, id: &ChallengeId) -> StoreResult<ChallengeToAnswer> {
        to_answer::challenge_to_answer(self, tenant, id).await
    }

    async fn pending_challenge(
        &self,
        tenant: &TenantId,
        user: &str,
        action: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        let sql = concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM challenges WHERE tenant_id = $1 AND user_id = $2 AND action = $3 AND status = 'pending' \
             AND expires_at > $4 ORDER BY created_at DESC LIMIT 1"
        );
        let at = to_unix_ms(now);
        read!(self, optional ChallengeRow, sql, [tenant.as_str(), user, action, at])?.map(TryInto::try_into).transpose()
    }

    async fn challenge_for_page(&self, id: &ChallengeId) -> StoreResult<Challenge> {
        let sql = concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE id = $1");
        let row: ChallengeRow =
            on_pool!(self.db(), pool => sqlx::query_as(sql).bind(id.as_str()).fetch_one(pool).await)
                .map_err(map_err)?;
        row.try_into()
    }

    async fn approve_challenge(
        &self,
        c: &Challenge,
        used: Option<&AuthenticatorUse>,
        now: OffsetDateTime,
        event: &Event,
        audit: &AuditEntry,
    ) -> StoreResult<ApprovalOutcome> {
        let at = to_unix_ms(now);
        if self.is_postgres() && !matches!(used, Some(AuthenticatorUse::RecoveryCode { .. })) {
            return self.approve_challenge_in_one_statement(c, used, at, event, audit).await;
        }
        let (c, used, event, audit) = (c.clone(), used.cloned(), event.clone(), audit.clone());
        let key = self.audit_key().map_err(map_err)?;
        let step = self
            .write((key, c, used, event, audit), move |conn, (key, c, used, event, audit)| {
                Box::pin(answer::approve(conn, key, c, used.as_ref(), (event, audit), at))
            })
            .await
            .map_err(map_err)?;
        step.into_outcome()
    }

    async fn reserve_and_approve(
        &self,
        c: &Challenge,
        lockout: &Lockout,
        used: Option<&AuthenticatorUse>,
        approved: (&Event, &AuditEntry),
    ) -> StoreResult<(AnswerGate, Option<ApprovalOutcome>)> {
        if !lockout.answers(c) {
            return Err(StoreError::Conflict("the answer counted is not the challenge's"));
        }
        let now = lockout.at;
        if self.is_postgres() {
            // Each is one statement here (one round trip and commit);
            // one transaction of both would add the round trips of its
            // BEGIN and COMMIT.
            let gate = self.reserve_answer(lockout).await?;
            if !matches!(gate, AnswerGate::Counted { .. }) {
                return Ok((gate, None));
            }
            let (event, audit) = approved;
            return Ok((gate, Some(self.approve_challenge(c, used, now, event, audit).await?)));
        }
        let at = to_unix_ms(now);
        let input = (
            self.audit_key().map_err(map_err)?,
            c.clone(),
            lockout.clone(),
            used.cloned(),
            approved.0.clone(),
            approved.1.clone(),
        );
        let (gate, step) = self
            .write(input, move |conn, (key, c, lockout, used, event, audit)| {
                Box::pin(answer::reserve_and_approve(conn, key, c, lockout, used.as_ref(), (event, audit), at))
            })
            .await
            .map_err(map_err)?;
        Ok((gate, step.map(Step::into_outcome).transpose()?))
    }

    async fn reserve_answer(&self, lockout: &Lockout) -> StoreResult<AnswerGate> {
        if self.is_postgres()
            && let Some(gate) = self.reserve_answer_in_one_statement(lockout).await?
        {
            return Ok(gate);
        }
        let key = self.audit_key().map_err(map_err)?;
        let gate = self
            .write((key, lockout.clone()), move |conn, (key, lockout)| Box::pin(answer::reserve(conn, key, lockout)))
            .await
            .map_err(map_err)?;
        Ok(gate)
    }

    async fn settle_wrong_answer(
        &self,
        c: &Challenge,
        attempt: u32,
        now: OffsetDateTime,
        effects: &FailureEffects,
    ) -> StoreResult<FailureOutcome> {
        let at = to_unix_ms(now);
        let select = concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE tenant_id = $1 AND id = $2");
        let (c, effects, lock_until) = (c.clone(), effects.clone(), effects.lockout.lock_until);
        let took_last = attempt >= c.max_attempts;
        let key = self.audit_key().map_err(map_err)?;
        let (row, locked) = self
            .write((key, c, effects), move |conn, (key, c, effects)| {
                Box::pin(async move {
                    if took_last {
                        // The answer that took the last attempt ends the
                        // challenge; the lockout below may write the user.
                        hold_user_first(conn, c.tenant_id.as_str(), &c.user_id).await?;
                        let denied = exec!(
                            conn,
                            "UPDATE challenges SET status = 'denied', updated_at = $1 \
                     WHERE tenant_id = $2 AND id = $3 AND status = 'pending'",
                            [at, c.tenant_id.as_str(), c.id.as_str()]
                        )?;
                        if denied == 1 {
                            insert_event(conn, &effects.denied.0, "").await?;
                            append_audit(conn, key, c.tenant_id.as_str(), &effects.denied.1).await?;
                        }
                    }
                    let locked = lock_at_threshold(conn, key, &effects.lockout).await?;
                    let row = fetch!(conn, one ChallengeRow, select, [c.tenant_id.as_str(), c.id.as_str()])?;
                    Ok::<_, sqlx::Error>((row, locked))
                })
            })
            .await
            .map_err(map_err)?;
        Ok(FailureOutcome { challenge: row.try_into()?, locked_until: locked.then_some(lock_until) })
    }

    async fn settle_wrong_user_answer(&self, lockout: &Lockout) -> StoreResult<Option<OffsetDateTime>> {
        let key = self.audit_key().map_err(map_err)?;
        let lock_until = lockout.lock_until;
        let locked = self
            .write((key, lockout.clone()), move |conn, (key, lockout)| {
                Box::pin(async move { lock_at_threshold(conn, key, lockout).await })
            })
            .await
            .map_err(map_err)?;
        Ok(locked.then_some(lock_until))
    }

    async fn clear_user_failures(&self, tenant: &TenantId, user: &str, _now: OffsetDateTime) -> StoreResult<()> {
        let (tenant, user) = (tenant.to_string(), user.to_owned());
        self.write((tenant, user), move |conn, (tenant, user)| {
            Box::pin(async move {
                exec!(
                    conn,
                    concat!(
                        clear_failures!(),
                        " AND EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 AND locked_until = 0)"
                    ),
                    [tenant.as_str(), user.as_str()]
                )
            })
        })
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn expire_challenge(&self, tenant: &TenantId, id: &ChallengeId, now: OffsetDateTime) -> StoreResult<bool> {
        let at = to_unix_ms(now);
        let changed = self
            .write((tenant.clone(), id.clone()), move |conn, (tenant, id)| {
                Box::pin(async move {
                    exec!(
                        conn,
                        "UPDATE challenges SET status = 'expired', updated_at = $1 WHERE tenant_id = $2 AND id = $3 \
                         AND status = 'pending' AND expires_at <= $1",
                        [at, tenant.as_str(), id.as_str()]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn redeem_challenge_token(
        &self,
        tenant: &TenantId,
        id: &ChallengeId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Challenge>> {
        let sql = concat!(
            "UPDATE challenges SET token_used_at = $1 WHERE tenant_id = $2 AND id = $3 AND status = 'approved' \
             AND token_used_at IS NULL RETURNING ",
            challenge_columns!()
        );
        let at = to_unix_ms(now);
        let row = self
            .write((tenant.clone(), id.clone()), move |conn, (tenant, id)| {
                Box::pin(async move { fetch!(conn, optional ChallengeRow, sql, [at, tenant.as_str(), id.as_str()]) })
            })
            .await
            .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }
}
