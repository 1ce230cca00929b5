//! Users and their authenticators as integrators manage them.

use vouchsafe_core::authenticator::{AuthenticatorKind, AuthenticatorStatus};
use vouchsafe_core::ids::AuthenticatorId;
use vouchsafe_core::settings::Settings;

use super::super::authenticators::NewAuthenticator;
use super::super::error::EngineError;
use super::super::users::{Created, UserContacts, create_authenticator, delete_authenticator, delete_user, put_user};
use super::fixture;

fn contacts<'a>(phone: Option<&'a str>, country: Option<&'a str>) -> UserContacts<'a> {
    UserContacts {
        phone,
        email: Some("Ann@Example.com"),
        display_name: Some("Ann"),
        default_country: country,
        privileged: false,
    }
}

/// Contacts are normalised (a national number read in the given country);
/// a bad id or number is refused; deleting removes the user.
#[tokio::test]
async fn a_user_is_stored_with_normalised_contacts() {
    let mut settings = Settings::default();
    settings.geo.default_country = Some("GB".into());
    let f = fixture(settings).await;
    let t = f.tenant_id();
    let u = put_user(&f.engine, &t, "test", "u1", contacts(Some("07400 123456"), None)).await.unwrap();
    assert_eq!(u.phone.as_deref(), Some("+447400123456"), "the tenant's country");
    let u = put_user(&f.engine, &t, "test", "u1", contacts(Some("(415) 555-2671"), Some("US"))).await.unwrap();
    assert_eq!(u.phone.as_deref(), Some("+14155552671"), "the request's country");
    assert_eq!(u.display_name.as_deref(), Some("Ann"));
    let bad_id = put_user(&f.engine, &t, "test", "", contacts(None, None)).await;
    assert!(matches!(bad_id, Err(EngineError::Refused(_))), "{bad_id:?}");
    let bad_country = put_user(&f.engine, &t, "test", "u2", contacts(None, Some("XX"))).await;
    assert!(matches!(bad_country, Err(EngineError::Refused(_))), "{bad_country:?}");
    assert!(put_user(&f.engine, &t, "test", "u2", contacts(Some("12"), None)).await.is_err());
    assert_eq!(f.audited("user.put").await, 2);
    delete_user(&f.engine, &t, "test", "u1").await.unwrap();
    assert!(f.engine.store.user(&t, "u1").await.is_err());
    assert_eq!(f.audited("user.deleted").await, 1);
}

/// Enrollment is for existing users; a new set of recovery codes replaces
/// the old one; deleting an authenticator that is not there is NotFound.
#[tokio::test]
async fn authenticators_are_enrolled_replaced_and_deleted() {
    let f = fixture(Settings::default()).await;
    let t = f.tenant_id();
    let totp = NewAuthenticator { kind: "totp", ..Default::default() };
    let ghost = create_authenticator(&f.engine, &t, "test", "ghost", &totp).await;
    assert!(matches!(ghost, Err(EngineError::NotFound)), "{:?}", ghost.err());
    put_user(&f.engine, &t, "test", "u1", contacts(None, None)).await.unwrap();
    let Created::Enrolled(enrolled) = create_authenticator(&f.engine, &t, "test", "u1", &totp).await.unwrap() else {
        panic!("a TOTP is enrolled");
    };
    assert_eq!(enrolled.authenticator.label.as_deref(), Some("Ann"), "the display name labels it");
    assert!(enrolled.otpauth_uri.as_deref().unwrap().contains("issuer=vouchsafe"), "the tenant's brand");
    let codes = NewAuthenticator { kind: "recovery_codes", ..Default::default() };
    for _ in 0..2 {
        create_authenticator(&f.engine, &t, "test", "u1", &codes).await.unwrap();
    }
    let list = f.engine.store.authenticators(&t, "u1").await.unwrap();
    let sets = list.iter().filter(|a| a.kind == AuthenticatorKind::RecoveryCodes).count();
    assert_eq!(sets, 1, "the second set replaced the first");
    let set = list.iter().find(|a| a.kind == AuthenticatorKind::RecoveryCodes).unwrap();
    assert_eq!(set.status, AuthenticatorStatus::Active);
    let n = f.engine.store.unspent_recovery_codes(&set.id, None).await.unwrap().len();
    assert!(n >= 8, "{n} stored codes");
    assert_eq!(f.audited("authenticator.created").await, 3);
    delete_authenticator(&f.engine, &t, "test", "u1", &set.id).await.unwrap();
    let gone = delete_authenticator(&f.engine, &t, "test", "u1", &set.id).await;
    assert!(matches!(gone, Err(EngineError::NotFound)), "{gone:?}");
    let unknown = delete_authenticator(&f.engine, &t, "test", "u1", &AuthenticatorId::generate()).await;
    assert!(matches!(unknown, Err(EngineError::NotFound)), "{unknown:?}");
}
