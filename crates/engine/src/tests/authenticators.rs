//! Authenticators: enrollment's rules per kind, codes matched and spent,
//! confirmation, HOTP resynchronisation.

use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::{Authenticator, AuthenticatorParams, AuthenticatorStatus, AuthenticatorUse};
use vouchsafe_core::otp::{Algorithm, Hotp, Secret, Totp};
use vouchsafe_core::settings::Settings;
use vouchsafe_core::yubikey;

use super::super::authenticators::{
    Enrolled, NewAuthenticator, Proof, confirm, confirm_step, enroll, match_code, resync, resync_token,
};
use super::super::error::{EngineError, EngineResult};
use super::{Fixture, T0, fixture};

/// A TOTP enrollment is confirmed by the code its app shows at the
/// engine's clock, and not by a code from another time.
#[tokio::test]
async fn a_totp_enrollment_is_confirmed_by_the_code_of_now() {
    let f = fixture(Settings::default()).await;
    let tenant = f.tenant.id.clone();
    let now = f.now();
    f.user("u1", None, None).await;
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

/// The RFC 4226 test secret, "12345678901234567890", in base32.
pub(super) const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Stores `enrolled` for its user as active (skipping the confirmation).
async fn store_active(f: &Fixture, mut a: Authenticator) -> Authenticator {
    a.status = AuthenticatorStatus::Active;
    let audit = AuditEntry::success("test", "authenticator.created", a.id.as_str(), f.now());
    f.engine.store.create_authenticator(&a, &[], false, &audit).await.unwrap();
    a
}

/// An active TOTP (SHA1, 6 digits, 30 s) for `user`, and its generator.
pub(super) async fn active_totp(f: &Fixture, user: &str) -> (Authenticator, Totp) {
    let request = NewAuthenticator { kind: "totp", ..Default::default() };
    let enrolled = enroll(&f.engine, &f.tenant.id, user, "Acme", user, &request).unwrap();
    let seed = Secret::parse_base32(enrolled.secret_base32.as_deref().unwrap()).unwrap();
    (store_active(f, enrolled.authenticator).await, Totp::new(&seed, 6, 30, Algorithm::Sha1).unwrap())
}

/// An active HOTP token with the RFC 4226 secret at `counter`, and its generator.
pub(super) async fn active_hotp(f: &Fixture, user: &str, counter: u64) -> (Authenticator, Hotp) {
    let request =
        NewAuthenticator { kind: "hotp", secret: Some(RFC_SECRET), counter: Some(counter), ..Default::default() };
    let enrolled = enroll(&f.engine, &f.tenant.id, user, "Acme", user, &request).unwrap();
    let seed = Secret::parse_base32(RFC_SECRET).unwrap();
    (store_active(f, enrolled.authenticator).await, Hotp::new(&seed, 6, Algorithm::Sha1).unwrap())
}

/// The unix time of the manual clock.
fn unix(f: &Fixture) -> u64 {
    u64::try_from(f.now().unix_timestamp()).unwrap()
}

fn field(result: EngineResult<Enrolled>) -> String {
    match result {
        Err(EngineError::Invalid(e)) => e.field,
        Err(other) => panic!("not a field error: {other:?}"),
        Ok(_) => panic!("accepted"),
    }
}

/// Each kind's parameters are checked at enrollment, with the field named;
/// the bounds themselves are accepted.
#[tokio::test]
async fn enrollment_checks_each_parameter_at_its_bounds() {
    let f = fixture(Settings::default()).await;
    let t = f.tenant_id();
    let try_enroll = |req: NewAuthenticator<'_>| enroll(&f.engine, &t, "u1", "Acme", "u1", &req);
    let totp =
        |algorithm, digits, period| NewAuthenticator { kind: "totp", algorithm, digits, period, ..Default::default() };
    assert_eq!(field(try_enroll(NewAuthenticator { kind: "sms", ..Default::default() })), "type");
    assert_eq!(field(try_enroll(NewAuthenticator { kind: "passkey", ..Default::default() })), "type");
    assert_eq!(field(try_enroll(totp(Some("MD5"), None, None))), "algorithm");
    assert_eq!(field(try_enroll(totp(None, Some(5), None))), "digits");
    assert_eq!(field(try_enroll(totp(None, Some(9), None))), "digits");
    assert_eq!(field(try_enroll(totp(None, None, Some(14)))), "period");
    assert_eq!(field(try_enroll(totp(None, None, Some(121)))), "period");
    let long = "x".repeat(300);
    assert_eq!(field(try_enroll(NewAuthenticator { kind: "totp", label: Some(&long), ..Default::default() })), "label");
    assert_eq!(
        field(try_enroll(NewAuthenticator { kind: "totp", issuer: Some(&long), ..Default::default() })),
        "issuer"
    );
    for (algorithm, digits, period) in [("SHA256", 6, 15), ("SHA512", 8, 120), ("SHA1", 7, 30)] {
        let enrolled = try_enroll(totp(Some(algorithm), Some(digits), Some(period))).unwrap();
        let uri = enrolled.otpauth_uri.unwrap();
        assert!(uri.contains(&format!("algorithm={algorithm}")), "{uri}");
        assert!(uri.contains(&format!("digits={digits}")) && uri.contains(&format!("period={period}")), "{uri}");
        assert!(uri.contains("issuer=Acme"), "the default issuer: {uri}");
        assert!(enrolled.qr_svg.unwrap().contains("<svg"));
        assert_eq!(enrolled.authenticator.status, AuthenticatorStatus::Unconfirmed);
        assert_eq!(enrolled.authenticator.label.as_deref(), Some("u1"));
    }

    let hotp = |secret, counter| NewAuthenticator { kind: "hotp", secret, counter, ..Default::default() };
    assert_eq!(field(try_enroll(hotp(None, None))), "secret");
    assert_eq!(field(try_enroll(hotp(Some("not base32!"), None))), "secret");
    // 72 bits is too short; 80 bits (16 base32 characters) is enough.
    assert_eq!(field(try_enroll(hotp(Some("GEZDGNBVGY3TQOI"), None))), "secret");
    let ten_bytes = try_enroll(hotp(Some("GEZDGNBVGY3TQOJQ"), Some(7))).unwrap();
    assert_eq!((ten_bytes.authenticator.counter, ten_bytes.authenticator.status), (7, AuthenticatorStatus::Active));
    assert_eq!(field(try_enroll(hotp(Some(RFC_SECRET), Some(u64::MAX)))), "counter");
    assert_eq!(try_enroll(hotp(Some(RFC_SECRET), None)).unwrap().authenticator.counter, 0);

    let key = |public_id, private_id, aes_key| NewAuthenticator {
        kind: "yubikey",
        public_id,
        private_id,
        aes_key,
        ..Default::default()
    };
    let (private, aes) = (Some("0123456789ab"), Some("00112233445566778899aabbccddeeff"));
    assert_eq!(field(try_enroll(key(None, private, aes))), "public_id");
    assert_eq!(field(try_enroll(key(Some("cccccccccccccccccc"), private, aes))), "public_id");
    assert_eq!(field(try_enroll(key(Some("xyz"), private, aes))), "public_id");
    assert_eq!(field(try_enroll(key(Some("cccc"), None, aes))), "private_id");
    assert_eq!(field(try_enroll(key(Some("cccc"), Some("0123456789"), aes))), "private_id");
    assert_eq!(field(try_enroll(key(Some("cccc"), Some("0123456789zz"), aes))), "private_id");
    assert_eq!(field(try_enroll(key(Some("cccc"), private, Some("00112233")))), "aes_key");
    let sixteen = try_enroll(key(Some("CCCCCCCCCCCCCCCC"), Some(" 0123456789ab "), aes)).unwrap();
    assert!(
        matches!(sixteen.authenticator.params, AuthenticatorParams::Yubikey { ref public_id } if public_id == "cccccccccccccccc")
    );

    let codes = try_enroll(NewAuthenticator { kind: "recovery_codes", ..Default::default() }).unwrap();
    let n = codes.codes.as_ref().unwrap().len();
    assert!(n >= 8, "{n} recovery codes");
    assert!(matches!(codes.authenticator.params, AuthenticatorParams::RecoveryCodes { count } if count == n));
}

/// A TOTP code matches in its step and the one either side, names the
/// step it proves, and never again once that step is spent.
#[tokio::test]
async fn a_totp_code_matches_its_window_and_not_a_spent_step() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let (mut a, totp) = active_totp(&f, "u1").await;
    let now = unix(&f);
    let step = i64::try_from(totp.step(now)).unwrap();
    let used = |a: &Authenticator, code: &str| match match_code(&f.engine, a, code).unwrap() {
        Some(AuthenticatorUse::Counter { value, .. }) => Some(value),
        other => panic!("{other:?}"),
    };
    assert_eq!(used(&a, &totp.generate(now)), Some(step));
    assert_eq!(used(&a, &format!(" {} ", totp.generate(now))), Some(step), "spaces around a code are ignored");
    assert_eq!(used(&a, &totp.generate(now - 30)), Some(step - 1));
    assert!(match_code(&f.engine, &a, &totp.generate(now - 90)).unwrap().is_none());
    assert!(match_code(&f.engine, &a, &totp.generate(now + 90)).unwrap().is_none());
    a.counter = step;
    assert!(match_code(&f.engine, &a, &totp.generate(now)).unwrap().is_none(), "a spent step");
    assert_eq!(used(&a, &totp.generate(now + 30)), Some(step + 1));
    assert_eq!(confirm_step(&f.engine, &a, &totp.generate(now + 30)).unwrap(), Some(step + 1));
    assert_eq!(confirm_step(&f.engine, &a, "000000x").unwrap(), None);
}

