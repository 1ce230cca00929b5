//! The storage contract of users, authenticators, challenges and caller
//! verifications: every transition is conditional, happens once, stays in
//! its tenant and writes its event and audit entry with it.

use serde_json::json;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::recovery::StoredCode;
use vouchsafe_core::authenticator::{
    Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorStatus, AuthenticatorUse,
};
use vouchsafe_core::caller::{CallerMethod, CallerStatus, CallerVerification};
use vouchsafe_core::challenge::{Challenge, ChallengeStatus, Factor};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::ids::{AuthenticatorId, CallerVerificationId, ChallengeId};
use vouchsafe_core::otp::Algorithm;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{ApprovalOutcome, AuditStore, CallerStore, StoreError, TenantStore, UserStore};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::user::Contacts;
use vouchsafe_store::SqlStore;

use crate::store;

const T0: i64 = 1_700_000_000;

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0 + s).unwrap()
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry::success("key_test", action, "target", at(0))
}

async fn tenant(store: &SqlStore, name: &str) -> Tenant {
    let (t, default) = Tenant::new(name, at(0)).unwrap();
    store.create_tenant(&t, &default, &Settings::default(), &audit("tenant.created")).await.unwrap();
    t
}

async fn user(store: &SqlStore, t: &Tenant, id: &str) {
    let contacts = Contacts { phone: Some("+447400123456".into()), email: None, display_name: Some("Ann".into()) };
    store.put_user(&t.id, id, &contacts, false, at(0), &audit("user.put")).await.unwrap();
}

pub(crate) fn totp(t: &Tenant, user: &str, status: AuthenticatorStatus) -> Authenticator {
    Authenticator {
        id: AuthenticatorId::generate(),
        tenant_id: t.id.clone(),
        user_id: user.into(),
        kind: AuthenticatorKind::Totp,
        status,
        label: Some("phone".into()),
        params: AuthenticatorParams::Totp { issuer: None, algorithm: Algorithm::Sha1, digits: 6, period: 30 },
        sealed: vec![1, 2, 3],
        counter: -1,
        created_at: at(0),
        updated_at: at(0),
        last_used_at: None,
    }
}

