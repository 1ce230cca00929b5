//! Passkeys: the relying party, registration and authentication
//! ceremonies answered by a software authenticator, and what is refused
//! (another ceremony's credential, a cross-origin one, a clone's).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use vouchsafe_core::authenticator::{AuthenticatorKind, AuthenticatorStatus};
use vouchsafe_core::challenge::{ChallengeStatus, Factor};
use vouchsafe_core::settings::Settings;

use super::super::authenticators::{NewAuthenticator, Proof, confirm};
use super::super::challenges::{Answer, create, verify};
use super::super::error::EngineError;
use super::super::passkeys::{finish_registration, relying_party, start_authentication, start_registration};
use super::super::users::{Created, create_authenticator};
use super::challenges::new_challenge;
use super::fixture_at;
use super::soft_passkey::SoftPasskey;

#[test]
fn the_relying_party_is_the_public_host_name() {
    assert!(relying_party("https://id.example.com").is_some());
    assert!(relying_party("http://localhost:8080").is_some());
    assert!(relying_party("http://127.0.0.1:8080").is_none(), "an IP address is not a relying party id");
    assert!(relying_party("not a url").is_none());
}

/// Registration starts an unconfirmed passkey holding its ceremony, with
/// options naming the relying party and the user; a second registration
/// excludes the first's credential only once that one is confirmed.
#[tokio::test]
async fn a_registration_starts_an_unconfirmed_passkey() {
    let f = fixture_at("https://id.example.com", Settings::default()).await;
    f.user("u1", None, None).await;
    let (a, options) = start_registration(&f.engine, &f.tenant.id, "u1", "Ann", Some("laptop".into())).await.unwrap();
    assert_eq!(
        (a.kind, a.status, a.label.as_deref()),
        (AuthenticatorKind::Passkey, AuthenticatorStatus::Unconfirmed, Some("laptop"))
    );
    assert_eq!(options["rp"]["id"], "id.example.com");
    assert_eq!(options["user"]["name"], "u1");
    assert_eq!(options["user"]["displayName"], "Ann");
    let (b, again) = start_registration(&f.engine, &f.tenant.id, "u1", "Ann", None).await.unwrap();
    assert_eq!(again["user"]["id"], options["user"]["id"], "the user handle is stable");
    assert_ne!(again["challenge"], options["challenge"]);
    assert_ne!(a.id, b.id);
    let other = start_registration(&f.engine, &f.tenant.id, "u2", "Bob", None).await.unwrap().1;
    assert_ne!(other["user"]["id"], options["user"]["id"]);
    let long = "l".repeat(300);
    let bad = start_registration(&f.engine, &f.tenant.id, "u1", "Ann", Some(long)).await;
    assert!(matches!(bad, Err(EngineError::Invalid(ref e)) if e.field == "label"), "{:?}", bad.err());
}

/// A credential is refused before WebAuthn sees it when the ceremony timed
/// out, when it is cross-origin, or when it is not a credential at all.
#[tokio::test]
async fn a_registration_is_finished_only_in_time_and_by_a_credential() {
    let f = fixture_at("https://id.example.com", Settings::default()).await;
    f.user("u1", None, None).await;
    let req = NewAuthenticator { kind: "passkey", ..Default::default() };
    let Created::Passkey(a, _) = create_authenticator(&f.engine, &f.tenant.id, "test", "u1", &req).await.unwrap()
    else {
        panic!("a passkey registration");
    };
    assert_eq!(finish_registration(&f.engine, &a, &json!({"id": "x"})).unwrap(), None);
    let missing = confirm(&f.engine, &f.tenant.id, "test", "u1", &a.id, Proof { code: None, credential: None }).await;
    assert!(matches!(missing, Err(EngineError::Invalid(ref e)) if e.field == "credential"), "{missing:?}");
    let junk = json!({"id": "x"});
    let refused =
        confirm(&f.engine, &f.tenant.id, "test", "u1", &a.id, Proof { code: None, credential: Some(&junk) }).await;
    assert!(matches!(refused, Err(EngineError::Invalid(ref e)) if e.field == "credential"), "{refused:?}");
    f.advance(301);
    assert_eq!(finish_registration(&f.engine, &a, &junk).unwrap(), None, "after the ceremony's timeout");
}

