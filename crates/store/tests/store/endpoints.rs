//! The limit of webhook endpoints per tenant: counted inside the write
//! that creates one, so a burst of concurrent creations stores exactly the
//! limit, a refused creation stores nothing and audits nothing, and each
//! tenant has a limit of its own.

use std::sync::Arc;

use vouchsafe_core::store::{AuditStore, StoreError, WebhookStore};
use vouchsafe_core::webhook::EventFilter;

use crate::contract::{audit, new_endpoint, tenant};
use crate::store;

#[tokio::test]
async fn a_burst_of_creations_stores_exactly_the_limit() {
    let (store, _db) = store().await;
    let store = Arc::new(store);
    let (t, other) = (tenant(&store, "acme").await, tenant(&store, "other").await);
    let (limit, burst) = (10, 60);
    let tasks: Vec<_> = (0..burst)
        .map(|_| {
            let (store, e) = (store.clone(), new_endpoint(&t, EventFilter::All, true));
            tokio::spawn(async move {
                store.create_webhook_endpoint(&e, b"sealed", &audit("webhook_endpoint.created"), limit).await
            })
        })
        .collect();
    let stored = usize::try_from(limit).unwrap();
    assert_eq!(crate::tenant_limits::tally(tasks).await, (stored, burst - stored), "exactly the limit is created");
    assert_eq!(store.list_webhook_endpoints(&t.id).await.unwrap().len(), 10, "the refused ones stored nothing");
    let audited = store.audit_events(&t.id, 0, 1000).await.unwrap();
    let audited = audited.iter().filter(|a| a.entry.action == "webhook_endpoint.created").count();
    assert_eq!(audited, 10, "and audited nothing");

    // Another tenant has its own limit.
    let theirs = new_endpoint(&other, EventFilter::All, true);
    store.create_webhook_endpoint(&theirs, b"sealed", &audit("webhook_endpoint.created"), limit).await.unwrap();
}

/// Disabled endpoints count (they may be enabled again); a deleted one
/// frees its place.
#[tokio::test]
async fn disabled_endpoints_count_and_a_deleted_one_frees_its_place() {
    let (store, _db) = store().await;
    let t = tenant(&store, "acme").await;
    let create = |e| {
        let store = &store;
        async move { store.create_webhook_endpoint(&e, b"sealed", &audit("webhook_endpoint.created"), 2).await }
    };
    let disabled = new_endpoint(&t, EventFilter::All, false);
    create(disabled.clone()).await.unwrap();
    create(new_endpoint(&t, EventFilter::All, true)).await.unwrap();
    let third = new_endpoint(&t, EventFilter::All, true);
    assert!(matches!(create(third.clone()).await, Err(StoreError::LimitReached(_))));
    assert!(store.webhook_endpoint(&t.id, &third.id).await.is_err(), "nothing stored");

    store.delete_webhook_endpoint(&t.id, &disabled.id, &audit("webhook_endpoint.deleted")).await.unwrap();
    create(third.clone()).await.unwrap();
    assert_eq!(store.webhook_endpoint(&t.id, &third.id).await.unwrap().id, third.id);
}