/// A pending TOTP login challenge of `user`, made at `T0`, that lives
/// `lives_s` seconds.
pub(crate) fn challenge(t: &Tenant, user: &str, lives_s: i64) -> Challenge {
    Challenge {
        id: ChallengeId::generate(),
        tenant_id: t.id.clone(),
        user_id: user.into(),
        factor: Factor::Totp,
        action: "login".into(),
        redirect_url: None,
        status: ChallengeStatus::Pending,
        attempts: 0,
        max_attempts: 5,
        verification_id: None,
        passkey_options: None,
        passkey_state: None,
        expires_at: at(lives_s),
        verified_at: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// A user is one row per tenant and id: `put` creates then updates it,
/// another tenant never sees it, and deleting it takes its
/// authenticators and challenges along.
#[tokio::test]
async fn users_are_upserted_isolated_and_deleted_with_what_hangs_off_them() {
    let (store, _db) = store().await;
    let (a, b) = (tenant(&store, "a").await, tenant(&store, "b").await);
    user(&store, &a, "u1").await;
    let renamed = Contacts { phone: None, email: Some("ann@example.com".into()), display_name: None };
    let updated = store.put_user(&a.id, "u1", &renamed, true, at(5), &audit("user.put")).await.unwrap();
    assert_eq!((updated.email.as_deref(), updated.phone, updated.privileged), (Some("ann@example.com"), None, true));
    assert_eq!(updated.created_at, at(0), "an update keeps the creation time");
    assert!(matches!(store.user(&b.id, "u1").await, Err(StoreError::NotFound)), "tenants are isolated");
    let token = totp(&a, "u1", AuthenticatorStatus::Active);
    store.create_authenticator(&token, &[], false, &audit("authenticator.created")).await.unwrap();
    let c = challenge(&a, "u1", 300);
    store.create_challenge(&c, &audit("challenge.created")).await.unwrap();
    assert!(matches!(store.delete_user(&b.id, "u1", &audit("user.deleted")).await, Err(StoreError::NotFound)));
    store.delete_user(&a.id, "u1", &audit("user.deleted")).await.unwrap();
    assert!(matches!(store.user(&a.id, "u1").await, Err(StoreError::NotFound)));
    assert!(store.authenticators(&a.id, "u1").await.unwrap().is_empty());
    assert!(matches!(store.challenge(&a.id, &c.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_user(&a.id, "u1", &audit("user.deleted")).await, Err(StoreError::NotFound)));
    let deleted = store.audit_events(&a.id, 0, 100).await.unwrap();
    assert_eq!(deleted.iter().filter(|e| e.entry.action == "user.deleted").count(), 1, "one deletion, one entry");
}

/// An enrollment activates once, only forward of its counter; an active
/// counter only moves forward; recovery codes are spent once each.
#[tokio::test]
async fn authenticators_activate_once_and_counters_only_move_forward() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    user(&store, &t, "u1").await;
    let pending = totp(&t, "u1", AuthenticatorStatus::Unconfirmed);
    store.create_authenticator(&pending, &[], false, &audit("authenticator.created")).await.unwrap();
    let (confirmed, resynced) = (audit("authenticator.confirmed"), audit("authenticator.resynchronised"));
    let activate = |counter| store.activate_authenticator(&t.id, &pending.id, counter, None, at(1), &confirmed);
    assert!(activate(10).await.unwrap());
    assert!(!activate(11).await.unwrap(), "an active authenticator is not activated again");
    let advance = |value| store.advance_authenticator(&t.id, &pending.id, value, at(2), &resynced);
    assert!(!advance(10).await.unwrap(), "not to the same step");
    assert!(!advance(9).await.unwrap(), "never backwards");
    assert!(advance(12).await.unwrap());
    assert_eq!(store.authenticator(&t.id, "u1", &pending.id).await.unwrap().counter, 12);

    let mut codes = totp(&t, "u1", AuthenticatorStatus::Active);
    codes.kind = AuthenticatorKind::RecoveryCodes;
    codes.params = AuthenticatorParams::RecoveryCodes { count: 2 };
    let stored =
        [StoredCode { hash: "h0".into(), tag: "t0".into() }, StoredCode { hash: "h1".into(), tag: "t1".into() }];
    store.create_authenticator(&codes, &stored, true, &audit("authenticator.created")).await.unwrap();
    assert_eq!(store.unspent_recovery_codes(&codes.id, None).await.unwrap().len(), 2);
    let event = Event::new(t.id.clone(), EventType::ChallengeApproved, json!({}), at(3));
    let spend = AuthenticatorUse::RecoveryCode { id: codes.id.clone(), index: 1 };
    let first = challenge(&t, "u1", 300);
    let second = challenge(&t, "u1", 300);
    for c in [&first, &second] {
        store.create_challenge(c, &audit("challenge.created")).await.unwrap();
    }
    let approved = audit("challenge.approved");
    let approve = |c| store.approve_challenge(c, Some(&spend), at(3), &event, &approved);
    let outcome = approve(&first).await.unwrap();
    let stored = store.challenge(&t.id, &first.id).await.unwrap();
    assert_eq!(outcome, ApprovalOutcome::Approved(Box::new(stored)), "the approval answers what it wrote");
    assert_eq!(approve(&second).await.unwrap(), ApprovalOutcome::Replayed, "a spent code approves nothing");
    assert_eq!(store.challenge(&t.id, &second.id).await.unwrap().status, ChallengeStatus::Pending);
    assert_eq!(store.unspent_recovery_codes(&codes.id, None).await.unwrap(), vec![(0, "h0".to_owned())]);
}

/// A code's step approves one challenge and moves its authenticator's
/// counter only then: the same step on another challenge is a replay that
/// changes nothing, and a challenge that cannot be approved (ended, or its
/// user locked) moves no counter.
#[tokio::test]
async fn a_code_step_approves_one_challenge_and_moves_the_counter_only_with_it() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    user(&store, &t, "u1").await;
    let a = totp(&t, "u1", AuthenticatorStatus::Active);
    store.create_authenticator(&a, &[], false, &audit("authenticator.created")).await.unwrap();
    let store = &store;
    let counter = || async { store.authenticator(&t.id, "u1", &a.id).await.unwrap().counter };
    let step = |value| AuthenticatorUse::Counter { id: a.id.clone(), value };
    let approved = audit("challenge.approved");
    // One pending challenge per user and action.
    let (first, mut second, mut ended) = (challenge(&t, "u1", 300), challenge(&t, "u1", 300), challenge(&t, "u1", 2));
    (second.action, ended.action) = ("payment".into(), "export".into());
    for c in [&first, &second, &ended] {
        store.create_challenge(c, &audit("challenge.created")).await.unwrap();
    }
    let approve = |c, value| {
        let used = step(value);
        // Each approval writes an event of its own.
        let event = Event::new(t.id.clone(), EventType::ChallengeApproved, json!({}), at(3));
        let approved = &approved;
        async move { store.approve_challenge(c, Some(&used), at(3), &event, approved).await.unwrap() }
    };

    assert_eq!(approve(&ended, 50).await, ApprovalOutcome::NotPending, "expired at 2 s");
    assert_eq!(counter().await, -1, "an ended challenge moves no counter");
    let ApprovalOutcome::Approved(written) = approve(&first, 50).await else { panic!("not approved") };
    assert_eq!(*written, store.challenge(&t.id, &first.id).await.unwrap());
    assert_eq!((written.status, written.verified_at), (ChallengeStatus::Approved, Some(at(3))));
    assert_eq!(counter().await, 50);
    assert_eq!(approve(&second, 50).await, ApprovalOutcome::Replayed, "the same step again");
    assert_eq!(approve(&second, 49).await, ApprovalOutcome::Replayed, "an older step");
    assert_eq!(store.challenge(&t.id, &second.id).await.unwrap().status, ChallengeStatus::Pending);
    assert_eq!(approve(&first, 51).await, ApprovalOutcome::NotPending, "approved once");
    assert_eq!(counter().await, 50, "a settled challenge moves no counter");
    assert!(matches!(approve(&second, 51).await, ApprovalOutcome::Approved(_)), "the next step approves");
    assert_eq!(counter().await, 51);
    let entries = store.audit_events(&t.id, 0, 100).await.unwrap();
    let approvals = entries.iter().filter(|e| e.entry.action == "challenge.approved").count();
    assert_eq!(approvals, 2, "one audit entry per approval, none for a refusal");
}

/// A challenge read for an answer brings, in one read, what the answer
/// needs: the challenge as stored, its tenant's settings as a read of them
/// finds them (a change made by another node seen at once, kept parsed or
/// not), and every authenticator of its user in the order `authenticators`
/// lists them — none for a user without, never another user's or tenant's.
#[tokio::test]
async fn a_challenge_to_answer_brings_its_settings_and_its_users_authenticators() {
    let (store, db) = store().await;
    let other_node = vouchsafe_store::testing::connect(&db).await.unwrap();
    let (t, elsewhere) = (tenant(&store, "a").await, tenant(&store, "b").await);
    for (tenant, id) in [(&t, "u1"), (&t, "u2"), (&t, "u3"), (&elsewhere, "u1")] {
        user(&store, tenant, id).await;
    }
    let mut later = totp(&t, "u1", AuthenticatorStatus::Unconfirmed);
    later.created_at = at(5);
    let mut earlier = totp(&t, "u1", AuthenticatorStatus::Active);
    earlier.created_at = at(1);
    let others = [totp(&t, "u2", AuthenticatorStatus::Active), totp(&elsewhere, "u1", AuthenticatorStatus::Active)];
    for a in [&later, &earlier, &others[0], &others[1]] {
        store.create_authenticator(a, &[], false, &audit("authenticator.created")).await.unwrap();
    }
    let c = challenge(&t, "u1", 300);
    let without = challenge(&t, "u3", 300);
    for c in [&c, &without] {
        store.create_challenge(c, &audit("challenge.created")).await.unwrap();
    }

    let read = store.challenge_to_answer(&t.id, &c.id).await.unwrap();
    assert_eq!(read.challenge, store.challenge(&t.id, &c.id).await.unwrap());
    assert_eq!(read.settings, store.settings(&t.id).await.unwrap());
    let ids: Vec<_> = read.authenticators.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids, [earlier.id.clone(), later.id.clone()], "the user's own, oldest first");
    assert_eq!(read.authenticators, store.authenticators(&t.id, "u1").await.unwrap());

    let mut s = Settings::default();
    s.lockout.threshold = 3;
    other_node.replace_settings(&t.id, &s, 1, &audit("settings.updated")).await.unwrap();
    for _ in 0..2 {
        // Parsed afresh at the new version, then served as kept.
        let read = store.challenge_to_answer(&t.id, &c.id).await.unwrap();
        assert_eq!((read.settings.value.lockout.threshold, read.settings.version), (3, 2));
    }

    let read = store.challenge_to_answer(&t.id, &without.id).await.unwrap();
    assert_eq!((read.challenge.id, read.authenticators.len()), (without.id.clone(), 0));
    assert!(matches!(store.challenge_to_answer(&elsewhere.id, &c.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.challenge_to_answer(&t.id, &ChallengeId::generate()).await, Err(StoreError::NotFound)));
}

/// A challenge is approved once; it expires only when its time is up, and
/// its result token is redeemed once.
#[tokio::test]
async fn challenges_approve_expire_and_redeem_once() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    user(&store, &t, "u1").await;
    let c = challenge(&t, "u1", 300);
    store.create_challenge(&c, &audit("challenge.created")).await.unwrap();
    let found = store.pending_challenge(&t.id, "u1", "login", at(10)).await.unwrap();
    assert_eq!(found.map(|f| f.id), Some(c.id.clone()));
    assert!(!store.expire_challenge(&t.id, &c.id, at(299)).await.unwrap(), "not before its time");
    assert!(store.redeem_challenge_token(&t.id, &c.id, at(10)).await.unwrap().is_none(), "nothing to redeem yet");
    let event = Event::new(t.id.clone(), EventType::ChallengeApproved, json!({}), at(20));
    let approved = audit("challenge.approved");
    let approve = || store.approve_challenge(&c, None, at(20), &event, &approved);
    // The approval answers the challenge as written: what a read finds.
    let ApprovalOutcome::Approved(written) = approve().await.unwrap() else { panic!("not approved") };
    assert_eq!((written.status, written.verified_at), (ChallengeStatus::Approved, Some(at(20))));
    assert_eq!(*written, store.challenge(&t.id, &c.id).await.unwrap());
    assert_eq!(approve().await.unwrap(), ApprovalOutcome::NotPending);
    let redeemed = store.redeem_challenge_token(&t.id, &c.id, at(21)).await.unwrap();
    assert_eq!(redeemed.map(|r| r.status), Some(ChallengeStatus::Approved));
    assert!(store.redeem_challenge_token(&t.id, &c.id, at(22)).await.unwrap().is_none(), "a token validates once");
    assert!(!store.expire_challenge(&t.id, &c.id, at(400)).await.unwrap(), "an approved challenge does not expire");

    let late = challenge(&t, "u1", 60);
    store.create_challenge(&late, &audit("challenge.created")).await.unwrap();
    assert!(store.expire_challenge(&t.id, &late.id, at(60)).await.unwrap());
    assert_eq!(store.challenge(&t.id, &late.id).await.unwrap().status, ChallengeStatus::Expired);
    let too_late = store.approve_challenge(&late, None, at(61), &event, &audit("challenge.approved")).await.unwrap();
    assert_eq!(too_late, ApprovalOutcome::NotPending);
}

