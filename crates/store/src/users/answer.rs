//! An answer's writes as steps inside one transaction: the reservation
//! that counts an answer before it is evaluated, and the approval of a
//! right one. Each is a write of its own ([`UserStore::reserve_answer`],
//! [`UserStore::approve_challenge`]); an answer already known right (a
//! code the user's own authenticators checked as soon as the challenge was
//! read) takes both in one write ([`UserStore::reserve_and_approve`]): on
//! SQLite one durable commit where it waited for two. There, in the usual
//! case, the two steps are folded into one (see [`count_and_approve`]):
//! each row is written once, and no savepoint is opened.
//!
//! [`UserStore::reserve_answer`]: vouchsafe_core::store::UserStore::reserve_answer
//! [`UserStore::approve_challenge`]: vouchsafe_core::store::UserStore::approve_challenge
//! [`UserStore::reserve_and_approve`]: vouchsafe_core::store::UserStore::reserve_and_approve

use vouchsafe_core::audit::{AuditEntry, AuditKey};
use vouchsafe_core::authenticator::AuthenticatorUse;
use vouchsafe_core::challenge::Challenge;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::event::Event;
use vouchsafe_core::ids::ChallengeId;
use vouchsafe_core::store::{AnswerGate, ApprovalOutcome, Lockout};

use super::{CLEAR_FAILURES, ChallengeRow, END_LOCK_THAT_IS_UP, Step, hold_user_first, lock_at_threshold};
use crate::audit::append_audit;
use crate::tx::{Tx, exec, fetch, release_savepoint, rollback_savepoint, savepoint};
use crate::webhooks::insert_event;

/// Moves authenticator `$4`'s (tenant `$3`) counter forward to `$1` at
/// `$2`, only while it is active and the step is new to it: a replayed
/// step moves nothing. The one statement both ways of approving use.
const MOVE_COUNTER: &str = "UPDATE authenticators SET counter = $1, last_used_at = $2 \
    WHERE tenant_id = $3 AND id = $4 AND status = 'active' AND counter < $1";

/// What counting an answer of user `$3` (tenant `$2`, at `$1`, threshold
/// `$4`) to challenge `$5` would leave, read without writing: no row if
/// the user cannot be counted; else their failures counted, whether it
/// ends a lock whose time is up, and the challenge's attempts, or `NULL`
/// if it cannot take one. The conditions are [`count_user_answer!`]'s,
/// with the user's count read once, by a join (`locked_until` is only in
/// `users`). SQLite's writer reads it inside the transaction that then
/// writes, where nothing else writes in between.
const COUNTS: &str = concat!(
    "SELECT ",
    counted_failures!("COALESCE(f.failures, 0)"),
    ", locked_until > 0, (SELECT attempts + 1 FROM challenges WHERE ",
    challenge_takeable!(),
    ") FROM users LEFT JOIN user_failures f ON f.tenant_id = users.tenant_id AND f.user_id = users.id \
     WHERE users.tenant_id = $2 AND users.id = $3 AND ",
    user_countable!("COALESCE(f.failures, 0)")
);

/// Sets user `$2`'s (tenant `$1`) failures to `$3` at `$4`: the count
/// [`COUNTS`] read, written by SQLite's writer in the same transaction.
const SET_FAILURES: &str = "INSERT INTO user_failures (tenant_id, user_id, failures, updated_at) \
    VALUES ($1, $2, $3, $4) \
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET failures = excluded.failures, updated_at = excluded.updated_at";

/// The reservation's usual case on SQLite's writer, each row written once
/// with no `RETURNING` and no savepoint: the counts read first
/// ([`COUNTS`]), then the two updates, each keeping its own conditions.
/// SQLite answers a `RETURNING` through a temporary b-tree, opened and
/// zeroed a page at a time, and journals a savepoint's pages: together
/// about a tenth of a wrong answer's instructions. An update that finds
/// its conditions false, read true a statement ago, fails the write.
/// `None`, with nothing written, when the user cannot be counted or the
/// challenge cannot take an attempt, or on PostgreSQL, where writes run
/// side by side and the reservation's own statements decide.
async fn count_in_place(conn: &mut Tx<'_>, lockout: &Lockout) -> Result<Option<AnswerGate>, sqlx::Error> {
    let (Tx::Writer(_), Some(challenge)) = (&*conn, &lockout.challenge) else { return Ok(None) };
    let (tenant, user, at) = (lockout.tenant.as_str(), lockout.user.as_str(), to_unix_ms(lockout.at));
    let (threshold, id) = (i64::from(lockout.threshold), challenge.as_str());
    let counts = fetch!(conn, optional(i64, bool, Option<i64>), COUNTS, [at, tenant, user, threshold, id])?;
    let Some((failures, ends_a_lock, Some(attempt))) = counts else { return Ok(None) };
    let counted = exec!(conn, SET_FAILURES, [tenant, user, failures, at])?;
    if ends_a_lock {
        exec!(conn, END_LOCK_THAT_IS_UP, [at, tenant, user])?;
    }
    let taken = exec!(conn, take_challenge_attempt!(""), [at, tenant, user, threshold, id])?;
    if (counted, taken) != (1, 1) {
        return Err(sqlx::Error::Protocol("an answer's count changed under its own transaction".into()));
    }
    Ok(Some(AnswerGate::Counted {
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
    }))
}

