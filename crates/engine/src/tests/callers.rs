//! Help-desk caller verification: what is sent, the code read to the
//! agent, the customer's second factor, the sweeper, failures.

use vouchsafe_core::caller::CallerStatus;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::SendRefusal;

use super::super::authenticators::NewAuthenticator;
use super::super::callers::{NewCaller, check, create, factor_failed, link_hash, passes_factor, sweep};
use super::super::error::EngineError;
use super::super::users::{Created, create_authenticator};
use super::authenticators::active_totp;
use super::gateway::Gateway;
use super::{Fixture, field_of, fixture};

fn caller<'a>(f: &'a Fixture, phone: Option<&'a str>) -> NewCaller<'a> {
    NewCaller {
        tenant_id: &f.tenant.id,
        actor: "test",
        record_id: "500xx0000001",
        record_type: None,
        phone,
        email: None,
        channel: None,
        time_allowed_s: None,
        agent_id: None,
        user_id: None,
        locale: None,
        default_country: None,
    }
}

async fn with_gateway(settings: Settings) -> (Fixture, Gateway) {
    let f = fixture(settings).await;
    let gateway = Gateway::start().await;
    f.route_to(&gateway).await;
    (f, gateway)
}

/// The customer gets a link (found by its keyed hash) and a code; the
/// code read to the agent verifies once, with its audit entry.
#[tokio::test]
async fn the_code_read_to_the_agent_verifies_the_caller() {
    let (f, gateway) = with_gateway(Settings::default()).await;
    let cv = create(&f.engine, caller(&f, Some("+447400123456"))).await.unwrap();
    assert_eq!((cv.channel, cv.record_type.as_str(), cv.status), (Channel::Sms, "case", CallerStatus::Pending));
    assert_eq!(cv.expires_at, f.now() + time::Duration::seconds(60));
    let sent = gateway.last();
    let text = sent["message"].as_str().unwrap();
    let code = sent["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert!(text.contains(code), "{text}");
    let link = text.split_whitespace().find(|w| w.starts_with("http://localhost:8080/caller/")).expect(text);
    let token =
        link.trim_start_matches("http://localhost:8080/caller/").trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    assert_eq!(token.len(), 64);
    let found = f.engine.store.caller_verification_by_link(&link_hash(&f.engine, token)).await.unwrap();
    assert_eq!(found.id, cv.id);

    let (after, valid) = check(&f.engine, &f.tenant.id, "agent", &cv.id, &format!(" {code} ")).await.unwrap();
    assert!(valid);
    assert_eq!(after.status, CallerStatus::Verified);
    let (again, valid) = check(&f.engine, &f.tenant.id, "agent", &cv.id, code).await.unwrap();
    assert!(!valid, "settled");
    assert_eq!(again.status, CallerStatus::Verified);
    assert_eq!(f.audited("caller_verification.verified").await, 1);
}

/// Wrong codes are counted and the last allowed one fails the
/// verification; a verification past its time is not checked at all.
#[tokio::test]
async fn wrong_codes_fail_the_caller_and_time_ends_it() {
    let mut settings = Settings::default();
    settings.otp.max_check_attempts = 3;
    let (f, gateway) = with_gateway(settings).await;
    let cv = create(&f.engine, caller(&f, Some("+447400123456"))).await.unwrap();
    for (n, wrong) in ["000000", "12", "999999"].into_iter().enumerate() {
        let (after, valid) = check(&f.engine, &f.tenant.id, "agent", &cv.id, wrong).await.unwrap();
        assert!(!valid);
        assert_eq!(after.attempts, u32::try_from(n + 1).unwrap());
        let expected = if n == 2 { CallerStatus::Failed } else { CallerStatus::Pending };
        assert_eq!(after.status, expected);
    }
    let code = gateway.last_code();
    let (after, valid) = check(&f.engine, &f.tenant.id, "agent", &cv.id, &code).await.unwrap();
    assert!(!valid && after.status == CallerStatus::Failed);
    assert_eq!(f.audited("caller_verification.failed").await, 1);

    let late =
        create(&f.engine, NewCaller { time_allowed_s: Some(10), ..caller(&f, Some("+447400123457")) }).await.unwrap();
    let code = gateway.last_code();
    f.advance(10);
    let (after, valid) = check(&f.engine, &f.tenant.id, "agent", &late.id, &code).await.unwrap();
    assert!(!valid);
    assert_eq!((after.status, after.attempts), (CallerStatus::Pending, 0), "not counted: the sweeper ends it");
    assert_eq!(sweep(f.engine.store.as_ref(), f.now()).await.unwrap(), 1);
    assert_eq!(sweep(f.engine.store.as_ref(), f.now()).await.unwrap(), 0, "ended once");
    let swept = f.engine.store.caller_verification(&f.tenant.id, &late.id).await.unwrap();
    assert_eq!(swept.status, CallerStatus::Expired);
}

/// Each field is checked, with its name, before anything is sent.
#[tokio::test]
async fn a_caller_verification_checks_its_fields() {
    let mut settings = Settings::default();
    settings.geo.allowed_countries = vec!["GB".into()];
    let (f, gateway) = with_gateway(settings).await;
    let phone = Some("+447400123456");
    let long = "x".repeat(201);
    let cases: Vec<(NewCaller<'_>, &str)> = vec![
        (NewCaller { record_id: "", ..caller(&f, phone) }, "record_id"),
        (NewCaller { record_id: &long, ..caller(&f, phone) }, "record_id"),
        (NewCaller { record_id: "a\nb", ..caller(&f, phone) }, "record_id"),
        (NewCaller { record_type: Some(&long[..65]), ..caller(&f, phone) }, "record_type"),
        (NewCaller { agent_id: Some(&long), ..caller(&f, phone) }, "agent_id"),
        (NewCaller { channel: Some("fax"), ..caller(&f, phone) }, "channel"),
        (NewCaller { time_allowed_s: Some(9), ..caller(&f, phone) }, "time_allowed_s"),
        (NewCaller { time_allowed_s: Some(3_601), ..caller(&f, phone) }, "time_allowed_s"),
        (NewCaller { locale: Some("not a locale"), ..caller(&f, phone) }, "locale"),
        (caller(&f, None), "phone"),
        (NewCaller { channel: Some("email"), ..caller(&f, phone) }, "email"),
        (NewCaller { user_id: Some("ghost"), ..caller(&f, phone) }, "user_id"),
        (caller(&f, Some("+4474001")), "phone"),
    ];
    for (request, expected) in cases {
        let result = create(&f.engine, request).await;
        assert_eq!(field_of(&result).as_deref(), Some(expected), "{result:?}");
    }
    let abroad = create(&f.engine, caller(&f, Some("+14155552671"))).await;
    assert!(matches!(abroad, Err(EngineError::GeoNotPermitted(ref c)) if c == "US"), "{abroad:?}");
    assert!(gateway.bodies().is_empty(), "nothing was sent");
    let bounds = [(10, &long[..200], &long[..64]), (3_600, "r", "t")];
    for (time_allowed_s, record_id, record_type) in bounds {
        let request = NewCaller {
            time_allowed_s: Some(time_allowed_s),
            record_id,
            record_type: Some(record_type),
            agent_id: Some(record_id),
            ..caller(&f, phone)
        };
        let cv = create(&f.engine, request).await.unwrap();
        assert_eq!(cv.time_allowed_s, time_allowed_s);
    }
}

/// An email caller verification goes to the address; one without any
/// phone picks email by itself.
#[tokio::test]
async fn a_caller_with_only_an_email_is_reached_by_email() {
    let (f, gateway) = with_gateway(Settings::default()).await;
    let cv = create(&f.engine, NewCaller { email: Some("ann@example.com"), ..caller(&f, None) }).await.unwrap();
    assert_eq!((cv.channel, cv.destination.as_str()), (Channel::Email, "ann@example.com"));
    assert_eq!(gateway.last()["to"], "ann@example.com");
}

/// The destination's send limits hold for caller verifications too.
#[tokio::test]
async fn caller_verifications_count_against_the_send_limits() {
    let mut settings = Settings::default();
    settings.fraud.max_sends_per_destination_per_hour = 1;
    let (f, _gateway) = with_gateway(settings).await;
    create(&f.engine, caller(&f, Some("+447400123456"))).await.unwrap();
    let second = create(&f.engine, caller(&f, Some("+447400123456"))).await;
    assert!(matches!(second, Err(EngineError::SendLimit(SendRefusal::Fraud { .. }))), "{second:?}");
}

/// When every provider fails, the verification is written down failed and
/// the agent is told the providers are unavailable.
#[tokio::test]
async fn an_undelivered_caller_verification_fails() {
    let (f, gateway) = with_gateway(Settings::default()).await;
    gateway.fail();
    let result = create(&f.engine, caller(&f, Some("+447400123456"))).await;
    assert!(matches!(result, Err(EngineError::ProviderUnavailable)), "{result:?}");
    assert_eq!(f.audited("caller_verification.created").await, 1);
    let failed = f.audit_actions().await.into_iter().filter(|a| a == "caller_verification.failed").count();
    assert_eq!(failed, 1);
}

/// A customer with a second factor gets the link only and proves the
/// factor on its page: the agent's code check refuses, the factor's code
/// passes once, and wrong factor codes fail the verification at the limit.
#[tokio::test]
async fn a_caller_with_a_second_factor_must_use_it() {
    let mut settings = Settings::default();
    settings.otp.max_check_attempts = 2;
    let (f, gateway) = with_gateway(settings).await;
    f.user("u1", Some("+447400123456"), None).await;
    let (_, totp) = active_totp(&f, "u1").await;
    let cv = create(&f.engine, NewCaller { user_id: Some("u1"), ..caller(&f, Some("+447400123456")) }).await.unwrap();
    let sent = gateway.last();
    assert_eq!(sent["code"], "", "no code to read out");
    assert!(sent["message"].as_str().unwrap().contains("/caller/"));
    let refused = check(&f.engine, &f.tenant.id, "agent", &cv.id, "123456").await;
    assert!(matches!(refused, Err(EngineError::FactorRequired)), "{refused:?}");

    let code = totp.generate(u64::try_from(f.now().unix_timestamp()).unwrap());
    assert!(!passes_factor(&f.engine, &cv, "customer", "000000").await);
    assert!(passes_factor(&f.engine, &cv, "customer", &code).await);
    assert!(!passes_factor(&f.engine, &cv, "customer", &code).await, "the code is spent");
    assert_eq!(f.audited("authenticator.used").await, 1);

    let after = factor_failed(&f.engine, &cv, "customer").await;
    assert_eq!((after.status, after.attempts), (CallerStatus::Pending, 1));
    let after = factor_failed(&f.engine, &cv, "customer").await;
    assert_eq!(after.status, CallerStatus::Failed);

    let anonymous = create(&f.engine, caller(&f, Some("+447400123459"))).await.unwrap();
    assert!(!passes_factor(&f.engine, &anonymous, "customer", &code).await, "no user, no factor");
}

/// Only an active code or passkey factor makes a caller approve on the
/// link: an unconfirmed TOTP or recovery codes alone leave the code to
/// read out. With a phone and an email and no channel asked for, the
/// tenant's default channel (SMS) is used.
#[tokio::test]
async fn only_an_active_second_factor_takes_the_code_away() {
    let (f, gateway) = with_gateway(Settings::default()).await;
    f.user("u1", Some("+447400123456"), Some("u1@example.com")).await;
    let totp = NewAuthenticator { kind: "totp", ..Default::default() };
    let Created::Enrolled(_) = create_authenticator(&f.engine, &f.tenant.id, "test", "u1", &totp).await.unwrap() else {
        panic!("enrolled");
    };
    let codes = NewAuthenticator { kind: "recovery_codes", ..Default::default() };
    create_authenticator(&f.engine, &f.tenant.id, "test", "u1", &codes).await.unwrap();
    let request = NewCaller { user_id: Some("u1"), email: Some("u1@example.com"), ..caller(&f, Some("+447400123456")) };
    let cv = create(&f.engine, request).await.unwrap();
    assert_eq!(cv.channel, Channel::Sms, "the default channel, when the caller has both");
    let code = gateway.last_code();
    assert_eq!(code.len(), 6, "the code is sent: no active factor");
    let (after, valid) = check(&f.engine, &f.tenant.id, "agent", &cv.id, &code).await.unwrap();
    assert!(valid && after.status == CallerStatus::Verified);
}

/// Only the wrong code that fails the verification wakes the dispatcher
/// (its event is queued then).
#[tokio::test]
async fn the_failing_wrong_code_wakes_the_dispatcher() {
    let mut settings = Settings::default();
    settings.otp.max_check_attempts = 2;
    let (f, _gateway) = with_gateway(settings).await;
    let cv = create(&f.engine, caller(&f, Some("+447400123456"))).await.unwrap();
    f.woke().await;
    check(&f.engine, &f.tenant.id, "agent", &cv.id, "000000").await.unwrap();
    assert!(!f.woke().await, "nothing queued yet");
    check(&f.engine, &f.tenant.id, "agent", &cv.id, "000000").await.unwrap();
    assert!(f.woke().await, "caller_verification.failed queued");
}