/// An HOTP code matches at the token's counter or a little ahead, and
/// moves the counter past it.
#[tokio::test]
async fn an_hotp_code_moves_the_counter_past_it() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let (a, hotp) = active_hotp(&f, "u1", 5).await;
    let used = |code: &str| match match_code(&f.engine, &a, code).unwrap() {
        Some(AuthenticatorUse::Counter { value, .. }) => Some(value),
        None => None,
        other => panic!("{other:?}"),
    };
    assert_eq!(used(&hotp.generate(5)), Some(6));
    assert_eq!(used(&hotp.generate(8)), Some(9));
    assert_eq!(used(&hotp.generate(15)), Some(16), "ten ahead is still in reach");
    assert_eq!(used(&hotp.generate(16)), None, "eleven ahead is not");
    assert_eq!(used(&hotp.generate(4)), None, "behind the counter");
}

/// A YubiKey OTP matches while its counter moves forward; the same OTP
/// (or an older one) is a replay.
#[tokio::test]
async fn a_yubikey_otp_matches_only_forward() {
    let f = fixture(Settings::default()).await;
    f.user("u1", None, None).await;
    let aes = [7u8; 16];
    let private = [1u8, 2, 3, 4, 5, 6];
    let req = NewAuthenticator {
        kind: "yubikey",
        public_id: Some("vvcccccccccc"),
        private_id: Some("010203040506"),
        aes_key: Some("07070707070707070707070707070707"),
        ..Default::default()
    };
    let enrolled = enroll(&f.engine, &f.tenant.id, "u1", "Acme", "u1", &req).unwrap();
    let mut a = store_active(&f, enrolled.authenticator).await;
    let otp = |usage: u16, session: u8| {
        let fields = yubikey::Decrypted { private_id: private, usage_counter: usage, session_counter: session };
        yubikey::generate("vvcccccccccc", &fields, 1234, 99, &aes)
    };
    let used = |a: &Authenticator, code: &str| match_code(&f.engine, a, code).unwrap();
    assert_eq!(a.counter, -1, "a fresh token has used no counter yet");
    assert!(used(&a, &otp(0, 0)).is_some(), "so even its very first OTP matches");
    assert!(matches!(used(&a, &otp(1, 2)), Some(AuthenticatorUse::Counter { value, .. }) if value == (1 << 8) | 2));
    a.counter = (1 << 8) | 2;
    assert!(used(&a, &otp(1, 2)).is_none(), "a replay");
    assert!(used(&a, &otp(1, 1)).is_none(), "an older OTP");
    assert!(used(&a, &otp(1, 3)).is_some());
    let wrong_key = yubikey::generate(
        "vvcccccccccc",
        &yubikey::Decrypted { private_id: private, usage_counter: 9, session_counter: 0 },
        1,
        1,
        &[8u8; 16],
    );
    assert!(used(&a, &wrong_key).is_none());
}

