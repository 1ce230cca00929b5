//! Verifications: start, resend, check, expiry, approve and cancel.

use vouchsafe_core::channel::Channel;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::SendRefusal;
use vouchsafe_core::verification::VerificationStatus;

use super::super::error::EngineError;
use super::super::verifications::{StartRequest, Target, approve, cancel, check, destination, start};
use super::gateway::Gateway;
use super::{fixture, sms_to};

/// Wrong codes are counted before anything is answered, and the last
/// allowed one ends the verification: even a check after it finds it spent.
#[tokio::test]
async fn wrong_codes_spend_a_verification() {
    let f = fixture(Settings::default()).await;
    let tenant = f.tenant.id.clone();
    let request = |to| StartRequest {
        tenant_id: &tenant,
        to,
        channel: "sms",
        service_id: None,
        locale: None,
        default_country: None,
    };
    let v = start(&f.engine, request("+447400123456")).await.unwrap();
    assert_eq!(v.status, VerificationStatus::Pending);
    let max = Settings::default().otp.max_check_attempts;
    for attempt in 1..=max {
        let checked = check(&f.engine, &tenant, "test", Target::Id(v.id.as_str()), "000000").await.unwrap();
        assert!(!checked.valid && checked.counted, "attempt {attempt}");
        assert_eq!(checked.verification.attempts, attempt);
    }
    let after = check(&f.engine, &tenant, "test", Target::Id(v.id.as_str()), "000000").await.unwrap();
    assert_eq!((after.status, after.counted), (VerificationStatus::MaxAttemptsReached, false));
}

/// A bad address is a field error; a bad number is the contract's own
/// `invalid_phone_number`, whichever channel it was meant for.
#[test]
fn a_bad_destination_is_refused_with_the_error_of_its_kind() {
    let email = destination(Channel::Email, "to", "not-an-address", None);
    assert!(matches!(email, Err(EngineError::Invalid(ref e)) if e.field == "to"), "{email:?}");
    for channel in [Channel::Sms, Channel::Voice] {
        let number = destination(channel, "to", "+4474001", None);
        assert!(matches!(number, Err(EngineError::InvalidPhoneNumber(ref e)) if e.field == "to"), "{number:?}");
    }
    assert!(destination(Channel::Sms, "to", "+447400123456", None).is_ok());
}

/// A second start to the same number puts a fresh code on the pending
/// verification, valid for the whole TTL from the resend, and only after
/// the cooldown; the send window's limit then holds.
#[tokio::test]
async fn a_start_to_a_pending_destination_resends_under_its_limits() {
    let mut settings = Settings::default();
    settings.otp.max_sends = 2;
    let f = fixture(settings).await;
    let tenant = f.tenant.id.clone();
    let first = start(&f.engine, sms_to(&tenant, "+447400123456")).await.unwrap();
    let early = start(&f.engine, sms_to(&tenant, "+447400123456")).await;
    assert!(matches!(early, Err(EngineError::SendLimit(SendRefusal::Cooldown { retry_after_s: 30 }))), "{early:?}");
    f.clock.advance(time::Duration::seconds(31));
    let resent = start(&f.engine, sms_to(&tenant, "+447400123456")).await.unwrap();
    assert_eq!((&resent.id, resent.send_count), (&first.id, 2), "the same verification, sent again");
    assert_eq!(resent.expires_at, f.now() + time::Duration::seconds(600));
    f.clock.advance(time::Duration::seconds(31));
    let third = start(&f.engine, sms_to(&tenant, "+447400123456")).await;
    // Two sends in the 600 s window; the first was 62 s ago.
    assert!(matches!(third, Err(EngineError::SendLimit(SendRefusal::MaxSends { retry_after_s: 538 }))), "{third:?}");
}

