//! A tenant's configuration: API keys, credentials, providers, services,
//! settings; each change audited.

use serde_json::json;
use vouchsafe_core::provider::Credential;
use vouchsafe_core::role::Role;
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::StoreError;

use super::super::admin::{
    DeleteServiceError, create_api_key, create_service, delete_credential, delete_provider, delete_service,
    patch_settings, put_credential, put_provider, revoke_api_key,
};
use super::super::error::EngineError;
use super::super::send::open_credential;
use super::{field_of, fixture, gateway_provider};

/// A key's secret is answered once and found by its hash; a revoked key's
/// is not; a bad name is refused.
#[tokio::test]
async fn api_keys_are_issued_hashed_and_revoked() {
    let f = fixture(Settings::default()).await;
    let (key, secret) = create_api_key(&f.engine, &f.admin(), Role::Agent, " desk ").await.unwrap();
    assert_eq!((key.name.as_str(), key.role), ("desk", Role::Agent));
    let hash = f.engine.key_hasher.hash(secret.expose());
    assert_eq!(f.engine.store.api_key_by_secret_hash(&hash).await.unwrap().map(|k| k.id), Some(key.id.clone()));
    revoke_api_key(&f.engine, &f.admin(), &key.id).await.unwrap();
    assert!(f.engine.store.api_key(&f.tenant.id, &key.id).await.unwrap().revoked_at.is_some());
    let bad = create_api_key(&f.engine, &f.admin(), Role::Admin, "a\u{7}b").await;
    assert!(matches!(bad, Err(EngineError::Refused(ref e)) if e.field == "name"));
    assert_eq!(f.audited("api_key.created").await, 1);
    assert_eq!(f.audited("api_key.revoked").await, 1);
}

/// A credential is stored sealed to its tenant and name and opens for a
/// send; an invalid one is refused; one in use cannot be deleted.
#[tokio::test]
async fn credentials_are_sealed_and_open_only_for_their_name() {
    let f = fixture(Settings::default()).await;
    let credential = Credential::Bearer { token: "tok-123".into() };
    let info = put_credential(&f.engine, &f.admin(), "gw-key", &credential).await.unwrap();
    assert_eq!(info.name, "gw-key");
    let opened = open_credential(&f.engine, &f.tenant.id, "gw-key").await.unwrap();
    assert!(matches!(opened, Credential::Bearer { ref token } if token == "tok-123"));
    assert!(open_credential(&f.engine, &f.tenant.id, "other").await.is_err());
    let empty = put_credential(&f.engine, &f.admin(), "bad", &Credential::Bearer { token: String::new() }).await;
    assert!(matches!(empty, Err(EngineError::Refused(_))), "{empty:?}");

    let mut provider = gateway_provider(&f.tenant.id, "gw", "http://127.0.0.1:9/send", f.now());
    provider.credential = Some("gw-key".into());
    put_provider(&f.engine, &f.admin(), &provider).await.unwrap();
    assert!(delete_credential(&f.engine, &f.admin(), "gw-key").await.is_err(), "in use by gw");
    delete_provider(&f.engine, &f.admin(), "gw").await.unwrap();
    delete_credential(&f.engine, &f.admin(), "gw-key").await.unwrap();
    assert!(open_credential(&f.engine, &f.tenant.id, "gw-key").await.is_err());
    let actions = f.audit_actions().await;
    for action in ["credential.put", "provider.put", "provider.deleted", "credential.deleted"] {
        assert_eq!(actions.iter().filter(|a| *a == action).count(), 1, "{action}: {actions:?}");
    }
}

/// A provider is checked before it is saved: its settings, its URL under
/// the outbound rule, its credential's existence.
#[tokio::test]
async fn a_provider_is_checked_before_it_is_saved() {
    let f = fixture(Settings::default()).await;
    let bad_url = gateway_provider(&f.tenant.id, "gw", "ftp://example.com/send", f.now());
    assert!(field_of(&put_provider(&f.engine, &f.admin(), &bad_url).await).is_some());
    let mut no_credential = gateway_provider(&f.tenant.id, "gw", "http://127.0.0.1:9/send", f.now());
    no_credential.credential = Some("missing".into());
    let missing = put_provider(&f.engine, &f.admin(), &no_credential).await;
    assert!(matches!(missing, Err(EngineError::Store(StoreError::NotFound))), "{missing:?}");
    let mut bad_name = gateway_provider(&f.tenant.id, "no spaces", "http://127.0.0.1:9/send", f.now());
    bad_name.name = "no spaces".into();
    assert!(matches!(put_provider(&f.engine, &f.admin(), &bad_name).await, Err(EngineError::Refused(_))));
    assert_eq!(f.audited("provider.put").await, 0);
}

/// Services are created under unique names; the default one stays.
#[tokio::test]
async fn services_are_created_and_the_default_one_stays() {
    let f = fixture(Settings::default()).await;
    let s: Service = create_service(&f.engine, &f.admin(), "Shop", Some(8), Some(300), None).await.unwrap();
    assert_eq!((s.code_length, s.ttl_s), (Some(8), Some(300)));
    let taken = create_service(&f.engine, &f.admin(), "Shop", None, None, None).await;
    assert!(matches!(taken, Err(EngineError::Store(StoreError::Conflict(_)))), "{taken:?}");
    let bad = create_service(&f.engine, &f.admin(), "Shop 2", Some(99), None, None).await;
    assert!(matches!(bad, Err(EngineError::Refused(_))), "{bad:?}");
    let default = f.tenant.default_service_id.clone();
    assert!(matches!(delete_service(&f.engine, &f.admin(), &default).await, Err(DeleteServiceError::IsDefault)));
    delete_service(&f.engine, &f.admin(), &s.id).await.unwrap();
    assert!(f.engine.store.service(&f.tenant.id, &s.id).await.is_err());
    assert_eq!(f.audited("service.deleted").await, 1);
}

/// A settings patch is merged into the current version and validated.
#[tokio::test]
async fn a_settings_patch_is_merged_and_validated() {
    let f = fixture(Settings::default()).await;
    let next = patch_settings(&f.engine, &f.admin(), &json!({"otp": {"ttl_s": 300}})).await.unwrap();
    assert_eq!((next.otp.ttl_s, next.otp.max_check_attempts), (300, 5));
    let stored = f.engine.store.settings(&f.tenant.id).await.unwrap();
    assert_eq!(stored.value.otp.ttl_s, 300);
    let bad = patch_settings(&f.engine, &f.admin(), &json!({"otp": {"ttl_s": 0}})).await;
    assert!(matches!(bad, Err(EngineError::Refused(_))), "{bad:?}");
    assert_eq!(f.engine.store.settings(&f.tenant.id).await.unwrap().value.otp.ttl_s, 300);
    assert_eq!(f.audited("settings.updated").await, 1);
}
