//! On PostgreSQL writes run side by side, so every write that locks more
//! than one of a user's rows takes the user's row first (the `users`
//! module says why): two writes for one user then wait on each other in
//! turn and never deadlock. Each test here holds the user's row from a
//! connection of its own, starts one write, and once that write waits,
//! tries the write's other rows without waiting: none of them may be
//! taken yet. Then it lets go and the write must finish as it would have.
//!
//! SQLite's one writer runs one write at a time: there is no order to
//! check there, and these tests check only that each write finishes.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::recovery::StoredCode;
use vouchsafe_core::authenticator::{
    Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorStatus, AuthenticatorUse,
};
use vouchsafe_core::challenge::{Challenge, ChallengeStatus};
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{AnswerGate, ApprovalOutcome, FailureEffects, Lockout, StoreError, TenantStore, UserStore};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::user::Contacts;
use vouchsafe_store::SqlStore;
use vouchsafe_store::testing::{TestDatabase, is_postgres};

use crate::people::{challenge, totp};
use crate::store;

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap()
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry::success("key_test", action, "target", at(0))
}

/// A tenant, its user `u1`, an active TOTP authenticator, recovery codes
/// and a pending challenge, all of `u1`.
struct Fixture {
    t: Tenant,
    totp: Authenticator,
    codes: Authenticator,
    c: Challenge,
}

async fn fixture(store: &SqlStore) -> Fixture {
    let (t, default) = Tenant::new("acme", at(0)).unwrap();
    store.create_tenant(&t, &default, &Settings::default(), &audit("tenant.created")).await.unwrap();
    let contacts = Contacts { phone: None, email: None, display_name: None };
    store.put_user(&t.id, "u1", &contacts, false, at(0), &audit("user.put")).await.unwrap();
    let code = totp(&t, "u1", AuthenticatorStatus::Active);
    store.create_authenticator(&code, &[], false, &audit("authenticator.created")).await.unwrap();
    let mut codes = totp(&t, "u1", AuthenticatorStatus::Active);
    codes.kind = AuthenticatorKind::RecoveryCodes;
    codes.params = AuthenticatorParams::RecoveryCodes { count: 1 };
    let stored = [StoredCode { hash: "h0".into(), tag: "t0".into() }];
    store.create_authenticator(&codes, &stored, true, &audit("authenticator.created")).await.unwrap();
    let c = challenge(&t, "u1", 300);
    store.create_challenge(&c, &audit("challenge.created")).await.unwrap();
    Fixture { t, totp: code, codes, c }
}

fn lockout(f: &Fixture) -> Lockout {
    Lockout {
        threshold: 100,
        lock_until: at(1_000),
        tenant: f.t.id.clone(),
        user: "u1".into(),
        challenge: Some(f.c.id.clone()),
        actor: "key_test".into(),
        at: at(3),
    }
}

fn approved_event(f: &Fixture) -> Event {
    Event::new(f.t.id.clone(), EventType::ChallengeApproved, json!({}), at(3))
}

/// Each of the user's rows a write may lock besides the user's: a name
/// and a statement that takes it without waiting.
fn others(f: &Fixture) -> Vec<(&'static str, String)> {
    let lock = |table: &str, key: &str, id: &str| {
        format!("SELECT 1 FROM {table} WHERE {key} = '{id}' FOR NO KEY UPDATE NOWAIT")
    };
    vec![
        ("the challenge", lock("challenges", "id", f.c.id.as_str())),
        ("the TOTP authenticator", lock("authenticators", "id", f.totp.id.as_str())),
        ("the recovery codes' authenticator", lock("authenticators", "id", f.codes.id.as_str())),
        ("the recovery code", lock("recovery_codes", "authenticator_id", f.codes.id.as_str())),
        ("the user's failure count", lock("user_failures", "user_id", "u1")),
    ]
}

/// Statements that lock one row of `f`'s, for the test's own connection.
const LOCK_USER: &str = "SELECT 1 FROM users WHERE tenant_id = $1 AND id = 'u1' FOR NO KEY UPDATE";
const LOCK_CHALLENGE: &str = "SELECT 1 FROM challenges WHERE id = $1 FOR NO KEY UPDATE";

