//! An answer already known right is counted and approved in one write
//! (`reserve_and_approve`): it approves only what the count let through,
//! exactly as counting and then approving would.

use serde_json::json;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::{Authenticator, AuthenticatorStatus, AuthenticatorUse};
use vouchsafe_core::challenge::{Challenge, ChallengeStatus};
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{AnswerGate, ApprovalOutcome, AuditStore, Lockout, StoreError, TenantStore, UserStore};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::user::Contacts;
use vouchsafe_store::SqlStore;

use crate::people::{challenge, totp};
use crate::store;

const T0: i64 = 1_700_000_000;

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0 + s).unwrap()
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry::success("key_test", action, "target", at(0))
}

/// A tenant with user `u1`, an active TOTP authenticator of theirs, and
/// `challenges` pending challenges of theirs (one action each).
async fn user_with_challenges(store: &SqlStore, challenges: usize) -> (Tenant, Authenticator, Vec<Challenge>) {
    let (t, default) = Tenant::new("acme", at(0)).unwrap();
    store.create_tenant(&t, &default, &Settings::default(), &audit("tenant.created")).await.unwrap();
    let contacts = Contacts { phone: None, email: None, display_name: None };
    store.put_user(&t.id, "u1", &contacts, false, at(0), &audit("user.put")).await.unwrap();
    let a = totp(&t, "u1", AuthenticatorStatus::Active);
    store.create_authenticator(&a, &[], false, &audit("authenticator.created")).await.unwrap();
    let mut made = Vec::new();
    for n in 0..challenges {
        let mut c = challenge(&t, "u1", 300);
        c.action = format!("action-{n}");
        store.create_challenge(&c, &audit("challenge.created")).await.unwrap();
        made.push(c);
    }
    (t, a, made)
}

fn lockout(t: &Tenant, threshold: u32) -> Lockout {
    Lockout {
        threshold,
        lock_until: at(1_000),
        tenant: t.id.clone(),
        user: "u1".into(),
        challenge: None,
        actor: "key_test".into(),
        at: at(3),
    }
}

/// Counts `c`'s answer with step `value` of `a` and approves it if counted.
async fn answer(
    store: &SqlStore,
    c: &Challenge,
    a: &Authenticator,
    value: i64,
    lockout: &Lockout,
) -> (AnswerGate, Option<ApprovalOutcome>) {
    let event = Event::new(c.tenant_id.clone(), EventType::ChallengeApproved, json!({}), at(3));
    let used = AuthenticatorUse::Counter { id: a.id.clone(), value };
    let lockout = Lockout { challenge: Some(c.id.clone()), ..lockout.clone() };
    store.reserve_and_approve(c, &lockout, Some(&used), (&event, &audit("challenge.approved"))).await.unwrap()
}

async fn approvals(store: &SqlStore, t: &Tenant) -> usize {
    let entries = store.audit_events(&t.id, 0, 100).await.unwrap();
    entries.iter().filter(|e| e.entry.action == "challenge.approved").count()
}

