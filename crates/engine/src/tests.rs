//! The engine's own tests: use cases run on a real store (the engine
//! `TEST_DB` names, SQLite by default) with a manual clock, no HTTP.

use std::sync::Arc;

use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::AuthenticatorStatus;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::clock::{Clock, ManualClock};
use vouchsafe_core::crypto::MasterKey;
use vouchsafe_core::delivery::{DeliveryResult, DeliveryStatus};
use vouchsafe_core::otp::{Algorithm, Secret, Totp};
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{SendRefusal, TenantStore};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::user::Contacts;
use vouchsafe_core::verification::VerificationStatus;
use vouchsafe_delivery::outbound::OutboundClient;
use vouchsafe_store::testing::{TestDatabase, connect, fresh_database};

use super::Engine;
use super::authenticators::{NewAuthenticator, Proof, confirm, enroll};
use super::deliveries::{Delivered, NewDelivery, deliver};
use super::error::EngineError;
use super::verifications::{StartRequest, Target, approve, cancel, check, destination, start};

const T0: i64 = 1_800_000_000;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    tenant: Tenant,
    _db: TestDatabase,
}

/// An engine over a fresh database with one tenant, at `T0`.
async fn fixture(settings: Settings) -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = fresh_database().await.unwrap();
    let store = connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let at = OffsetDateTime::from_unix_timestamp(T0).unwrap();
    let clock = Arc::new(ManualClock::new(at));
    let (tenant, service) = Tenant::new("acme", at).unwrap();
    let audit = AuditEntry::success("test", "tenant.created", tenant.id.as_str(), at);
    store.create_tenant(&tenant, &service, &settings, &audit).await.unwrap();
    let master = MasterKey::from_base64("dm91Y2hzYWZlIGVuZ2luZSB0ZXN0czogbm90IHJlYWw=").unwrap();
    let outbound = OutboundClient::new(true, std::time::Duration::from_secs(5));
    let engine = Engine::new("http://localhost:8080".into(), Arc::new(store), clock.clone(), &master, outbound);
    Fixture { engine, clock, tenant, _db: db }
}

fn delivery_to(f: &Fixture, to: &str) -> NewDelivery {
    NewDelivery {
        tenant_id: f.tenant.id.clone(),
        channel: Channel::Sms,
        to: to.into(),
        code: "482913".into(),
        message: None,
        locale: None,
        default_country: None,
        user_id: None,
        network_id: None,
        experience_id: None,
    }
}

/// Geo permissions refuse before any provider is asked, and the refusal
/// is a recorded delivery with Salesforce's result, not an error.
#[tokio::test]
async fn a_delivery_to_a_country_not_allowed_is_recorded_as_refused() {
    let mut settings = Settings::default();
    settings.geo.allowed_countries = vec!["GB".into()];
    let f = fixture(settings).await;
    let Delivered::Recorded(refused) = deliver(&f.engine, delivery_to(&f, "+14155552671")).await.unwrap() else {
        panic!("a refusal is recorded");
    };
    assert_eq!((refused.result, refused.status), (DeliveryResult::CountryBlock, DeliveryStatus::Rejected));
    assert_eq!(refused.country.as_deref(), Some("US"));
    let stored = f.engine.store.delivery(&f.tenant.id, &refused.id).await.unwrap();
    assert_eq!(stored.result, DeliveryResult::CountryBlock);
    let Delivered::Recorded(sent) = deliver(&f.engine, delivery_to(&f, "+447400123456")).await.unwrap() else {
        panic!("a delivery is recorded");
    };
    assert_eq!((sent.result, sent.provider.as_deref()), (DeliveryResult::Success, Some("console")));
}

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

/// A TOTP enrollment is confirmed by the code its app shows at the
/// engine's clock, and not by a code from another time.
#[tokio::test]
async fn a_totp_enrollment_is_confirmed_by_the_code_of_now() {
    let f = fixture(Settings::default()).await;
    let tenant = f.tenant.id.clone();
    let now = f.clock.now();
    let audit = AuditEntry::success("test", "user.put", "user:u1", now);
    f.engine.store.put_user(&tenant, "u1", &Contacts::default(), false, now, &audit).await.unwrap();
    let request = NewAuthenticator { kind: "totp", ..Default::default() };
    let enrolled = enroll(&f.engine, &tenant, "u1", "Acme", "u1", &request).unwrap();
    let a = &enrolled.authenticator;
    let audit = AuditEntry::success("test", "authenticator.created", a.id.as_str(), now);
    f.engine.store.create_authenticator(a, &[], false, &audit).await.unwrap();
    let seed = Secret::parse_base32(enrolled.secret_base32.as_deref().unwrap()).unwrap();
    let totp = Totp::new(&seed, 6, 30, Algorithm::Sha1).unwrap();
    let code_at = |unix: i64| totp.generate(u64::try_from(unix).unwrap());

    let stale = Proof { code: Some(&code_at(T0 - 300)), credential: None };
    let refused = confirm(&f.engine, &tenant, "test", "u1", &a.id, stale).await;
    assert!(matches!(refused, Err(EngineError::Invalid(ref e)) if e.field == "code"), "{refused:?}");
    let fresh = Proof { code: Some(&code_at(T0)), credential: None };
    let active = confirm(&f.engine, &tenant, "test", "u1", &a.id, fresh).await.unwrap();
    assert_eq!(active.status, AuthenticatorStatus::Active);
    assert!(active.counter >= 0, "the confirming step is spent");
}

fn sms_to<'a>(tenant: &'a vouchsafe_core::ids::TenantId, to: &'a str) -> StartRequest<'a> {
    StartRequest { tenant_id: tenant, to, channel: "sms", service_id: None, locale: None, default_country: None }
}

/// The actions of the audit log of `f`'s tenant, in order.
async fn audit_actions(f: &Fixture) -> Vec<String> {
    let events = f.engine.store.audit_events(&f.tenant.id, 0, 1000).await.unwrap();
    events.into_iter().map(|e| e.entry.action).collect()
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
    assert_eq!(resent.expires_at, f.clock.now() + time::Duration::seconds(600));
    f.clock.advance(time::Duration::seconds(31));
    let third = start(&f.engine, sms_to(&tenant, "+447400123456")).await;
    // Two sends in the 600 s window; the first was 62 s ago.
    assert!(matches!(third, Err(EngineError::SendLimit(SendRefusal::MaxSends { retry_after_s: 538 }))), "{third:?}");
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
    let expired = audit_actions(&f).await.iter().filter(|a| *a == "verification.expired").count();
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
    let actions = audit_actions(&f).await;
    assert_eq!(actions.iter().filter(|a| *a == "verification.approved").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "verification.canceled").count(), 1, "{actions:?}");
}