/// Two consecutive codes of a drifted token move its counter past them;
/// anything else is refused with the field to fix, and used codes cannot
/// move it again.
#[tokio::test]
async fn a_drifted_hotp_token_is_resynchronised_forward_only() {
    let f = fixture(Settings::default()).await;
    let t = f.tenant_id();
    f.user("u1", None, None).await;
    let (a, hotp) = active_hotp(&f, "u1", 0).await;
    assert_eq!(resync(&f.engine, &a, &hotp.generate(500), &hotp.generate(502)).unwrap(), None);
    assert_eq!(resync(&f.engine, &a, &hotp.generate(1_001), &hotp.generate(1_002)).unwrap(), None, "beyond the window");
    let (first, second) = (hotp.generate(500), hotp.generate(501));
    let moved = resync_token(&f.engine, &t, "test", "u1", &a.id, &first, &second).await.unwrap();
    assert_eq!(moved.counter, 502);
    assert_eq!(f.audited("authenticator.resynchronised").await, 1);
    let again = resync_token(&f.engine, &t, "test", "u1", &a.id, &first, &second).await;
    assert!(matches!(again, Err(EngineError::Invalid(ref e)) if e.field == "code"), "{again:?}");
    let wrong = resync_token(&f.engine, &t, "test", "u1", &a.id, &hotp.generate(600), &hotp.generate(602)).await;
    assert!(matches!(wrong, Err(EngineError::Invalid(ref e)) if e.field == "code"), "{wrong:?}");
    let (totp, _) = active_totp(&f, "u1").await;
    assert_eq!(resync(&f.engine, &totp, "123456", "234567").unwrap(), None);
    let not_hotp = resync_token(&f.engine, &t, "test", "u1", &totp.id, "123456", "234567").await;
    assert!(matches!(not_hotp, Err(EngineError::Invalid(ref e)) if e.field == "id"), "{not_hotp:?}");
}