/// The reservation ([`UserStore::reserve_answer`]'s transaction), under a
/// savepoint of its own: the user counted, or locked at the threshold;
/// then the challenge's attempt taken, or the user's count undone when
/// the challenge is no longer pending.
///
/// [`UserStore::reserve_answer`]: vouchsafe_core::store::UserStore::reserve_answer
pub(super) async fn reserve(conn: &mut Tx<'_>, key: &AuditKey, lockout: &Lockout) -> Result<AnswerGate, sqlx::Error> {
    if let Some(gate) = count_in_place(conn, lockout).await? {
        return Ok(gate);
    }
    let (tenant, user, at) = (lockout.tenant.as_str(), lockout.user.as_str(), to_unix_ms(lockout.at));
    let challenge = lockout.challenge.as_ref().map(ChallengeId::as_str);
    // The count is read beside the user's row: on PostgreSQL that row is
    // locked first, so no other count commits between the read and the write.
    hold_user_first(conn, tenant, user).await?;
    savepoint!(conn)?;
    let counted =
        fetch!(conn, optional(i64,), count_user_answer!(returning), [at, tenant, user, i64::from(lockout.threshold)])?;
    let Some((failures,)) = counted else {
        // Locked, or as many answers counted as the threshold allows: the
        // user is locked (now, if no answer has locked it yet).
        lock_at_threshold(conn, key, lockout).await?;
        let (until,) =
            fetch!(conn, one(i64,), "SELECT locked_until FROM users WHERE tenant_id = $1 AND id = $2", [tenant, user])?;
        release_savepoint!(conn)?;
        return Ok(AnswerGate::Locked(from_unix_ms(until)));
    };
    exec!(conn, END_LOCK_THAT_IS_UP, [at, tenant, user])?;
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    let mut attempt = 0;
    if let Some(id) = challenge {
        let taken = fetch!(
            conn,
            optional(i64,),
            take_challenge_attempt!("", returning),
            [at, tenant, user, i64::from(lockout.threshold), id]
        )?;
        let Some((taken,)) = taken else {
            rollback_savepoint!(conn)?;
            return Ok(AnswerGate::NotPending);
        };
        attempt = u32::try_from(taken).unwrap_or(u32::MAX);
    }
    release_savepoint!(conn)?;
    Ok(AnswerGate::Counted { attempt, failures })
}

/// The approval ([`UserStore::approve_challenge`]'s transaction), under a
/// savepoint of its own: a challenge no longer pending must undo the
/// counter the answer already moved, and still answer, not fail.
///
/// [`UserStore::approve_challenge`]: vouchsafe_core::store::UserStore::approve_challenge
pub(super) async fn approve(
    conn: &mut Tx<'_>,
    key: &AuditKey,
    c: &Challenge,
    used: Option<&AuthenticatorUse>,
    (event, audit): (&Event, &AuditEntry),
    at: i64,
) -> Result<Step, sqlx::Error> {
    savepoint!(conn)?;
    // The user's row first (see the `users` module on lock order).
    hold_user_first(conn, c.tenant_id.as_str(), &c.user_id).await?;
    let moved = match used {
        None => 1,
        Some(AuthenticatorUse::Counter { id, value }) => {
            exec!(conn, MOVE_COUNTER, [*value, at, c.tenant_id.as_str(), id.as_str()])?
        }
        Some(AuthenticatorUse::RecoveryCode { id, index }) => exec!(
            conn,
            "UPDATE recovery_codes SET used_at = $1 WHERE authenticator_id = $2 AND idx = $3 AND used_at IS NULL",
            [at, id.as_str(), *index]
        )?,
    };
    if moved != 1 {
        rollback_savepoint!(conn)?;
        return Ok(Step::Stop(ApprovalOutcome::Replayed));
    }
    // RETURNING: the caller answers with the approved challenge as
    // written, without reading it again.
    let approve = concat!(approve_challenge_if_approvable!("$1", "$2", "$3"), " RETURNING ", challenge_columns!());
    let Some(approved) = fetch!(conn, optional ChallengeRow, approve, [at, c.tenant_id.as_str(), c.id.as_str()])?
    else {
        rollback_savepoint!(conn)?;
        return Ok(Step::Stop(ApprovalOutcome::NotPending));
    };
    exec!(conn, CLEAR_FAILURES, [c.tenant_id.as_str(), &c.user_id])?;
    insert_event(conn, event, "").await?;
    append_audit(conn, key, c.tenant_id.as_str(), audit).await?;
    release_savepoint!(conn)?;
    Ok(Step::Done(Box::new(approved)))
}