/// A right answer takes its attempt and approves in the same write (the
/// counter moved, the user's failures cleared, one audit entry); a
/// replayed step is counted and approves nothing; a locked user's answer
/// and an ended challenge's are not counted and move no counter.
#[tokio::test]
async fn a_known_right_answer_is_counted_and_approved_together() {
    let (store, _db) = store().await;
    let (t, a, cs) = user_with_challenges(&store, 3).await;
    let counter = || async { store.authenticator(&t.id, "u1", &a.id).await.unwrap().counter };
    let failures = || async { store.user(&t.id, "u1").await.unwrap().failures };
    let three = lockout(&t, 3);

    let (gate, outcome) = answer(&store, &cs[0], &a, 50, &three).await;
    assert_eq!(gate, AnswerGate::Counted { attempt: 1, failures: 1 });
    let Some(ApprovalOutcome::Approved(written)) = outcome else { panic!("not approved: {outcome:?}") };
    assert_eq!(*written, store.challenge(&t.id, &cs[0].id).await.unwrap(), "answers what it wrote");
    assert_eq!((written.status, written.attempts, written.verified_at), (ChallengeStatus::Approved, 1, Some(at(3))));
    assert_eq!((counter().await, failures().await, approvals(&store, &t).await), (50, 0, 1));

    let (gate, outcome) = answer(&store, &cs[1], &a, 50, &three).await;
    assert_eq!((gate, outcome), (AnswerGate::Counted { attempt: 1, failures: 1 }, Some(ApprovalOutcome::Replayed)));
    let replayed = store.challenge(&t.id, &cs[1].id).await.unwrap();
    assert_eq!((replayed.status, replayed.attempts), (ChallengeStatus::Pending, 1), "counted, not approved");
    assert_eq!((counter().await, failures().await, approvals(&store, &t).await), (50, 1, 1));

    let (gate, outcome) = answer(&store, &cs[0], &a, 52, &lockout(&t, 100)).await;
    assert_eq!((gate, outcome), (AnswerGate::NotPending, None), "an approved challenge takes no answer");
    assert_eq!((counter().await, approvals(&store, &t).await), (50, 1));
    assert_eq!(store.challenge(&t.id, &cs[0].id).await.unwrap().attempts, 1);

    // At a threshold of 1 the user's one failure locks them: the next
    // answer, right as it is, is refused before anything is counted.
    let (gate, outcome) = answer(&store, &cs[2], &a, 51, &lockout(&t, 1)).await;
    assert_eq!((gate, outcome), (AnswerGate::Locked(at(1_000)), None));
    let refused = store.challenge(&t.id, &cs[2].id).await.unwrap();
    assert_eq!((refused.status, refused.attempts), (ChallengeStatus::Pending, 0));
    assert_eq!((counter().await, approvals(&store, &t).await), (50, 1), "a locked user's answer moves nothing");
}