/// A connection of the test's own, in a transaction holding the row that
/// `lock` (binding `key`) locks, and `write` started once it holds it;
/// answers the connection and the running write once the write waits for
/// a lock. `setup` runs in the transaction first.
async fn hold_then_start<T: Send + 'static>(
    db: &TestDatabase,
    setup: &str,
    (lock, key): (&'static str, &str),
    write: impl Future<Output = T> + Send + 'static,
) -> (PgConnection, tokio::task::JoinHandle<T>) {
    let mut holder = PgConnection::connect(&db.url_text).await.unwrap();
    let mut watcher = PgConnection::connect(&db.url_text).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(setup.to_owned())).execute(&mut holder).await.unwrap();
    sqlx::query(lock).bind(key).execute(&mut holder).await.unwrap();
    let running = tokio::spawn(write);
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let until = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&mut watcher).await.unwrap() == 0 {
        assert!(Instant::now() < until, "the write never waited for the row held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (holder, running)
}

/// Runs `write` while user `u1`'s row is held, and answers which of the
/// user's other rows (see [`others`]) the write had locked by the time it
/// waited for the user's; then lets the write finish and answers its
/// result too. On SQLite, only the write's result.
async fn locked_before_the_user<T: Send + 'static>(
    db: &TestDatabase,
    f: &Fixture,
    write: impl Future<Output = T> + Send + 'static,
) -> (Vec<&'static str>, T) {
    if !is_postgres() {
        return (Vec::new(), write.await);
    }
    let (mut holder, running) = hold_then_start(db, "SELECT 1", (LOCK_USER, f.t.id.as_str()), write).await;
    let mut taken = Vec::new();
    for (name, sql) in others(f) {
        sqlx::query("SAVEPOINT probe").execute(&mut holder).await.unwrap();
        match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut holder).await {
            Ok(_) => sqlx::query("RELEASE SAVEPOINT probe").execute(&mut holder).await.unwrap(),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                taken.push(name);
                sqlx::query("ROLLBACK TO SAVEPOINT probe").execute(&mut holder).await.unwrap()
            }
            Err(e) => panic!("probing {name}: {e}"),
        };
    }
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    (taken, running.await.unwrap())
}

/// A TOTP code's approval (PostgreSQL's one statement) waits for the
/// user before it moves the counter or approves the challenge.
#[tokio::test]
async fn an_approval_takes_the_user_before_the_counter_and_the_challenge() {
    let (store, db) = store().await;
    let f = fixture(&store).await;
    let (s, c, event) = (store.clone(), f.c.clone(), approved_event(&f));
    let used = AuthenticatorUse::Counter { id: f.totp.id.clone(), value: 50 };
    let (taken, outcome) = locked_before_the_user(&db, &f, async move {
        s.approve_challenge(&c, Some(&used), at(3), &event, &audit("challenge.approved")).await
    })
    .await;
    assert_eq!(taken, Vec::<&str>::new());
    assert!(matches!(outcome, Ok(ApprovalOutcome::Approved(_))), "{outcome:?}");
    assert_eq!(store.authenticator(&f.t.id, "u1", &f.totp.id).await.unwrap().counter, 50);
}

/// A recovery code's approval (a transaction of steps) waits for the user
/// before it spends the code or approves the challenge.
#[tokio::test]
async fn a_recovery_codes_approval_takes_the_user_before_the_code_and_the_challenge() {
    let (store, db) = store().await;
    let f = fixture(&store).await;
    let (s, c, event) = (store.clone(), f.c.clone(), approved_event(&f));
    let used = AuthenticatorUse::RecoveryCode { id: f.codes.id.clone(), index: 0 };
    let (taken, outcome) = locked_before_the_user(&db, &f, async move {
        s.approve_challenge(&c, Some(&used), at(3), &event, &audit("challenge.approved")).await
    })
    .await;
    assert_eq!(taken, Vec::<&str>::new());
    assert!(matches!(outcome, Ok(ApprovalOutcome::Approved(_))), "{outcome:?}");
    assert!(store.unspent_recovery_codes(&f.codes.id, None).await.unwrap().is_empty(), "the code was spent");
}

/// Counting an answer waits for the user before it takes the challenge's
/// attempt.
#[tokio::test]
async fn counting_an_answer_takes_the_user_before_the_challenge() {
    let (store, db) = store().await;
    let f = fixture(&store).await;
    let (s, lockout) = (store.clone(), lockout(&f));
    let (taken, gate) = locked_before_the_user(&db, &f, async move { s.reserve_answer(&lockout).await }).await;
    assert_eq!(taken, Vec::<&str>::new());
    assert_eq!(gate.unwrap(), AnswerGate::Counted { attempt: 1, failures: 1 });
}

/// Counting the answer of a user who has failures already waits for the
/// user before it takes their failure count's row (an upsert of a row
/// that exists locks it) or the challenge's attempt.
#[tokio::test]
async fn counting_again_takes_the_user_before_the_failure_count() {
    let (store, db) = store().await;
    let f = fixture(&store).await;
    let first = store.reserve_answer(&lockout(&f)).await.unwrap();
    assert_eq!(first, AnswerGate::Counted { attempt: 1, failures: 1 });
    let (s, lockout) = (store.clone(), lockout(&f));
    let (taken, gate) = locked_before_the_user(&db, &f, async move { s.reserve_answer(&lockout).await }).await;
    assert_eq!(taken, Vec::<&str>::new());
    assert_eq!(gate.unwrap(), AnswerGate::Counted { attempt: 2, failures: 2 });
}