/// A start to a destination whose pending verification has run out of
/// time opens a new one: the write that stores it marks the old one
/// expired first, freeing the destination's one pending slot.
#[tokio::test]
async fn a_start_after_the_ttl_opens_a_new_verification() {
    let f = fixture(Settings::default()).await;
    let tenant = f.tenant.id.clone();
    let first = start(&f.engine, sms_to(&tenant, "+447400123456")).await.unwrap();
    f.clock.advance(time::Duration::seconds(601));
    let second = start(&f.engine, sms_to(&tenant, "+447400123456")).await.unwrap();
    assert_ne!(second.id, first.id, "a new verification");
    assert_eq!(second.send_count, 1);
    let old = f.engine.store.verification(&tenant, &first.id).await.unwrap();
    assert_eq!(old.status, VerificationStatus::Expired);
    let new = f.engine.store.verification(&tenant, &second.id).await.unwrap();
    assert_eq!(new.status, VerificationStatus::Pending);
}

/// A check that finds a verification's time run out writes the expiry
/// down once, with its audit entry, and answers it expired.
#[tokio::test]
async fn a_check_after_the_ttl_settles_the_expiry_once() {
    let f = fixture(Settings::default()).await;
    let tenant = f.tenant.id.clone();
    let v = start(&f.engine, sms_to(&tenant, "+447400123456")).await.unwrap();
    f.clock.advance(time::Duration::seconds(601));
    for _ in 0..2 {
        let checked = check(&f.engine, &tenant, "test", Target::Id(v.id.as_str()), "000000").await.unwrap();
        assert_eq!((checked.status, checked.valid, checked.counted), (VerificationStatus::Expired, false, false));
    }
    let stored = f.engine.store.verification(&tenant, &v.id).await.unwrap();
    assert_eq!((stored.status, stored.attempts), (VerificationStatus::Expired, 0));
    let expired = f.audit_actions().await.iter().filter(|a| *a == "verification.expired").count();
    assert_eq!(expired, 1, "the expiry is written down once");
}

/// Approving without a code and cancelling act on a pending verification
/// only; a settled one is answered as it is.
#[tokio::test]
async fn approve_and_cancel_change_only_a_pending_verification() {
    let f = fixture(Settings::default()).await;
    let tenant = f.tenant.id.clone();
    let approved = start(&f.engine, sms_to(&tenant, "+447400123456")).await.unwrap();
    let after = approve(&f.engine, &tenant, "test", approved.id.as_str()).await.unwrap();
    assert_eq!(after.status, VerificationStatus::Approved);
    let canceled = start(&f.engine, sms_to(&tenant, "+447400123457")).await.unwrap();
    let after = cancel(&f.engine, &tenant, "test", canceled.id.as_str()).await.unwrap();
    assert_eq!(after.status, VerificationStatus::Canceled);
    // Settled: neither changes the other's outcome.
    let still = cancel(&f.engine, &tenant, "test", approved.id.as_str()).await.unwrap();
    assert_eq!(still.status, VerificationStatus::Approved);
    let still = approve(&f.engine, &tenant, "test", canceled.id.as_str()).await.unwrap();
    assert_eq!(still.status, VerificationStatus::Canceled);
    let actions = f.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "verification.approved").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "verification.canceled").count(), 1, "{actions:?}");
}

/// The code the user received approves the verification, once; the
/// approval is audited and a later check finds it approved, not valid.
#[tokio::test]
async fn the_code_sent_approves_once() {
    let f = fixture(Settings::default()).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    let tenant = f.tenant_id();
    let v = start(&f.engine, sms_to(&tenant, "+447400123456")).await.unwrap();
    let code = gateway.last_code();
    assert_eq!(gateway.last()["to"], "+447400123456");
    let by_to =
        check(&f.engine, &tenant, "test", Target::To { to: "+447400123456", service_id: None }, &code).await.unwrap();
    assert!(by_to.valid && by_to.counted);
    assert_eq!(by_to.status, VerificationStatus::Approved);
    let again = check(&f.engine, &tenant, "test", Target::Id(v.id.as_str()), &code).await.unwrap();
    assert!(!again.valid);
    assert_eq!(f.audited("verification.approved").await, 1);
}