fn caller(t: &Tenant, record: &str, at_s: i64) -> CallerVerification {
    CallerVerification {
        id: CallerVerificationId::generate(),
        tenant_id: t.id.clone(),
        record_id: record.into(),
        record_type: "case".into(),
        user_id: None,
        destination: "+447400123456".into(),
        channel: Channel::Sms,
        agent_id: Some("agent-7".into()),
        status: CallerStatus::Pending,
        link_hash: format!("link-{at_s}-{}", CallerVerificationId::generate()),
        code_hash: "code".into(),
        attempts: 0,
        max_attempts: 2,
        time_allowed_s: 60,
        expires_at: at(at_s + 60),
        completed_at: None,
        created_at: at(at_s),
        updated_at: at(at_s),
    }
}

/// A caller verification ends once, with one `completed` event: verified
/// only in time, expired only after it, failed at the last wrong code.
#[tokio::test]
async fn caller_verifications_end_once_with_their_event() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    let (verified, expired, failed) = (caller(&t, "500A", 0), caller(&t, "500A", 1), caller(&t, "500A", 2));
    for cv in [&verified, &expired, &failed] {
        store.create_caller_verification(cv, &audit("caller_verification.created")).await.unwrap();
    }
    let end = |cv: &CallerVerification, status, s| {
        let (id, method) = (cv.id.clone(), Some(CallerMethod::Link));
        let store = store.clone();
        let tenant = t.id.clone();
        async move { store.end_caller_verification(&tenant, &id, status, at(s), method, &audit("ended")).await }
    };
    assert!(end(&verified, CallerStatus::Verified, 61).await.unwrap().is_none(), "not after its time");
    assert_eq!(
        end(&verified, CallerStatus::Verified, 30).await.unwrap().map(|v| v.status),
        Some(CallerStatus::Verified)
    );
    assert!(end(&verified, CallerStatus::Denied, 31).await.unwrap().is_none(), "it ended once");
    assert!(end(&expired, CallerStatus::Expired, 60).await.unwrap().is_none(), "not before its time");
    assert_eq!(end(&expired, CallerStatus::Expired, 61).await.unwrap().map(|v| v.status), Some(CallerStatus::Expired));
    let failing = audit("failed");
    let wrong = |s| store.caller_wrong_code(&t.id, &failed.id, at(s), Some(CallerMethod::Code), &failing);
    assert_eq!(wrong(10).await.unwrap().map(|v| (v.status, v.attempts)), Some((CallerStatus::Pending, 1)));
    assert_eq!(wrong(11).await.unwrap().map(|v| (v.status, v.attempts)), Some((CallerStatus::Failed, 2)));
    assert!(wrong(12).await.unwrap().is_none(), "a failed verification counts no more");
    let due = store.due_caller_verifications(at(1_000), 10).await.unwrap();
    assert!(due.is_empty(), "nothing is left pending: {due:?}");
    let log = store.record_transactions(&t.id, "500A", 10).await.unwrap();
    assert_eq!(log.iter().map(|v| v.id.clone()).collect::<Vec<_>>(), [failed.id, expired.id, verified.id]);
    let other = tenant(&store, "b").await;
    assert!(store.record_transactions(&other.id, "500A", 10).await.unwrap().is_empty(), "tenants are isolated");
    let entries = store.audit_events(&t.id, 0, 100).await.unwrap();
    assert_eq!(entries.iter().filter(|e| e.entry.action == "ended").count(), 2);
    assert_eq!(entries.iter().filter(|e| e.entry.action == "failed").count(), 1, "only the failing wrong code");
}

