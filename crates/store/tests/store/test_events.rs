//! Test events (`POST /v1/webhook-endpoints/{id}/test`): counted against
//! the endpoint's hourly limit and queued in one write, so under a burst
//! of concurrent requests exactly the limit is queued, a refused one
//! queues nothing, and each endpoint has a limit of its own. The endpoint
//! is found and its being enabled checked inside that write.

use std::sync::Arc;

use serde_json::json;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::store::{SendRefusal, StoreError, TestEventRefusal, WebhookStore};
use vouchsafe_core::webhook::{EventFilter, TEST_EVENTS_PER_HOUR, test_event_counter};

use crate::contract::{at, audit, endpoint, tenant};
use crate::store;

#[tokio::test]
async fn a_burst_of_test_events_queues_exactly_the_hourly_limit() {
    let (store, _db) = store().await;
    let store = Arc::new(store);
    let t = tenant(&store, "acme").await;
    let (first, second) = (
        endpoint(&store, &t, EventFilter::Only(vec![EventType::UserLocked]), true).await.id,
        endpoint(&store, &t, EventFilter::All, true).await.id,
    );
    let now = at(1_700_000_000);
    let burst = 100;
    let tasks: Vec<_> = (0..burst)
        .map(|_| {
            let (store, tenant, endpoint) = (store.clone(), t.id.clone(), first.clone());
            tokio::spawn(async move {
                let counter = test_event_counter(&tenant, &endpoint, now);
                let event = Event::new(tenant.clone(), EventType::Ping, json!({"test": true}), now);
                store.queue_test_event(&counter, &event, &endpoint, now).await.unwrap()
            })
        })
        .collect();
    let (mut queued, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(n) => {
                assert_eq!(n, 1, "one message, to the endpoint named, whatever its filter");
                queued += 1;
            }
            Err(TestEventRefusal::Limited(SendRefusal::Fraud { scope, retry_after_s })) => {
                assert_eq!(scope, "webhook_test");
                assert!(retry_after_s > 0);
                refused += 1;
            }
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    let limit = usize::try_from(TEST_EVENTS_PER_HOUR).unwrap();
    assert_eq!((queued, refused), (limit, burst - limit));
    let depth = usize::try_from(store.outbox_depth().await.unwrap()).unwrap();
    assert_eq!(depth, limit, "the refused ones queued nothing");

    // The other endpoint counts on its own.
    let counter = test_event_counter(&t.id, &second, now);
    let event = Event::new(t.id.clone(), EventType::Ping, json!({"test": true}), now);
    assert_eq!(store.queue_test_event(&counter, &event, &second, now).await.unwrap(), Ok(1));
}

/// A test event for a disabled endpoint, or for one not in the event's
/// tenant, is refused inside the write: it queues nothing and is not
/// counted against the endpoint's hourly limit.
#[tokio::test]
async fn a_test_event_for_a_disabled_or_unknown_endpoint_counts_and_queues_nothing() {
    let (store, _db) = store().await;
    let (t, other) = (tenant(&store, "acme").await, tenant(&store, "other").await);
    let disabled = endpoint(&store, &t, EventFilter::All, false).await;
    let theirs = endpoint(&store, &other, EventFilter::All, true).await.id;
    let now = at(1_700_000_000);
    let ping = || Event::new(t.id.clone(), EventType::Ping, json!({"test": true}), now);
    let counter = test_event_counter(&t.id, &disabled.id, now);
    for _ in 0..=TEST_EVENTS_PER_HOUR {
        let refused = store.queue_test_event(&counter, &ping(), &disabled.id, now).await.unwrap();
        assert_eq!(refused, Err(TestEventRefusal::Disabled));
    }
    let elsewhere = store.queue_test_event(&test_event_counter(&t.id, &theirs, now), &ping(), &theirs, now).await;
    assert!(matches!(elsewhere, Err(StoreError::NotFound)), "another tenant's endpoint: {elsewhere:?}");
    assert_eq!(store.outbox_depth().await.unwrap(), 0, "nothing was queued");

    // Enabled again, it has its whole hourly limit: the refusals counted nothing.
    let enabled = vouchsafe_core::webhook::WebhookEndpoint { enabled: true, ..disabled.clone() };
    store.update_webhook_endpoint(&enabled, &audit("webhook_endpoint.updated")).await.unwrap();
    for _ in 0..TEST_EVENTS_PER_HOUR {
        assert_eq!(store.queue_test_event(&counter, &ping(), &disabled.id, now).await.unwrap(), Ok(1));
    }
}
