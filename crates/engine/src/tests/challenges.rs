//! Second-factor challenges: the policy's choice, answers counted before
//! they are checked, approval with a single-use token, denial, expiry,
//! lockout.

use time::Duration;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::challenge::{ChallengeStatus, Factor};
use vouchsafe_core::ids::ChallengeId;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::user::Contacts;

use super::super::challenges::{
    Answer, Answered, ChallengeError, NewChallenge, answer_without_challenge, create, redeem_token, verify,
};
use super::super::error::EngineError;
use super::super::users::{Created, create_authenticator};
use super::authenticators::{active_hotp, active_totp};
use super::gateway::Gateway;
use super::{Fixture, fixture};

/// A challenge for `user` with the policy's factor, or `factor`.
pub(super) fn new_challenge<'a>(f: &'a Fixture, user: &'a str, factor: Option<&'a str>) -> NewChallenge<'a> {
    NewChallenge {
        tenant_id: &f.tenant.id,
        actor: "test",
        user_id: user,
        action: None,
        factor,
        redirect_url: None,
        locale: None,
    }
}

async fn answer(f: &Fixture, id: &ChallengeId, code: &str) -> Result<Answered, ChallengeError> {
    verify(&f.engine, &f.tenant.id, "test", id, Answer::Code(code)).await
}

fn invalid_field<T>(result: &Result<T, ChallengeError>) -> Option<&str> {
    match result {
        Err(ChallengeError::Engine(EngineError::Invalid(e))) => Some(e.field.as_str()),
        _ => None,
    }
}

/// The policy picks the strongest factor the user has, a requested one
/// must be available, and the action is bounded; a challenge lasts the
/// tenant's TTL and allows its number of attempts.
#[tokio::test]
async fn a_challenge_takes_the_policy_factor_and_the_tenant_limits() {
    let mut settings = Settings::default();
    settings.otp.max_check_attempts = 4;
    settings.otp.ttl_s = 120;
    let f = fixture(settings).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    f.user("u1", Some("+447400123456"), Some("u1@example.com")).await;
    let sms = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    assert_eq!((sms.factor, sms.action.as_str()), (Factor::Sms, "login"));
    assert!(sms.verification_id.is_some(), "a code factor sends its code through a verification");
    assert_eq!(gateway.last()["to"], "+447400123456");
    assert_eq!((sms.max_attempts, sms.expires_at), (4, f.now() + Duration::seconds(120)));
    assert_eq!(sms.status, ChallengeStatus::Pending);
    let email = create(&f.engine, new_challenge(&f, "u1", Some("email"))).await.unwrap();
    assert_eq!(email.factor, Factor::Email);
    assert_eq!(gateway.last()["to"], "u1@example.com");

    active_totp(&f, "u1").await;
    let totp = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    assert_eq!((totp.factor, totp.verification_id.as_ref()), (Factor::Totp, None));
    assert_eq!(f.audited("challenge.created").await, 3);

    let nothing = create(&f.engine, new_challenge(&f, "u1", Some("hotp"))).await;
    assert_eq!(invalid_field(&nothing), Some("factor"));
    let unknown = create(&f.engine, new_challenge(&f, "u1", Some("pigeon"))).await;
    assert_eq!(invalid_field(&unknown), Some("factor"));
    for action in ["", "two words", &"a".repeat(65)] {
        let bad = create(&f.engine, NewChallenge { action: Some(action), ..new_challenge(&f, "u1", None) }).await;
        assert_eq!(invalid_field(&bad), Some("action"), "{action:?}");
    }
    let long = "a".repeat(64);
    let ok = create(&f.engine, NewChallenge { action: Some(&long), ..new_challenge(&f, "u1", None) }).await.unwrap();
    assert_eq!(ok.action, long);
    let bad_url =
        create(&f.engine, NewChallenge { redirect_url: Some("javascript:alert(1)"), ..new_challenge(&f, "u1", None) })
            .await;
    assert!(invalid_field(&bad_url).is_some(), "a redirect URL is checked");

    f.user("nobody", None, None).await;
    let none = create(&f.engine, new_challenge(&f, "nobody", None)).await;
    assert_eq!(invalid_field(&none), Some("factor"));
    let missing = create(&f.engine, new_challenge(&f, "ghost", None)).await;
    assert!(matches!(missing, Err(ChallengeError::Engine(EngineError::NotFound))));
}