/// The wrong answer that took a challenge's last attempt waits for the
/// user before it denies the challenge.
#[tokio::test]
async fn a_last_wrong_answer_takes_the_user_before_the_challenge() {
    let (store, db) = store().await;
    let f = fixture(&store).await;
    let (s, c) = (store.clone(), f.c.clone());
    let denied = Event::new(f.t.id.clone(), EventType::ChallengeDenied, json!({}), at(3));
    let effects = FailureEffects { lockout: lockout(&f), denied: (denied, audit("challenge.denied")) };
    let (taken, outcome) =
        locked_before_the_user(
            &db,
            &f,
            async move { s.settle_wrong_answer(&c, c.max_attempts, at(3), &effects).await },
        )
        .await;
    assert_eq!(taken, Vec::<&str>::new());
    assert_eq!(outcome.unwrap().challenge.status, ChallengeStatus::Denied);
}

/// Deleting a user waits for the user's row before it deletes what hangs
/// off it; so does replacing an authenticator of one kind.
#[tokio::test]
async fn deleting_a_user_or_replacing_an_authenticator_takes_the_user_first() {
    let (store, db) = store().await;
    let f = fixture(&store).await;
    let (s, fresh) = (store.clone(), totp(&f.t, "u1", AuthenticatorStatus::Active));
    let (taken, replaced) = locked_before_the_user(&db, &f, async move {
        s.create_authenticator(&fresh, &[], true, &audit("authenticator.created")).await
    })
    .await;
    assert_eq!(taken, Vec::<&str>::new());
    replaced.unwrap();
    assert!(matches!(store.authenticator(&f.t.id, "u1", &f.totp.id).await, Err(StoreError::NotFound)));

    let (s, t) = (store.clone(), f.t.id.clone());
    let (taken, deleted) =
        locked_before_the_user(&db, &f, async move { s.delete_user(&t, "u1", &audit("user.deleted")).await }).await;
    assert_eq!(taken, Vec::<&str>::new());
    deleted.unwrap();
    assert!(matches!(store.user(&f.t.id, "u1").await, Err(StoreError::NotFound)));
}

/// Runs `write` into a deadlock with a connection of the test's: the test
/// holds the challenge, the write takes the user and waits for the
/// challenge, and the test then asks for the user. PostgreSQL breaks the
/// cycle by rolling the write back (the test's connection waits longer
/// before it looks for deadlocks); once the test lets go, the write's
/// result. On SQLite, where one writer runs writes in turn, just the
/// write's result.
async fn deadlocked_once<T: Send + 'static>(
    db: &TestDatabase,
    f: &Fixture,
    write: impl Future<Output = T> + Send + 'static,
) -> T {
    if !is_postgres() {
        return write.await;
    }
    // The test's connection looks for deadlocks last: the write is the one rolled back.
    let setup = "SET LOCAL deadlock_timeout = '60s'";
    let (mut holder, running) = hold_then_start(db, setup, (LOCK_CHALLENGE, f.c.id.as_str()), write).await;
    // Granted once PostgreSQL has rolled the write back.
    sqlx::query(LOCK_USER).bind(f.t.id.as_str()).execute(&mut holder).await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    running.await.unwrap()
}

/// A write PostgreSQL rolls back to break a deadlock changed nothing, and
/// the store runs it again: the caller sees it done, not a 500. Both ways
/// of writing: a transaction (the last wrong answer) and one statement on
/// its own (counting an answer).
#[tokio::test]
async fn a_write_rolled_back_to_break_a_deadlock_runs_again() {
    let (store, db) = store().await;
    let f = fixture(&store).await;
    let (s, counted) = (store.clone(), lockout(&f));
    let gate = deadlocked_once(&db, &f, async move { s.reserve_answer(&counted).await }).await;
    assert_eq!(gate.unwrap(), AnswerGate::Counted { attempt: 1, failures: 1 }, "counted once");

    let (s, c) = (store.clone(), f.c.clone());
    let denied = Event::new(f.t.id.clone(), EventType::ChallengeDenied, json!({}), at(3));
    let effects = FailureEffects { lockout: lockout(&f), denied: (denied, audit("challenge.denied")) };
    let outcome =
        deadlocked_once(&db, &f, async move { s.settle_wrong_answer(&c, c.max_attempts, at(3), &effects).await }).await;
    let settled = outcome.unwrap().challenge;
    assert_eq!((settled.status, settled.attempts), (ChallengeStatus::Denied, 1));
    assert_eq!(store.user(&f.t.id, "u1").await.unwrap().failures, 1, "the count was not taken twice");
}