/// Many copies of one right answer at once: one approval, one counter
/// move, no more attempts taken than the challenge allows.
#[tokio::test]
async fn concurrent_copies_of_a_right_answer_approve_once() {
    let (store, _db) = store().await;
    let (t, a, cs) = user_with_challenges(&store, 1).await;
    let generous = lockout(&t, 1_000);
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let (store, c, a, generous) = (store.clone(), cs[0].clone(), a.clone(), generous.clone());
            tokio::spawn(async move { answer(&store, &c, &a, 77, &generous).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let approved = outcomes.iter().filter(|(_, o)| matches!(o, Some(ApprovalOutcome::Approved(_)))).count();
    assert_eq!(approved, 1, "{outcomes:?}");
    let counted = outcomes.iter().filter(|(g, _)| matches!(g, AnswerGate::Counted { .. })).count();
    let c = store.challenge(&t.id, &cs[0].id).await.unwrap();
    assert_eq!(c.status, ChallengeStatus::Approved);
    assert!(c.attempts >= 1 && c.attempts <= c.max_attempts, "attempts {}", c.attempts);
    assert_eq!(u32::try_from(counted).unwrap(), c.attempts, "each counted answer took one attempt");
    assert_eq!(store.authenticator(&t.id, "u1", &a.id).await.unwrap().counter, 77);
    assert_eq!(approvals(&store, &t).await, 1);
}

/// The count and the approval are one answer's: a lockout naming another
/// challenge (or none) is refused before anything is written, so the
/// attempt taken and the challenge approved can never be two different
/// challenges'.
#[tokio::test]
async fn an_approval_counted_against_another_challenge_is_refused() {
    let (store, _db) = store().await;
    let (t, a, cs) = user_with_challenges(&store, 2).await;
    let event = Event::new(t.id.clone(), EventType::ChallengeApproved, json!({}), at(3));
    let used = AuthenticatorUse::Counter { id: a.id.clone(), value: 60 };
    for named in [Some(cs[1].id.clone()), None] {
        let elsewhere = Lockout { challenge: named, ..lockout(&t, 100) };
        let refused =
            store.reserve_and_approve(&cs[0], &elsewhere, Some(&used), (&event, &audit("challenge.approved"))).await;
        assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    }
    for c in &cs {
        let unchanged = store.challenge(&t.id, &c.id).await.unwrap();
        assert_eq!((unchanged.status, unchanged.attempts), (ChallengeStatus::Pending, 0));
    }
    assert_eq!(store.user(&t.id, "u1").await.unwrap().failures, 0);
    assert_eq!(store.authenticator(&t.id, "u1", &a.id).await.unwrap().counter, a.counter);
}

/// What a right answer reports as counted, and leaves, is what counting
/// it and then approving it would: a user with failures has this answer
/// counted on top of them, a user whose lock ran out starts afresh at
/// one, and either way the approval clears the count and the lock.
#[tokio::test]
async fn a_right_answer_counts_as_the_two_steps_would_and_clears_the_count() {
    let (store, _db) = store().await;
    let (t, a, cs) = user_with_challenges(&store, 2).await;
    let user = || async { store.user(&t.id, "u1").await.unwrap() };
    let five = lockout(&t, 5);
    for _ in 0..2 {
        assert!(matches!(store.reserve_answer(&five).await.unwrap(), AnswerGate::Counted { .. }));
    }
    let (gate, outcome) = answer(&store, &cs[0], &a, 50, &five).await;
    assert_eq!(gate, AnswerGate::Counted { attempt: 1, failures: 3 });
    assert!(matches!(outcome, Some(ApprovalOutcome::Approved(_))), "{outcome:?}");
    assert_eq!((user().await.failures, user().await.locked_until), (0, None));

    // One failure at a threshold of one locks the user until 10 s.
    let briefly = Lockout { lock_until: at(10), ..lockout(&t, 1) };
    assert!(matches!(store.reserve_answer(&briefly).await.unwrap(), AnswerGate::Counted { .. }));
    assert_eq!(store.reserve_answer(&briefly).await.unwrap(), AnswerGate::Locked(at(10)));
    let after = Lockout { at: at(20), ..briefly };
    let (gate, outcome) = answer(&store, &cs[1], &a, 51, &after).await;
    assert_eq!(gate, AnswerGate::Counted { attempt: 1, failures: 1 }, "a lock that ran out counts afresh");
    let Some(ApprovalOutcome::Approved(approved)) = outcome else { panic!("not approved: {outcome:?}") };
    assert_eq!(
        (approved.status, approved.attempts, approved.verified_at),
        (ChallengeStatus::Approved, 1, Some(at(20)))
    );
    assert_eq!((user().await.failures, user().await.locked_until), (0, None));
    assert_eq!(store.authenticator(&t.id, "u1", &a.id).await.unwrap().counter, 51);
    assert_eq!(approvals(&store, &t).await, 2);
}

/// A wrong answer's count is the user's row in `user_failures`, not a
/// write of their row in `users`: with a million users that row was a
/// page of its own at each answer (`bench/RESULTS.md`). The user's
/// `updated_at` says whether their row was written; their count is read
/// beside it, and a right answer deletes it.
#[tokio::test]
async fn a_count_writes_the_users_failures_not_their_row() {
    let (store, _db) = store().await;
    let (t, a, challenges) = user_with_challenges(&store, 2).await;
    let before = store.user(&t.id, "u1").await.unwrap();
    let counted = Lockout { challenge: Some(challenges[0].id.clone()), ..lockout(&t, 5) };
    assert_eq!(store.reserve_answer(&counted).await.unwrap(), AnswerGate::Counted { attempt: 1, failures: 1 });
    assert_eq!(store.reserve_answer(&counted).await.unwrap(), AnswerGate::Counted { attempt: 2, failures: 2 });
    let after = store.user(&t.id, "u1").await.unwrap();
    assert_eq!(after.failures, 2, "the count is read beside the user");
    assert_eq!(after.updated_at, before.updated_at, "the user's row was written");
    let (gate, outcome) = answer(&store, &challenges[1], &a, 50, &lockout(&t, 5)).await;
    assert_eq!(gate, AnswerGate::Counted { attempt: 1, failures: 3 });
    assert!(matches!(outcome, Some(ApprovalOutcome::Approved(_))), "{outcome:?}");
    assert_eq!(store.user(&t.id, "u1").await.unwrap().failures, 0, "a right answer clears the count");
}