/// A privileged user may only use a passkey.
#[tokio::test]
async fn a_privileged_user_needs_a_phishing_resistant_factor() {
    let f = fixture(Settings::default()).await;
    let contacts = Contacts { phone: Some("+447400123456".into()), ..Default::default() };
    let audit = AuditEntry::success("test", "user.put", "user:boss", f.now());
    f.engine.store.put_user(&f.tenant.id, "boss", &contacts, true, f.now(), &audit).await.unwrap();
    active_totp(&f, "boss").await;
    let refused = create(&f.engine, new_challenge(&f, "boss", None)).await;
    assert!(matches!(refused, Err(ChallengeError::PhishingResistantRequired)));
}

/// The right TOTP code approves once and yields a token redeemable once,
/// in its own tenant only; the same code cannot approve another challenge.
#[tokio::test]
async fn a_right_code_approves_with_a_single_use_token() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let (_, totp) = active_totp(&f, "u1").await;
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    let code = totp.generate(u64::try_from(f.now().unix_timestamp()).unwrap());
    let approved = answer(&f, &c.id, &code).await.unwrap();
    assert_eq!(approved.challenge.status, ChallengeStatus::Approved);
    assert!(approved.challenge.verified_at.is_some());
    let token = approved.token.expect("an approval has a token");
    assert_eq!(f.audited("challenge.approved").await, 1);

    let other = f.other_tenant("other").await;
    assert!(redeem_token(&f.engine, &other, &token).await.unwrap().is_none(), "another tenant's");
    assert!(redeem_token(&f.engine, &f.tenant.id, "not-a-token").await.unwrap().is_none());
    let redeemed = redeem_token(&f.engine, &f.tenant.id, &token).await.unwrap().expect("valid once");
    assert_eq!(redeemed.id, c.id);
    assert!(redeem_token(&f.engine, &f.tenant.id, &token).await.unwrap().is_none(), "used");

    // Answering the approved challenge again changes nothing.
    let after = answer(&f, &c.id, "000000").await.unwrap();
    assert_eq!((after.challenge.status, after.token), (ChallengeStatus::Approved, None));
    // The spent code on a fresh challenge is a replay: counted as wrong.
    let second = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    let replayed = answer(&f, &second.id, &code).await.unwrap();
    assert_eq!((replayed.challenge.status, replayed.challenge.attempts), (ChallengeStatus::Pending, 1));
    assert!(replayed.token.is_none());
}

/// Wrong answers (a wrong code, an empty or oversized one, a credential
/// for a code factor) each take an attempt; the last denies the
/// challenge with its event's audit entry, and later answers find it denied.
#[tokio::test]
async fn wrong_answers_take_attempts_until_the_challenge_is_denied() {
    let mut settings = Settings::default();
    settings.otp.max_check_attempts = 4;
    let f = fixture(settings).await;
    f.user("u1", None, None).await;
    active_totp(&f, "u1").await;
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    let credential = serde_json::json!({"id": "x"});
    let long = "1".repeat(129);
    let answers = [Answer::Code("000000"), Answer::Code(""), Answer::Code(&long), Answer::Credential(&credential)];
    for (n, a) in answers.into_iter().enumerate() {
        let after = verify(&f.engine, &f.tenant.id, "test", &c.id, a).await.unwrap();
        assert_eq!(after.challenge.attempts, u32::try_from(n + 1).unwrap());
        let expected = if n == 3 { ChallengeStatus::Denied } else { ChallengeStatus::Pending };
        assert_eq!(after.challenge.status, expected, "answer {n}");
    }
    assert_eq!(f.audited("challenge.denied").await, 1);
    let stored = f.engine.store.challenge(&f.tenant.id, &c.id).await.unwrap();
    assert_eq!(stored.status, ChallengeStatus::Denied);
    let later = answer(&f, &c.id, "000000").await.unwrap();
    assert_eq!((later.challenge.status, later.challenge.attempts), (ChallengeStatus::Denied, 4));
    assert_eq!(f.engine.store.user(&f.tenant.id, "u1").await.unwrap().failures, 4);
}

