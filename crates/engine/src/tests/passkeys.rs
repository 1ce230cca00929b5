//! Passkeys without a browser: the relying party, the ceremony's start,
//! and what is refused before WebAuthn looks at a credential. (Whole
//! ceremonies run in the server's tests, with Chromium's authenticator.)

use serde_json::json;
use vouchsafe_core::authenticator::{AuthenticatorKind, AuthenticatorStatus};
use vouchsafe_core::settings::Settings;

use super::super::authenticators::{Proof, confirm};
use super::super::error::EngineError;
use super::super::passkeys::{finish_registration, relying_party, start_authentication, start_registration};
use super::super::users::{Created, create_authenticator};
use super::fixture_at;

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
    let req = super::super::authenticators::NewAuthenticator { kind: "passkey", ..Default::default() };
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