/// [`UserStore::reserve_and_approve`]'s transaction on SQLite's writer:
/// [`count_and_approve`] when it applies, else the reservation and, only
/// if it counted the answer, the approval.
///
/// [`UserStore::reserve_and_approve`]: vouchsafe_core::store::UserStore::reserve_and_approve
pub(super) async fn reserve_and_approve(
    conn: &mut Tx<'_>,
    key: &AuditKey,
    c: &Challenge,
    lockout: &Lockout,
    used: Option<&AuthenticatorUse>,
    records: (&Event, &AuditEntry),
    at: i64,
) -> Result<(AnswerGate, Option<Step>), sqlx::Error> {
    if let Some(AuthenticatorUse::Counter { id, value }) = used
        && let Some(done) = count_and_approve(conn, key, c, lockout, (id.as_str(), *value), records, at).await?
    {
        return Ok(done);
    }
    let gate = reserve(conn, key, lockout).await?;
    if !matches!(gate, AnswerGate::Counted { .. }) {
        return Ok((gate, None));
    }
    let step = approve(conn, key, c, used, records, at).await?;
    Ok((gate, Some(step)))
}

/// The usual case of a known-right code, with each row written once: the
/// user countable and the challenge able to take an attempt (read on the
/// writer's connection, inside the transaction that then writes), and the
/// code's step new to its authenticator. Then the counter moves, the
/// challenge takes its attempt and is approved in one update, and the
/// user's count is cleared in one: what counting and then approving leave,
/// without the two updates and two savepoints in between. Each update
/// keeps its own conditions, and one that finds them false fails the
/// write. `None`, with nothing written, when any of it does not hold (a
/// locked user, an ended challenge, a replayed step): the two steps then
/// decide, and count, as they always have.
async fn count_and_approve(
    conn: &mut Tx<'_>,
    key: &AuditKey,
    c: &Challenge,
    lockout: &Lockout,
    (authenticator, value): (&str, i64),
    (event, audit): (&Event, &AuditEntry),
    at: i64,
) -> Result<Option<(AnswerGate, Option<Step>)>, sqlx::Error> {
    let (tenant, user, threshold) = (c.tenant_id.as_str(), c.user_id.as_str(), i64::from(lockout.threshold));
    let counts = fetch!(conn, optional(i64, bool, Option<i64>), COUNTS, [at, tenant, user, threshold, c.id.as_str()])?;
    let Some((failures, ends_a_lock, Some(attempt))) = counts else { return Ok(None) };
    let moved = exec!(conn, MOVE_COUNTER, [value, at, tenant, authenticator])?;
    if moved != 1 {
        return Ok(None);
    }
    let approve = concat!(
        "UPDATE challenges SET attempts = attempts + 1, status = 'approved', verified_at = $1, updated_at = $1 \
         WHERE ",
        challenge_takeable!()
    );
    let approved = exec!(conn, approve, [at, tenant, user, threshold, c.id.as_str()])?;
    // The count cleared, and a lock whose time is up ended: what counting
    // this answer and then approving leave.
    exec!(conn, CLEAR_FAILURES, [tenant, user])?;
    if ends_a_lock {
        exec!(conn, END_LOCK_THAT_IS_UP, [at, tenant, user])?;
    }
    if approved != 1 {
        // Read true a statement ago in this same transaction: the write
        // fails (and its group is rolled back) rather than half happen.
        return Err(sqlx::Error::Protocol("an answer's count changed under its own transaction".into()));
    }
    // Read back, as written, for the caller's answer: no `RETURNING` on
    // SQLite's writer (see `count_in_place`).
    let written = concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE tenant_id = $1 AND id = $2");
    let approved = fetch!(conn, one ChallengeRow, written, [tenant, c.id.as_str()])?;
    insert_event(conn, event, "").await?;
    append_audit(conn, key, tenant, audit).await?;
    let gate = AnswerGate::Counted {
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
    };
    Ok(Some((gate, Some(Step::Done(Box::new(approved))))))
}