/// A challenge answered after its TTL is written down expired.
#[tokio::test]
async fn an_answer_after_the_ttl_finds_the_challenge_expired() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let (_, totp) = active_totp(&f, "u1").await;
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    f.advance(601);
    let code = totp.generate(u64::try_from(f.now().unix_timestamp()).unwrap());
    let after = answer(&f, &c.id, &code).await.unwrap();
    assert_eq!((after.challenge.status, after.token), (ChallengeStatus::Expired, None));
    let stored = f.engine.store.challenge(&f.tenant.id, &c.id).await.unwrap();
    assert_eq!((stored.status, stored.attempts), (ChallengeStatus::Expired, 0));
}

/// Wrong answers across challenges lock the user at the threshold, for
/// the lockout's duration: further answers and new challenges get
/// `Locked`; once it passes, counting starts afresh and a right answer
/// clears the failures.
#[tokio::test]
async fn failures_lock_the_user_until_the_lockout_ends() {
    let mut settings = Settings::default();
    settings.lockout.threshold = 3;
    settings.lockout.duration_s = 300;
    let f = fixture(settings).await;
    f.user("u1", None, None).await;
    let (_, totp) = active_totp(&f, "u1").await;
    for _ in 0..2 {
        let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
        let after = answer(&f, &c.id, "000000").await.unwrap();
        assert_eq!(after.challenge.status, ChallengeStatus::Pending);
    }
    assert!(f.engine.store.user(&f.tenant.id, "u1").await.unwrap().locked_until.is_none());
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    answer(&f, &c.id, "000000").await.unwrap();
    let until = f.now() + Duration::seconds(300);
    assert_eq!(f.engine.store.user(&f.tenant.id, "u1").await.unwrap().locked_until, Some(until));
    assert_eq!(f.audited("user.locked").await, 1);
    let code = totp.generate(u64::try_from(f.now().unix_timestamp()).unwrap());
    assert!(matches!(answer(&f, &c.id, &code).await, Err(ChallengeError::Locked(u)) if u == until));
    assert!(matches!(create(&f.engine, new_challenge(&f, "u1", None)).await, Err(ChallengeError::Locked(_))));

    f.advance(300);
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    // Counting starts afresh: the first wrong answer after the lock is
    // failure 1, not the fourth (which would lock the user again).
    assert_eq!(answer(&f, &c.id, "000000").await.unwrap().challenge.status, ChallengeStatus::Pending);
    let user = f.engine.store.user(&f.tenant.id, "u1").await.unwrap();
    assert_eq!((user.failures, user.locked_until), (1, None));
    let code = totp.generate(u64::try_from(f.now().unix_timestamp()).unwrap());
    assert_eq!(answer(&f, &c.id, &code).await.unwrap().challenge.status, ChallengeStatus::Approved);
    assert_eq!(f.engine.store.user(&f.tenant.id, "u1").await.unwrap().failures, 0);
}

