//! The crate root's shared rules: locale tags, the sender's name, a
//! tenant's settings with one of its services, and error mapping.

use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::StoreError;

use super::super::admin::create_service;
use super::super::error::EngineError;
use super::super::{parse_locale, sender_name, settings_and_service};
use super::fixture;

#[test]
fn a_locale_is_a_short_tag_of_letters_and_digits() {
    assert_eq!(parse_locale(None).unwrap(), None);
    assert_eq!(parse_locale(Some("es")).unwrap().as_deref(), Some("es"));
    assert_eq!(parse_locale(Some("pt_BR")).unwrap().as_deref(), Some("pt-BR"));
    assert_eq!(parse_locale(Some("zh-Hant-TW")).unwrap().as_deref(), Some("zh-Hant-TW"), "ten characters");
    for bad in ["e", "zh-Hant-TWX", "pt-", "-pt", "p!", "pt--BR", "es es"] {
        let refused = parse_locale(Some(bad));
        assert!(matches!(refused, Err(EngineError::Invalid(ref e)) if e.field == "locale"), "{bad}: {refused:?}");
    }
}

#[tokio::test]
async fn a_service_is_found_by_its_id_and_named_by_the_brand_when_default() {
    let mut settings = Settings::default();
    settings.branding.name = "Acme Bank".into();
    let f = fixture(settings).await;
    let t = f.tenant_id();
    let found = settings_and_service(&f.engine, &t, None).await.unwrap();
    assert!(found.is_default);
    assert_eq!(found.service.id, f.tenant.default_service_id);
    assert_eq!(sender_name(&found.settings.value, &found.service, found.is_default), "Acme Bank");
    let shop = create_service(&f.engine, &f.admin(), "Shop", None, None, None).await.unwrap();
    let found = settings_and_service(&f.engine, &t, Some(shop.id.as_str())).await.unwrap();
    assert!(!found.is_default);
    assert_eq!(found.service.id, shop.id);
    assert_eq!(sender_name(&found.settings.value, &found.service, found.is_default), "Shop");
    let same = settings_and_service(&f.engine, &t, Some(f.tenant.default_service_id.as_str())).await.unwrap();
    assert!(same.is_default, "the default service named by its id");
    assert!(matches!(settings_and_service(&f.engine, &t, Some("nonsense")).await, Err(EngineError::NotFound)));
    let other = f.other_tenant("other").await;
    let elsewhere = settings_and_service(&f.engine, &other, Some(shop.id.as_str())).await;
    assert!(matches!(elsewhere, Err(EngineError::NotFound)), "another tenant's service");
}

#[test]
fn store_errors_keep_their_kind() {
    assert!(matches!(EngineError::from(StoreError::NotFound), EngineError::NotFound));
    assert!(matches!(EngineError::from(StoreError::Stale), EngineError::Store(StoreError::Stale)));
    let internal = EngineError::internal("cause");
    assert_eq!(std::error::Error::source(&internal).map(ToString::to_string).as_deref(), Some("cause"));
}