/// Every answer reads all of its user's authenticators, so a user has at
/// most AUTHENTICATORS_PER_USER, unconfirmed ones among them, counted
/// inside the write: a burst of concurrent enrollments of one user stores
/// exactly up to the limit and audits only what it stored; another user
/// keeps room of their own, and a deleted authenticator frees its place.
#[tokio::test]
async fn a_burst_of_enrollments_of_one_user_stores_exactly_up_to_the_limit() {
    let (store, _db) = store().await;
    let store = std::sync::Arc::new(store);
    let t = tenant(&store, "a").await;
    user(&store, &t, "u1").await;
    user(&store, &t, "u2").await;
    let head = store.audit_head(&t.id).await.unwrap();
    let limit = usize::try_from(vouchsafe_core::authenticator::AUTHENTICATORS_PER_USER).unwrap();
    let tasks: Vec<_> = (0..limit + 20)
        .map(|_| {
            let (store, a) = (store.clone(), totp(&t, "u1", AuthenticatorStatus::Unconfirmed));
            tokio::spawn(
                async move { store.create_authenticator(&a, &[], false, &audit("authenticator.created")).await },
            )
        })
        .collect();
    assert_eq!(crate::tenant_limits::tally(tasks).await, (limit, 20));
    let held = store.authenticators(&t.id, "u1").await.unwrap();
    assert_eq!(held.len(), limit);
    assert_eq!(
        store.audit_head(&t.id).await.unwrap() - head,
        i64::try_from(limit).unwrap(),
        "refusals are not audited"
    );

    let other = totp(&t, "u2", AuthenticatorStatus::Unconfirmed);
    store.create_authenticator(&other, &[], false, &audit("authenticator.created")).await.unwrap();
    store.delete_authenticator(&t.id, "u1", &held[0].id, &audit("authenticator.deleted")).await.unwrap();
    let again = totp(&t, "u1", AuthenticatorStatus::Unconfirmed);
    store.create_authenticator(&again, &[], false, &audit("authenticator.created")).await.unwrap();
    let one_more = totp(&t, "u1", AuthenticatorStatus::Unconfirmed);
    let refused = store.create_authenticator(&one_more, &[], false, &audit("authenticator.created")).await;
    assert!(matches!(refused, Err(StoreError::LimitReached(_))));
}