/// An SMS challenge is answered with the code that was sent.
#[tokio::test]
async fn an_sms_challenge_is_answered_with_the_code_sent() {
    let f = fixture(Settings::default()).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    f.user("u1", Some("+447400123456"), None).await;
    let c = create(&f.engine, new_challenge(&f, "u1", Some("sms"))).await.unwrap();
    let code = gateway.last_code();
    let wrong = answer(&f, &c.id, "000000").await.unwrap();
    assert_eq!((wrong.challenge.status, wrong.challenge.attempts), (ChallengeStatus::Pending, 1));
    let right = answer(&f, &c.id, &code).await.unwrap();
    assert_eq!(right.challenge.status, ChallengeStatus::Approved);
    assert!(right.token.is_some());
}

/// HOTP approval moves the token's counter past the code.
#[tokio::test]
async fn an_hotp_approval_spends_the_code() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let (a, hotp) = active_hotp(&f, "u1", 3).await;
    let c = create(&f.engine, new_challenge(&f, "u1", Some("hotp"))).await.unwrap();
    assert_eq!(answer(&f, &c.id, &hotp.generate(4)).await.unwrap().challenge.status, ChallengeStatus::Approved);
    let stored = f.engine.store.authenticator(&f.tenant.id, "u1", &a.id).await.unwrap();
    assert_eq!(stored.counter, 5);
}

/// A recovery code approves once; the same code is spent after.
#[tokio::test]
async fn a_recovery_code_approves_once() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let req = super::super::authenticators::NewAuthenticator { kind: "recovery_codes", ..Default::default() };
    let Created::Enrolled(enrolled) = create_authenticator(&f.engine, &f.tenant.id, "test", "u1", &req).await.unwrap()
    else {
        panic!("recovery codes are enrolled");
    };
    let codes = enrolled.codes.clone().unwrap();
    let c = create(&f.engine, new_challenge(&f, "u1", Some("recovery_code"))).await.unwrap();
    let wrong = answer(&f, &c.id, "aaaa-bbbb-cccc").await.unwrap();
    assert_eq!(wrong.challenge.status, ChallengeStatus::Pending);
    let right = answer(&f, &c.id, &codes[0]).await.unwrap();
    assert_eq!(right.challenge.status, ChallengeStatus::Approved);
    let again = create(&f.engine, new_challenge(&f, "u1", Some("recovery_code"))).await.unwrap();
    assert_eq!(answer(&f, &again.id, &codes[0]).await.unwrap().challenge.status, ChallengeStatus::Pending);
    assert_eq!(answer(&f, &again.id, &codes[1]).await.unwrap().challenge.status, ChallengeStatus::Approved);
}

/// An answer outside a challenge is counted by the same lockout rule: a
/// pass clears the failures, the threshold's failure locks.
#[tokio::test]
async fn answers_outside_a_challenge_share_the_lockout() {
    let mut settings = Settings::default();
    settings.lockout.threshold = 2;
    let f = fixture(settings).await;
    f.user("u1", None, None).await;
    let t = f.tenant_id();
    assert!(!answer_without_challenge(&f.engine, &t, "u1", "test", async { false }).await.unwrap());
    assert_eq!(f.engine.store.user(&t, "u1").await.unwrap().failures, 1);
    assert!(answer_without_challenge(&f.engine, &t, "u1", "test", async { true }).await.unwrap());
    assert_eq!(f.engine.store.user(&t, "u1").await.unwrap().failures, 0);
    assert!(!answer_without_challenge(&f.engine, &t, "u1", "test", async { false }).await.unwrap());
    assert!(f.engine.store.user(&t, "u1").await.unwrap().locked_until.is_none());
    assert!(!answer_without_challenge(&f.engine, &t, "u1", "test", async { false }).await.unwrap());
    assert!(f.engine.store.user(&t, "u1").await.unwrap().locked_until.is_some());
    assert_eq!(f.audited("user.locked").await, 1);
    let locked = answer_without_challenge(&f.engine, &t, "u1", "test", async { true }).await;
    assert!(matches!(locked, Err(ChallengeError::Locked(_))));
}

