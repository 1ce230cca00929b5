//! The futures of the store's hot calls stay small. A future is as large
//! as the largest state of everything it awaits inline, and it is copied
//! whole each time it moves (into its box, into its caller's state). An
//! inline PostgreSQL branch (sqlx's futures are kilobytes) once made every
//! answer's futures about 5 KB on SQLite too, copied several times a
//! request: a tenth of an answer's instructions. PostgreSQL's branches are
//! boxed, and these bounds keep it so (the same futures whatever the
//! engine; sizes as the test profile builds them).

use serde_json::json;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::AuthenticatorUse;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::ids::AuthenticatorId;
use vouchsafe_core::store::{FailureEffects, Lockout, UserStore, VerificationStore};

use crate::people::challenge;
use crate::store;
use crate::verifications::{pending, tenant};

/// Bytes a hot call's future may take: several times what they take now
/// (600–900), a fifth of what one inline PostgreSQL branch made them.
const SMALL: usize = 2_048;

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap()
}

#[tokio::test]
async fn the_futures_of_an_answer_and_a_check_stay_small() {
    let (store, _db) = store().await;
    let (t, service) = tenant(&store).await;
    let c = challenge(&t, "u1", 300);
    let v = pending(&service, "+14155550100", "hash", 1_700_000_000);
    let audit = AuditEntry::success("key_test", "challenge.approved", "target", at(0));
    let event = Event::new(t.id.clone(), EventType::ChallengeApproved, json!({}), at(0));
    let lockout = Lockout {
        threshold: 5,
        lock_until: at(60),
        tenant: t.id.clone(),
        user: "u1".into(),
        challenge: Some(c.id.clone()),
        actor: "key_test".into(),
        at: at(0),
    };
    let effects = FailureEffects { lockout: lockout.clone(), denied: (event.clone(), audit.clone()) };
    let used = AuthenticatorUse::Counter { id: AuthenticatorId::generate(), value: 1 };
    let sizes = [
        ("challenge_to_answer", std::mem::size_of_val(&*store.challenge_to_answer(&t.id, &c.id))),
        ("reserve_answer", std::mem::size_of_val(&*store.reserve_answer(&lockout))),
        (
            "reserve_and_approve",
            std::mem::size_of_val(&*store.reserve_and_approve(&c, &lockout, Some(&used), (&event, &audit))),
        ),
        ("settle_wrong_answer", std::mem::size_of_val(&*store.settle_wrong_answer(&c, 1, at(0), &effects))),
        ("verification_for_check", std::mem::size_of_val(&*store.verification_for_check(&t.id, &v.id, None, at(0)))),
        ("record_wrong_code", std::mem::size_of_val(&*store.record_wrong_code(&t.id, &v.id, at(0), &audit))),
        ("approve_verification", std::mem::size_of_val(&*store.approve_verification(&v, at(0), &event, &audit))),
        ("create_verification", std::mem::size_of_val(&*store.create_verification(&v, &[]))),
    ];
    let large: Vec<_> = sizes.iter().filter(|(_, size)| *size > SMALL).collect();
    assert!(large.is_empty(), "futures over {SMALL} bytes: {large:?} (all: {sizes:?})");
}
