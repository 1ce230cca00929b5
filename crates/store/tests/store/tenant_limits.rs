//! The bounds on what a tenant's admin can make many of, and which are
//! listed whole: services, provider credentials and API keys. Each is
//! counted inside the write that adds one, so a burst of concurrent
//! creations stores exactly up to the bound, audits only what it stored,
//! and leaves other tenants theirs. (Providers and webhook endpoints have
//! theirs tested beside them.)

use std::sync::Arc;

use time::Duration;
use vouchsafe_core::api_key::API_KEYS_PER_TENANT;
use vouchsafe_core::provider::CREDENTIALS_PER_TENANT;
use vouchsafe_core::service::{SERVICES_PER_TENANT, Service};
use vouchsafe_core::store::{ApiKeyStore, AuditStore, ProviderStore, ServiceStore, StoreError};

use crate::contract::{at, audit, new_key, tenant};
use crate::store;

/// Splits the outcomes of a burst into (stored, refused at the limit).
pub(crate) async fn tally(tasks: Vec<tokio::task::JoinHandle<Result<(), StoreError>>>) -> (usize, usize) {
    let (mut stored, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => stored += 1,
            Err(StoreError::LimitReached(_)) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    (stored, refused)
}

fn limit(bound: u32) -> usize {
    usize::try_from(bound).unwrap()
}

#[tokio::test]
async fn a_burst_of_new_services_stores_exactly_up_to_the_limit() {
    let (store, _db) = store().await;
    let store = Arc::new(store);
    let (t, other) = (tenant(&store, "acme").await, tenant(&store, "globex").await);
    let head = store.audit_head(&t.id).await.unwrap();
    let burst = limit(SERVICES_PER_TENANT) + 20;
    let tasks = (0..burst)
        .map(|n| {
            let store = store.clone();
            let service = Service::new(t.id.clone(), &format!("svc-{n}"), None, None, None, at(1_700_000_100)).unwrap();
            tokio::spawn(async move { store.create_service(&service, &audit("service.created")).await })
        })
        .collect();
    let stored = limit(SERVICES_PER_TENANT) - 1;
    assert_eq!(tally(tasks).await, (stored, burst - stored), "the default service counts");
    assert_eq!(store.list_services(&t.id).await.unwrap().len(), limit(SERVICES_PER_TENANT));
    assert_eq!(
        store.audit_head(&t.id).await.unwrap() - head,
        i64::try_from(stored).unwrap(),
        "refusals are not audited"
    );

    let taken = Service::new(t.id.clone(), "svc-0", None, None, None, at(1_700_000_200)).unwrap();
    assert!(matches!(store.create_service(&taken, &audit("service.created")).await, Err(StoreError::LimitReached(_))));
    let elsewhere = Service::new(other.id.clone(), "svc-0", None, None, None, at(1_700_000_200)).unwrap();
    store.create_service(&elsewhere, &audit("service.created")).await.unwrap();
    let gone = store.list_services(&t.id).await.unwrap().into_iter().find(|s| s.name.starts_with("svc-")).unwrap();
    store.delete_service(&t.id, &gone.id, &audit("service.deleted")).await.unwrap();
    let again = Service::new(t.id.clone(), "svc-new", None, None, None, at(1_700_000_300)).unwrap();
    store.create_service(&again, &audit("service.created")).await.unwrap();
    let dup = Service::new(t.id.clone(), "svc-new", None, None, None, at(1_700_000_300)).unwrap();
    assert!(
        matches!(store.create_service(&dup, &audit("service.created")).await, Err(StoreError::LimitReached(_))),
        "at the limit, the bound is what refuses"
    );
}

#[tokio::test]
async fn a_burst_of_new_credentials_stores_exactly_up_to_the_limit_and_rotations_still_save() {
    let (store, _db) = store().await;
    let store = Arc::new(store);
    let (t, other) = (tenant(&store, "acme").await, tenant(&store, "globex").await);
    let head = store.audit_head(&t.id).await.unwrap();
    let burst = limit(CREDENTIALS_PER_TENANT) + 20;
    let tasks = (0..burst)
        .map(|n| {
            let (store, tenant) = (store.clone(), t.id.clone());
            tokio::spawn(async move {
                let name = format!("cred-{n}");
                store
                    .put_credential(&tenant, &name, "twilio", b"sealed", at(1_700_000_100), &audit("credential.put"))
                    .await?;
                Ok(())
            })
        })
        .collect();
    let stored = limit(CREDENTIALS_PER_TENANT);
    assert_eq!(tally(tasks).await, (stored, burst - stored));
    assert_eq!(store.list_credentials(&t.id).await.unwrap().len(), stored);
    assert_eq!(
        store.audit_head(&t.id).await.unwrap() - head,
        i64::try_from(stored).unwrap(),
        "refusals are not audited"
    );

    let kept = store.list_credentials(&t.id).await.unwrap().remove(0).name;
    store
        .put_credential(&t.id, &kept, "twilio", b"rotated", at(1_700_000_200), &audit("credential.put"))
        .await
        .unwrap();
    assert_eq!(store.sealed_credential(&t.id, &kept).await.unwrap(), b"rotated", "a rotation saves at the limit");
    let put = audit("credential.put");
    let one_more = store.put_credential(&t.id, "one-more", "twilio", b"s", at(1_700_000_200), &put).await;
    assert!(matches!(one_more, Err(StoreError::LimitReached(_))));
    assert!(matches!(store.sealed_credential(&t.id, "one-more").await, Err(StoreError::NotFound)), "nothing stored");
    store
        .put_credential(&other.id, "one-more", "twilio", b"s", at(1_700_000_200), &audit("credential.put"))
        .await
        .unwrap();
    store.delete_credential(&t.id, &kept, &audit("credential.deleted")).await.unwrap();
    store.put_credential(&t.id, "one-more", "twilio", b"s", at(1_700_000_300), &audit("credential.put")).await.unwrap();
}

/// Revoked keys count until they are dropped, so creating and revoking
/// cannot grow the list without end; dropping them frees their places.
#[tokio::test]
async fn api_keys_revoked_or_not_count_until_revoked_ones_are_dropped() {
    let (store, _db) = store().await;
    let store = Arc::new(store);
    let (t, other) = (tenant(&store, "acme").await, tenant(&store, "globex").await);
    // One key short of the bound, then a burst for the last place.
    for n in 0..limit(API_KEYS_PER_TENANT) - 1 {
        store.create_api_key(&new_key(&t.id, &format!("hash-{n}")), &audit("api_key.created")).await.unwrap();
    }
    let tasks = (0..20)
        .map(|n| {
            let (store, key) = (store.clone(), new_key(&t.id, &format!("burst-{n}")));
            tokio::spawn(async move { store.create_api_key(&key, &audit("api_key.created")).await })
        })
        .collect();
    assert_eq!(tally(tasks).await, (1, 19));
    let keys = store.list_api_keys(&t.id).await.unwrap();
    assert_eq!(keys.len(), limit(API_KEYS_PER_TENANT));

    let (first, second) = (&keys[0], &keys[1]);
    store.revoke_api_key(&t.id, &first.id, &audit_at_revocation(10)).await.unwrap();
    store.revoke_api_key(&t.id, &second.id, &audit_at_revocation(20)).await.unwrap();
    let refused = store.create_api_key(&new_key(&t.id, "after-revoking"), &audit("api_key.created")).await;
    assert!(matches!(refused, Err(StoreError::LimitReached(_))), "a revoked key still counts");
    store.create_api_key(&new_key(&other.id, "elsewhere"), &audit("api_key.created")).await.unwrap();

    // Dropped: keys revoked at or before the instant, and no others.
    assert_eq!(store.prune_revoked_api_keys(at(1_700_000_010)).await.unwrap(), 1);
    let left = store.list_api_keys(&t.id).await.unwrap();
    assert_eq!(left.len(), limit(API_KEYS_PER_TENANT) - 1);
    assert!(left.iter().all(|k| k.id != first.id) && left.iter().any(|k| k.id == second.id));
    store.create_api_key(&new_key(&t.id, "after-pruning"), &audit("api_key.created")).await.unwrap();
    assert_eq!(store.prune_revoked_api_keys(at(1_700_000_010) + Duration::days(365)).await.unwrap(), 1);
    assert_eq!(store.list_api_keys(&t.id).await.unwrap().len(), limit(API_KEYS_PER_TENANT) - 1, "unrevoked keys stay");
}

/// An audit entry of a revocation at `s` seconds past the tests' epoch
/// (the revocation's time is the entry's).
fn audit_at_revocation(s: i64) -> vouchsafe_core::audit::AuditEntry {
    vouchsafe_core::audit::AuditEntry::success("key_test", "api_key.revoked", "target", at(1_700_000_000 + s))
}
