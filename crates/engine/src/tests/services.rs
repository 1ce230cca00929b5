//! Changing a service: only the members named, validated, written on the
//! version read.

use vouchsafe_core::channel::Channel;
use vouchsafe_core::ids::ServiceId;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::StoreError;

use super::super::admin::create_service;
use super::super::services::{ServiceChange, UpdateError, update};
use super::fixture;

#[tokio::test]
async fn an_update_changes_the_members_it_names() {
    let f = fixture(Settings::default()).await;
    let t = f.tenant_id();
    let s = create_service(&f.engine, &f.admin(), "Shop", Some(8), Some(300), None).await.unwrap();
    f.advance(3);
    let change = ServiceChange { name: Some("  Store ".into()), ..Default::default() };
    let changed = update(&f.engine, &t, "test", &s.id, &change).await.unwrap();
    assert_eq!((changed.name.as_str(), changed.code_length, changed.ttl_s), ("Store", Some(8), Some(300)));
    assert_eq!(changed.updated_at, f.now());
    let change = ServiceChange {
        code_length: Some(None),
        ttl_s: Some(Some(120)),
        channels: Some(vec![Channel::Email]),
        ..Default::default()
    };
    let changed = update(&f.engine, &t, "test", &s.id, &change).await.unwrap();
    assert_eq!((changed.code_length, changed.ttl_s, changed.channels.clone()), (None, Some(120), vec![Channel::Email]));
    let stored = f.engine.store.service(&t, &s.id).await.unwrap();
    assert_eq!(stored.value, changed);
    assert_eq!(f.audited("service.updated").await, 2);

    let bad = ServiceChange { code_length: Some(Some(99)), ..Default::default() };
    assert!(matches!(update(&f.engine, &t, "test", &s.id, &bad).await, Err(UpdateError::Invalid(_))));
    let missing = update(&f.engine, &t, "test", &ServiceId::generate(), &ServiceChange::default()).await;
    assert!(matches!(missing, Err(UpdateError::Store(StoreError::NotFound))), "{missing:?}");
    create_service(&f.engine, &f.admin(), "Other", None, None, None).await.unwrap();
    let taken = ServiceChange { name: Some("Other".into()), ..Default::default() };
    assert!(matches!(
        update(&f.engine, &t, "test", &s.id, &taken).await,
        Err(UpdateError::Store(StoreError::Conflict(_)))
    ));
}