/// An answer that cannot be a code (empty, or longer than 128
/// characters) is counted against the challenge but never reaches its
/// verification; one of 128 characters does, as a wrong code.
#[tokio::test]
async fn impossible_codes_do_not_reach_the_verification() {
    let f = fixture(Settings::default()).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    f.user("u1", Some("+447400123456"), None).await;
    let c = create(&f.engine, new_challenge(&f, "u1", Some("sms"))).await.unwrap();
    let verification = c.verification_id.clone().unwrap();
    let attempts = || async { f.engine.store.verification(&f.tenant.id, &verification).await.unwrap().attempts };
    for (code, counted) in [("", 0), (&*"1".repeat(129), 0), (&*"1".repeat(128), 1)] {
        let after = answer(&f, &c.id, code).await.unwrap();
        assert_eq!(after.challenge.status, ChallengeStatus::Pending);
        assert_eq!(attempts().await, counted, "a code of {} characters", code.len());
    }
}

/// A challenge for one factor is answered only by that factor's active
/// authenticators: not by another kind's code, nor by an unconfirmed
/// enrollment's.
#[tokio::test]
async fn only_the_factors_active_authenticators_answer() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let (_, totp) = active_totp(&f, "u1").await;
    let (_, hotp) = active_hotp(&f, "u1", 0).await;
    let request = super::super::authenticators::NewAuthenticator { kind: "totp", ..Default::default() };
    let Created::Enrolled(pending) =
        create_authenticator(&f.engine, &f.tenant.id, "test", "u1", &request).await.unwrap()
    else {
        panic!("enrolled");
    };
    let seed = vouchsafe_core::otp::Secret::parse_base32(pending.secret_base32.as_deref().unwrap()).unwrap();
    let unconfirmed = vouchsafe_core::otp::Totp::new(&seed, 6, 30, vouchsafe_core::otp::Algorithm::Sha1).unwrap();
    let now = u64::try_from(f.now().unix_timestamp()).unwrap();
    let c = create(&f.engine, new_challenge(&f, "u1", Some("totp"))).await.unwrap();
    assert_eq!(answer(&f, &c.id, &hotp.generate(0)).await.unwrap().challenge.status, ChallengeStatus::Pending);
    assert_eq!(answer(&f, &c.id, &unconfirmed.generate(now)).await.unwrap().challenge.status, ChallengeStatus::Pending);
    assert_eq!(answer(&f, &c.id, &totp.generate(now)).await.unwrap().challenge.status, ChallengeStatus::Approved);
}

/// The dispatcher is woken when an answer queues an event: an approval,
/// a denial, a lock; not by a wrong answer that leaves attempts.
#[tokio::test]
async fn answers_that_queue_events_wake_the_dispatcher() {
    let mut settings = Settings::default();
    settings.otp.max_check_attempts = 2;
    settings.lockout.threshold = 3;
    let f = fixture(settings).await;
    f.user("u1", None, None).await;
    let (_, totp) = active_totp(&f, "u1").await;
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    f.woke().await;
    answer(&f, &c.id, "000000").await.unwrap();
    assert!(!f.woke().await, "a wrong answer with attempts left");
    assert_eq!(answer(&f, &c.id, "000000").await.unwrap().challenge.status, ChallengeStatus::Denied);
    assert!(f.woke().await, "the denial");
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    answer(&f, &c.id, "000000").await.unwrap();
    assert!(f.woke().await, "the third failure locks the user, before the challenge's last attempt");
    assert!(f.engine.store.user(&f.tenant.id, "u1").await.unwrap().locked_until.is_some());
    f.advance(900);
    let c = create(&f.engine, new_challenge(&f, "u1", None)).await.unwrap();
    let code = totp.generate(u64::try_from(f.now().unix_timestamp()).unwrap());
    assert_eq!(answer(&f, &c.id, &code).await.unwrap().challenge.status, ChallengeStatus::Approved);
    assert!(f.woke().await, "the approval");
}
