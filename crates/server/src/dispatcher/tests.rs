//! The recorder against a real store: once it has written an attempt's
//! outcome, the message's lease has ended, and it says so to the claiming
//! loop. (Without that word, a loop that found a tenant or an endpoint at
//! its share while those leases were held would wait for its next poll.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::ids::{AttemptId, WebhookEndpointId};
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{Attempt, Finished, MessageOutcome, Store};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::webhook::{EventFilter, WebhookEndpoint};
use vouchsafe_store::testing::{connect, fresh_database};

use super::record;

#[tokio::test]
async fn the_recorder_says_when_written_outcomes_have_ended_their_leases() {
    let db = fresh_database().await.unwrap();
    let store = connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let audit = |action: &str| AuditEntry::success("test", action, "target", now);
    let (tenant, service) = Tenant::new("acme", now).unwrap();
    store.create_tenant(&tenant, &service, &Settings::default(), &audit("tenant.created")).await.unwrap();
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        tenant_id: tenant.id.clone(),
        url: "https://crm.example.test/hook".into(),
        description: String::new(),
        events: EventFilter::All,
        enabled: true,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    store.create_webhook_endpoint(&endpoint, b"sealed", &audit("webhook_endpoint.created")).await.unwrap();
    store.enqueue_event(&Event::new(tenant.id.clone(), EventType::Ping, json!({}), now), None).await.unwrap();
    let message = store.claim_due_messages(now, now + Duration::from_secs(60), 1).await.unwrap().remove(0);

    let (done, outcomes) = mpsc::unbounded_channel();
    let leases_ended = Arc::new(Notify::new());
    let recorder = tokio::spawn(record(store.clone(), outcomes, leases_ended.clone()));
    let attempt = Attempt {
        id: AttemptId::generate(),
        message_id: message.id.clone(),
        tenant_id: message.tenant_id.clone(),
        endpoint_id: message.endpoint_id.clone(),
        event_id: message.event_id.clone(),
        event_type: message.event_type.as_str().to_owned(),
        attempt: message.attempts,
        at: now,
        status_code: Some(200),
        latency_ms: 1,
        error: None,
        outcome: MessageOutcome::Delivered.as_str().to_owned(),
    };
    done.send(Finished { message, outcome: MessageOutcome::Delivered, attempt }).unwrap();
    tokio::time::timeout(Duration::from_secs(30), leases_ended.notified())
        .await
        .expect("the recorder never said that leases ended");
    // By then the outcome is written: the message is delivered, out of the outbox.
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    drop(done);
    recorder.await.unwrap();
}
