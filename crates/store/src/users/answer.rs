//! An answer's writes as steps inside one transaction: the reservation
//! that counts an answer before it is evaluated, and the approval of a
//! right one. Each is a write of its own ([`UserStore::reserve_answer`],
//! [`UserStore::approve_challenge`]); an answer already known right (a
//! code the user's own authenticators checked as soon as the challenge was
//! read) takes both in one write ([`UserStore::reserve_and_approve`]): on
//! SQLite one durable commit where it waited for two.
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

use super::{ChallengeRow, Step, lock_at_threshold};
use crate::audit::append_audit;
use crate::tx::{Tx, exec, fetch, release_savepoint, rollback_savepoint, savepoint};
use crate::webhooks::insert_event;

/// The reservation ([`UserStore::reserve_answer`]'s transaction), under a
/// savepoint of its own: the user counted, or locked at the threshold;
/// then the challenge's attempt taken, or the user's count undone when
/// the challenge is no longer pending.
///
/// [`UserStore::reserve_answer`]: vouchsafe_core::store::UserStore::reserve_answer
pub(super) async fn reserve(conn: &mut Tx<'_>, key: &AuditKey, lockout: &Lockout) -> Result<AnswerGate, sqlx::Error> {
    let (tenant, user, at) = (lockout.tenant.as_str(), lockout.user.as_str(), to_unix_ms(lockout.at));
    let challenge = lockout.challenge.as_ref().map(ChallengeId::as_str);
    savepoint!(conn)?;
    let counted = fetch!(conn, optional(i64,), count_user_answer!(), [at, tenant, user, i64::from(lockout.threshold)])?;
    let Some((failures,)) = counted else {
        // Locked, or as many answers counted as the threshold allows: the
        // user is locked (now, if no answer has locked it yet).
        lock_at_threshold(conn, key, lockout).await?;
        let (until,) =
            fetch!(conn, one(i64,), "SELECT locked_until FROM users WHERE tenant_id = $1 AND id = $2", [tenant, user])?;
        release_savepoint!(conn)?;
        return Ok(AnswerGate::Locked(from_unix_ms(until)));
    };
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    let mut attempt = 0;
    if let Some(id) = challenge {
        let taken = fetch!(
            conn,
            optional(i64,),
            take_challenge_attempt!(""),
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
    let moved = match used {
        None => 1,
        Some(AuthenticatorUse::Counter { id, value }) => exec!(
            conn,
            "UPDATE authenticators SET counter = $1, last_used_at = $2 \
             WHERE tenant_id = $3 AND id = $4 AND status = 'active' AND counter < $1",
            [*value, at, c.tenant_id.as_str(), id.as_str()]
        )?,
        Some(AuthenticatorUse::RecoveryCode { id, index }) => exec!(
            conn,
            "UPDATE recovery_codes SET used_at = $1 WHERE authenticator_id = $2 AND idx = $3 AND used_at IS NULL",
            [at, id.as_str(), *index]
        )?,
    };
    if moved != 1 {
        // Nothing was changed: closing the savepoint keeps nothing.
        release_savepoint!(conn)?;
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
    exec!(
        conn,
        "UPDATE users SET failures = 0, updated_at = $1 WHERE tenant_id = $2 AND id = $3",
        [at, c.tenant_id.as_str(), &c.user_id]
    )?;
    insert_event(conn, event, "").await?;
    append_audit(conn, key, c.tenant_id.as_str(), audit).await?;
    release_savepoint!(conn)?;
    Ok(Step::Done(Box::new(approved)))
}