/// Without a host name there is no relying party: passkeys are refused
/// with the reason, not an internal error.
#[tokio::test]
async fn without_a_relying_party_passkeys_are_refused() {
    let f = fixture_at("http://127.0.0.1:8080", Settings::default()).await;
    f.user("u1", None, None).await;
    let refused = start_registration(&f.engine, &f.tenant.id, "u1", "Ann", None).await;
    assert!(matches!(refused, Err(EngineError::Invalid(ref e)) if e.field == "type"), "{:?}", refused.err());
    assert!(matches!(start_authentication(&f.engine, &f.tenant.id, "u1").await, Err(EngineError::Invalid(_))));
}

/// A whole life of a passkey with a software authenticator: registered
/// and confirmed, then answering its challenges. A later registration
/// excludes it; an assertion made cross-origin, for another ceremony, or
/// by a clone whose counter is behind is refused (and counted).
#[tokio::test]
async fn a_passkey_answers_its_challenges_and_a_clone_is_refused() {
    let origin = "https://id.example.com";
    let f = fixture_at(origin, Settings::default()).await;
    let t = f.tenant_id();
    f.user("u1", None, None).await;
    let req = NewAuthenticator { kind: "passkey", ..Default::default() };
    let Created::Passkey(a, options) = create_authenticator(&f.engine, &t, "test", "u1", &req).await.unwrap() else {
        panic!("a passkey registration");
    };
    let mut key = SoftPasskey::new(origin);
    let Created::Passkey(b, _) = create_authenticator(&f.engine, &t, "test", "u1", &req).await.unwrap() else {
        panic!("a passkey registration");
    };
    let for_a = key.register(&options);
    let wrong_ceremony = finish_registration(&f.engine, &b, &for_a).unwrap();
    assert_eq!(wrong_ceremony, None, "a credential made for another registration");
    assert!(finish_registration(&f.engine, &a, &for_a).unwrap().is_some());
    let active = confirm(&f.engine, &t, "test", "u1", &a.id, Proof { code: None, credential: Some(&for_a) }).await;
    assert_eq!(active.unwrap().status, AuthenticatorStatus::Active);
    let Created::Passkey(_, third) = create_authenticator(&f.engine, &t, "test", "u1", &req).await.unwrap() else {
        panic!("a passkey registration");
    };
    assert_eq!(third["excludeCredentials"][0]["id"], for_a["id"], "a registered passkey is excluded");

    let handle = B64.decode(options["user"]["id"].as_str().unwrap()).unwrap();
    let request = || new_challenge(&f, "u1", None);
    let first = create(&f.engine, request()).await.unwrap();
    assert_eq!(first.factor, Factor::Passkey, "the strongest factor");
    let first_options: Value = serde_json::from_str(first.passkey_options.as_deref().unwrap()).unwrap();
    assert_eq!(first_options["rpId"], "id.example.com");
    let assertion = key.assert(&first_options, &handle);
    let answer = |c, credential| verify(&f.engine, &t, "test", c, Answer::Credential(credential));
    let sealed_before = f.engine.store.authenticator(&t, "u1", &a.id).await.unwrap().sealed;
    let approved = answer(&first.id, &assertion).await.unwrap();
    assert_eq!(approved.challenge.status, ChallengeStatus::Approved);
    assert!(approved.token.is_some());
    let stored = f.engine.store.authenticator(&t, "u1", &a.id).await.unwrap();
    assert_eq!(stored.counter, 1);
    assert_ne!(stored.sealed, sealed_before, "the passkey's state is sealed again with its new counter");

    let second = create(&f.engine, request()).await.unwrap();
    let second_options: Value = serde_json::from_str(second.passkey_options.as_deref().unwrap()).unwrap();
    let stale = key.assert(&first_options, &handle);
    let refused = answer(&second.id, &stale).await.unwrap();
    assert_eq!(
        (refused.challenge.status, refused.challenge.attempts),
        (ChallengeStatus::Pending, 1),
        "another ceremony's"
    );
    let framed = key.assert_from(&second_options, &handle, true);
    let refused = answer(&second.id, &framed).await.unwrap();
    assert_eq!((refused.challenge.status, refused.challenge.attempts), (ChallengeStatus::Pending, 2), "cross-origin");
    let code = verify(&f.engine, &t, "test", &second.id, Answer::Code("123456")).await.unwrap();
    assert_eq!(code.challenge.attempts, 3, "a code does not answer a passkey");
    key.counter = 0;
    let cloned = key.assert(&second_options, &handle);
    let refused = answer(&second.id, &cloned).await.unwrap();
    assert_eq!((refused.challenge.status, refused.challenge.attempts), (ChallengeStatus::Pending, 4), "a clone");
    key.counter = 10;
    let genuine = key.assert(&second_options, &handle);
    let approved = answer(&second.id, &genuine).await.unwrap();
    assert_eq!(approved.challenge.status, ChallengeStatus::Approved);
    assert_eq!(f.engine.store.authenticator(&t, "u1", &a.id).await.unwrap().counter, 11);
}

