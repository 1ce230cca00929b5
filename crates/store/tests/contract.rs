//! The `Store` contract, run against whichever engine `TEST_DB` names; CI
//! runs it once on SQLite and once on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use time::OffsetDateTime;
use vouchsafe_core::api_key::{ApiKey, NewApiKey};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::ids::{ApiKeyId, ServiceId, TenantId};
use vouchsafe_core::role::Role;
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{ApiKeyStore, MetaStore, ServiceStore, StoreError, TenantStore};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_store::SqlStore;
use vouchsafe_store::testing::{TestDatabase, fresh_database};

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap()
}

async fn store() -> (SqlStore, TestDatabase) {
    let db = fresh_database().await.unwrap();
    let store = SqlStore::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    (store, db)
}

async fn tenant(store: &SqlStore, name: &str) -> Tenant {
    let (t, default) = Tenant::new(name, at(1_700_000_000)).unwrap();
    store.create_tenant(&t, &default, &Settings::default()).await.unwrap();
    t
}

fn new_key(tenant: &TenantId, hash: &str) -> NewApiKey {
    NewApiKey {
        key: ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: tenant.clone(),
            name: "ci".into(),
            role: Role::Agent,
            hint: "abcd".into(),
            created_at: at(1_700_000_100),
            revoked_at: None,
        },
        secret_hash: hash.into(),
    }
}

#[tokio::test]
async fn migrations_run_twice_without_harm() {
    let (store, _db) = store().await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn the_database_is_set_up_durably() {
    let (store, _db) = store().await;
    let described = store.describe().await.unwrap();
    if vouchsafe_store::testing::is_postgres() {
        assert!(described.starts_with("PostgreSQL "), "{described}");
    } else {
        // WAL with FULL: a committed transaction survives power loss.
        assert_eq!(described, "SQLite journal_mode=wal synchronous=FULL busy_timeout=10000ms");
    }
}

#[tokio::test]
async fn key_check_is_written_once() {
    let (store, _db) = store().await;
    assert_eq!(store.key_check().await.unwrap(), None);
    store.init_key_check("first").await.unwrap();
    store.init_key_check("second").await.unwrap();
    assert_eq!(store.key_check().await.unwrap().as_deref(), Some("first"));
}

#[tokio::test]
async fn a_tenant_comes_with_default_service_and_settings() {
    let (store, _db) = store().await;
    let t = tenant(&store, "acme").await;
    assert_eq!(store.tenant(&t.id).await.unwrap(), t);
    assert_eq!(store.tenant_by_name("acme").await.unwrap(), t);
    let services = store.list_services(&t.id).await.unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].name, "default");
    assert_eq!(services[0].id, t.default_service_id);
    let settings = store.settings(&t.id).await.unwrap();
    assert_eq!(settings.value, Settings::default());
    assert_eq!(settings.version, 1);
}

#[tokio::test]
async fn tenant_names_and_unknown_ids() {
    let (store, _db) = store().await;
    tenant(&store, "acme").await;
    let (dup, svc) = Tenant::new("acme", at(1)).unwrap();
    assert!(matches!(store.create_tenant(&dup, &svc, &Settings::default()).await, Err(StoreError::Conflict(_))));
    // Nothing of the failed tenant was left behind.
    assert!(matches!(store.tenant(&dup.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.tenant_by_name("nobody").await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn settings_replace_is_conditional_on_the_version() {
    let (store, _db) = store().await;
    let t = tenant(&store, "acme").await;
    let mut s = Settings::default();
    s.otp.code_length = 8;
    store.replace_settings(&t.id, &s, 1, at(2)).await.unwrap();
    let read = store.settings(&t.id).await.unwrap();
    assert_eq!(read.value.otp.code_length, 8);
    assert_eq!(read.version, 2);
    // A writer that read version 1 loses instead of overwriting.
    s.otp.code_length = 4;
    assert!(matches!(store.replace_settings(&t.id, &s, 1, at(3)).await, Err(StoreError::Stale)));
    assert_eq!(store.settings(&t.id).await.unwrap().value.otp.code_length, 8);
}

#[tokio::test]
async fn services_crud_and_isolation() {
    let (store, _db) = store().await;
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    let svc = Service::new(a.id.clone(), "Login", Some(8), Some(300), Some(vec![Channel::Sms]), at(5)).unwrap();
    store.create_service(&svc).await.unwrap();
    let read = store.service(&a.id, &svc.id).await.unwrap();
    assert_eq!(read.value, svc);
    assert!(
        matches!(store.service(&b.id, &svc.id).await, Err(StoreError::NotFound)),
        "tenant b must not see a's service"
    );
    let same_name = Service::new(a.id.clone(), "Login", None, None, None, at(6)).unwrap();
    assert!(matches!(store.create_service(&same_name).await, Err(StoreError::Conflict(_))));
    // Another tenant may use the name.
    store.create_service(&Service::new(b.id.clone(), "Login", None, None, None, at(6)).unwrap()).await.unwrap();

    let mut changed = read.value.clone();
    changed.ttl_s = None;
    changed.updated_at = at(7);
    store.replace_service(&changed, read.version).await.unwrap();
    assert!(matches!(store.replace_service(&changed, read.version).await, Err(StoreError::Stale)));
    assert_eq!(store.service(&a.id, &svc.id).await.unwrap().value.ttl_s, None);
    assert_eq!(store.service_by_name(&a.id, "Login").await.unwrap().id, svc.id);

    assert!(matches!(store.delete_service(&b.id, &svc.id).await, Err(StoreError::NotFound)));
    store.delete_service(&a.id, &svc.id).await.unwrap();
    assert!(matches!(store.service(&a.id, &svc.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.service(&a.id, &ServiceId::generate()).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn api_keys_are_found_by_hash_until_revoked() {
    let (store, _db) = store().await;
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    let key = new_key(&a.id, "hash-1");
    store.create_api_key(&key).await.unwrap();
    assert_eq!(store.api_key_by_secret_hash("hash-1").await.unwrap(), Some(key.key.clone()));
    assert_eq!(store.api_key_by_secret_hash("hash-2").await.unwrap(), None);
    assert_eq!(store.list_api_keys(&a.id).await.unwrap(), vec![key.key.clone()]);
    assert!(store.list_api_keys(&b.id).await.unwrap().is_empty());
    assert!(matches!(store.api_key(&b.id, &key.key.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.revoke_api_key(&b.id, &key.key.id, at(9)).await, Err(StoreError::NotFound)));

    store.revoke_api_key(&a.id, &key.key.id, at(10)).await.unwrap();
    assert_eq!(store.api_key_by_secret_hash("hash-1").await.unwrap(), None);
    store.revoke_api_key(&a.id, &key.key.id, at(11)).await.unwrap();
    assert_eq!(store.api_key(&a.id, &key.key.id).await.unwrap().revoked_at, Some(at(10)));
    // The same hash can never be registered twice.
    assert!(matches!(store.create_api_key(&new_key(&b.id, "hash-1")).await, Err(StoreError::Conflict(_))));
}