/// Confirming needs its proof; an active authenticator is answered as it
/// is, and a confirmation is audited once.
#[tokio::test]
async fn confirming_needs_a_proof_and_happens_once() {
    let f = fixture(Settings::default()).await;
    let t = f.tenant_id();
    f.user("u1", None, None).await;
    let request = NewAuthenticator { kind: "totp", ..Default::default() };
    let enrolled = enroll(&f.engine, &t, "u1", "Acme", "u1", &request).unwrap();
    let a = enrolled.authenticator;
    let audit = AuditEntry::success("test", "authenticator.created", a.id.as_str(), f.now());
    f.engine.store.create_authenticator(&a, &[], false, &audit).await.unwrap();
    let missing = confirm(&f.engine, &t, "test", "u1", &a.id, Proof { code: None, credential: None }).await;
    assert!(matches!(missing, Err(EngineError::Invalid(ref e)) if e.field == "code"), "{missing:?}");
    let seed = Secret::parse_base32(enrolled.secret_base32.as_deref().unwrap()).unwrap();
    let code = Totp::new(&seed, 6, 30, Algorithm::Sha1).unwrap().generate(unix(&f));
    let active =
        confirm(&f.engine, &t, "test", "u1", &a.id, Proof { code: Some(&code), credential: None }).await.unwrap();
    assert_eq!(active.status, AuthenticatorStatus::Active);
    let again = confirm(&f.engine, &t, "test", "u1", &a.id, Proof { code: None, credential: None }).await.unwrap();
    assert_eq!((again.status, again.counter), (AuthenticatorStatus::Active, active.counter));
    assert_eq!(f.audited("authenticator.confirmed").await, 1);
}