/// Registers and confirms a passkey for `user` with `key`; its user handle.
async fn registered(f: &super::Fixture, user: &str, key: &mut SoftPasskey) -> Vec<u8> {
    let req = NewAuthenticator { kind: "passkey", ..Default::default() };
    let t = f.tenant_id();
    let Created::Passkey(a, options) = create_authenticator(&f.engine, &t, "test", user, &req).await.unwrap() else {
        panic!("a passkey registration");
    };
    let credential = key.register(&options);
    confirm(&f.engine, &t, "test", user, &a.id, Proof { code: None, credential: Some(&credential) }).await.unwrap();
    B64.decode(options["user"]["id"].as_str().unwrap()).unwrap()
}

/// A synced passkey signs a counter of 0 every time: it answers every
/// challenge (there is no counter to move forward).
#[tokio::test]
async fn a_passkey_without_a_counter_answers_every_time() {
    let origin = "https://id.example.com";
    let f = fixture_at(origin, Settings::default()).await;
    f.user("u1", None, None).await;
    let mut key = SoftPasskey::new(origin);
    key.keeps_counter = false;
    let handle = registered(&f, "u1", &mut key).await;
    for _ in 0..2 {
        let c = create(&f.engine, new_challenge(&f, "u1", Some("passkey"))).await.unwrap();
        let options: Value = serde_json::from_str(c.passkey_options.as_deref().unwrap()).unwrap();
        let assertion = key.assert(&options, &handle);
        let answered = verify(&f.engine, &f.tenant.id, "test", &c.id, Answer::Credential(&assertion)).await.unwrap();
        assert_eq!(answered.challenge.status, ChallengeStatus::Approved);
    }
}

/// A registration may be finished until its ceremony's five minutes are
/// up, and not a moment after.
#[tokio::test]
async fn a_registration_lasts_its_ceremonys_five_minutes() {
    let origin = "https://id.example.com";
    let f = fixture_at(origin, Settings::default()).await;
    f.user("u1", None, None).await;
    let req = NewAuthenticator { kind: "passkey", ..Default::default() };
    let t = f.tenant_id();
    let start = || create_authenticator(&f.engine, &t, "test", "u1", &req);
    let (Created::Passkey(on_time, on_time_options), Created::Passkey(late, late_options)) =
        (start().await.unwrap(), start().await.unwrap())
    else {
        panic!("passkey registrations");
    };
    f.advance(300);
    let mut key = SoftPasskey::new(origin);
    assert!(finish_registration(&f.engine, &on_time, &key.register(&on_time_options)).unwrap().is_some());
    f.advance(1);
    let mut other = SoftPasskey::new(origin);
    assert_eq!(finish_registration(&f.engine, &late, &other.register(&late_options)).unwrap(), None);
}
