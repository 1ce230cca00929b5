//! The `Store` contract, run against whichever engine `TEST_DB` names; CI
//! runs it once on SQLite and once on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use time::OffsetDateTime;
use vouchsafe_core::api_key::{ApiKey, NewApiKey};
use vouchsafe_core::audit::{AuditEntry, verify_chain};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::ids::{ApiKeyId, ServiceId, TenantId};
use vouchsafe_core::ids::{AttemptId, WebhookEndpointId};
use vouchsafe_core::role::Role;
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{ApiKeyStore, MetaStore, ServiceStore, StoreError, TenantStore};
use vouchsafe_core::store::{Attempt, AuditStore, DueMessage, Finished, MessageOutcome, WebhookStore};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::webhook::{EventFilter, WebhookEndpoint};
use vouchsafe_store::SqlStore;

use crate::store;
use vouchsafe_store::testing::{audit_key, connect, execute_behind_the_stores, is_postgres, kept_api_keys};

pub(crate) fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap()
}

pub(crate) fn audit(action: &str) -> AuditEntry {
    audit_at(action, 1_700_000_000)
}

fn audit_at(action: &str, s: i64) -> AuditEntry {
    AuditEntry::success("key_test", action, "target", at(s))
}

pub(crate) async fn tenant(store: &SqlStore, name: &str) -> Tenant {
    let (t, default) = Tenant::new(name, at(1_700_000_000)).unwrap();
    store.create_tenant(&t, &default, &Settings::default(), &audit("tenant.created")).await.unwrap();
    t
}

pub(crate) fn new_key(tenant: &TenantId, hash: &str) -> NewApiKey {
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
    assert!(matches!(
        store.create_tenant(&dup, &svc, &Settings::default(), &audit("tenant.created")).await,
        Err(StoreError::Conflict(_))
    ));
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
    store.replace_settings(&t.id, &s, 1, &audit("settings.updated")).await.unwrap();
    let read = store.settings(&t.id).await.unwrap();
    assert_eq!(read.value.otp.code_length, 8);
    assert_eq!(read.version, 2);
    // A writer that read version 1 loses instead of overwriting.
    s.otp.code_length = 4;
    assert!(matches!(store.replace_settings(&t.id, &s, 1, &audit("settings.updated")).await, Err(StoreError::Stale)));
    assert_eq!(store.settings(&t.id).await.unwrap().value.otp.code_length, 8);
}

/// Settings are kept parsed between reads; a change made through another
/// store on the same database (another node, the CLI) is still seen by
/// the very next read.
#[tokio::test]
async fn a_settings_change_by_another_node_is_seen_at_once() {
    let (store, db) = store().await;
    let other_node = vouchsafe_store::testing::connect(&db).await.unwrap();
    let t = tenant(&store, "acme").await;
    assert_eq!(store.settings(&t.id).await.unwrap().value.lockout.threshold, Settings::default().lockout.threshold);
    let mut s = Settings::default();
    s.lockout.threshold = 3;
    other_node.replace_settings(&t.id, &s, 1, &audit("settings.updated")).await.unwrap();
    let read = store.settings(&t.id).await.unwrap();
    assert_eq!((read.value.lockout.threshold, read.version), (3, 2));
    s.lockout.threshold = 4;
    store.replace_settings(&t.id, &s, 2, &audit("settings.updated")).await.unwrap();
    assert_eq!(other_node.settings(&t.id).await.unwrap().value.lockout.threshold, 4);
}

/// A tenant's settings and one of its services are read together: the
/// default service when none is named, a named one of the tenant's own,
/// never another tenant's, and the settings as any read finds them (a
/// change by another node seen at once, kept parsed or not).
#[tokio::test]
async fn settings_and_a_service_are_read_together() {
    let (store, db) = store().await;
    let other_node = connect(&db).await.unwrap();
    let (t, elsewhere) = (tenant(&store, "acme").await, tenant(&store, "other").await);
    let shop = Service::new(t.id.clone(), "Shop", None, None, None, at(5)).unwrap();
    store.create_service(&shop, &audit("service.created")).await.unwrap();

    let found = store.settings_and_service(&t.id, None).await.unwrap();
    assert_eq!((found.service.id.clone(), found.is_default), (t.default_service_id.clone(), true));
    assert_eq!(found.service, store.service(&t.id, &t.default_service_id).await.unwrap().value);
    assert_eq!(found.settings, store.settings(&t.id).await.unwrap());
    let found = store.settings_and_service(&t.id, Some(&shop.id)).await.unwrap();
    assert_eq!((found.service, found.is_default), (shop.clone(), false));
    let named_default = store.settings_and_service(&t.id, Some(&t.default_service_id)).await.unwrap();
    assert!(named_default.is_default, "the default service named by its id");

    let mut s = Settings::default();
    s.lockout.threshold = 3;
    other_node.replace_settings(&t.id, &s, 1, &audit("settings.updated")).await.unwrap();
    for _ in 0..2 {
        let found = store.settings_and_service(&t.id, None).await.unwrap();
        assert_eq!((found.settings.value.lockout.threshold, found.settings.version), (3, 2));
    }
    let refused = store.settings_and_service(&elsewhere.id, Some(&shop.id)).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "another tenant's service");
    assert!(matches!(store.settings_and_service(&t.id, Some(&ServiceId::generate())).await, Err(StoreError::NotFound)));
    let (unknown, _) = Tenant::new("nobody", at(0)).unwrap();
    assert!(matches!(store.settings_and_service(&unknown.id, None).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn services_crud_and_isolation() {
    let (store, _db) = store().await;
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    let svc = Service::new(a.id.clone(), "Login", Some(8), Some(300), Some(vec![Channel::Sms]), at(5)).unwrap();
    store.create_service(&svc, &audit("service.created")).await.unwrap();
    let read = store.service(&a.id, &svc.id).await.unwrap();
    assert_eq!(read.value, svc);
    assert!(
        matches!(store.service(&b.id, &svc.id).await, Err(StoreError::NotFound)),
        "tenant b must not see a's service"
    );
    let same_name = Service::new(a.id.clone(), "Login", None, None, None, at(6)).unwrap();
    assert!(matches!(store.create_service(&same_name, &audit("service.created")).await, Err(StoreError::Conflict(_))));
    // Another tenant may use the name.
    store
        .create_service(
            &Service::new(b.id.clone(), "Login", None, None, None, at(6)).unwrap(),
            &audit("service.created"),
        )
        .await
        .unwrap();

    let mut changed = read.value.clone();
    changed.ttl_s = None;
    changed.updated_at = at(7);
    store.replace_service(&changed, read.version, &audit("service.updated")).await.unwrap();
    assert!(matches!(
        store.replace_service(&changed, read.version, &audit("service.updated")).await,
        Err(StoreError::Stale)
    ));
    assert_eq!(store.service(&a.id, &svc.id).await.unwrap().value.ttl_s, None);
    assert_eq!(store.service_by_name(&a.id, "Login").await.unwrap().id, svc.id);

    assert!(matches!(store.delete_service(&b.id, &svc.id, &audit("service.deleted")).await, Err(StoreError::NotFound)));
    store.delete_service(&a.id, &svc.id, &audit("service.deleted")).await.unwrap();
    assert!(matches!(store.service(&a.id, &svc.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.service(&a.id, &ServiceId::generate()).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn api_keys_are_found_by_hash_until_revoked() {
    let (store, _db) = store().await;
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    let key = new_key(&a.id, "hash-1");
    store.create_api_key(&key, &audit("api_key.created")).await.unwrap();
    assert_eq!(store.api_key_by_secret_hash("hash-1").await.unwrap(), Some(key.key.clone()));
    assert_eq!(store.api_key_by_secret_hash("hash-2").await.unwrap(), None);
    assert_eq!(store.list_api_keys(&a.id).await.unwrap(), vec![key.key.clone()]);
    assert!(store.list_api_keys(&b.id).await.unwrap().is_empty());
    assert!(matches!(store.api_key(&b.id, &key.key.id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.revoke_api_key(&b.id, &key.key.id, &audit_at("api_key.revoked", 9)).await,
        Err(StoreError::NotFound)
    ));

    store.revoke_api_key(&a.id, &key.key.id, &audit_at("api_key.revoked", 10)).await.unwrap();
    assert_eq!(store.api_key_by_secret_hash("hash-1").await.unwrap(), None);
    store.revoke_api_key(&a.id, &key.key.id, &audit_at("api_key.revoked", 11)).await.unwrap();
    assert_eq!(store.api_key(&a.id, &key.key.id).await.unwrap().revoked_at, Some(at(10)));
    // The same hash can never be registered twice.
    assert!(matches!(
        store.create_api_key(&new_key(&b.id, "hash-1"), &audit("api_key.created")).await,
        Err(StoreError::Conflict(_))
    ));
}

// ----- audit log -----

/// Polls `done` every 20 ms for up to `seconds`; whether it came true.
async fn within(seconds: u64, mut done: impl AsyncFnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < until {
        if done().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// A node keeps the keys it looked up, and a revocation on any node ends
/// that on every node by the time it answers. On PostgreSQL a node that
/// cannot hear (its listener's connection lost) stops serving kept keys
/// within a second. On SQLite (each store here a process of its own on
/// the file) any change to a key, even by SQL behind the stores' backs,
/// is heard within a second, and a process that cannot read the count of
/// changes stops serving.
#[tokio::test]
async fn a_key_revoked_on_one_node_stops_working_on_every_node() {
    let (store, db) = store().await;
    let other_node = connect(&db).await.unwrap();
    let t = tenant(&store, "acme").await;
    for hash in ["hash-1", "hash-2", "hash-3"] {
        store.create_api_key(&new_key(&t.id, hash), &audit("api_key.created")).await.unwrap();
    }
    let found = async |node: &SqlStore, hash: &str| node.api_key_by_secret_hash(hash).await.unwrap().is_some();
    let behind = |sql: &'static str| {
        let db = &db;
        async move { execute_behind_the_stores(db, sql).await.unwrap() }
    };
    let kept = within(5, async || {
        found(&other_node, "hash-1").await && found(&other_node, "hash-2").await && kept_api_keys(&other_node) == 2
    })
    .await;
    assert!(kept, "the other node keeps the keys it looked up once it hears of changes");
    assert_eq!(behind("UPDATE api_keys SET revoked_at = 1 WHERE secret_hash = 'hash-2'").await, 1);
    if is_postgres() {
        assert!(found(&other_node, "hash-2").await, "served from memory: a change that notifies nobody goes unseen");
    } else {
        // Counted by the file's triggers, heard at the next poll.
        assert!(within(2, async || !found(&other_node, "hash-2").await).await, "a change behind its back");
        assert!(within(5, async || found(&other_node, "hash-1").await && kept_api_keys(&other_node) == 1).await);
    }

    let key = store.api_key_by_secret_hash("hash-1").await.unwrap().unwrap();
    store.revoke_api_key(&t.id, &key.id, &audit("api_key.revoked")).await.unwrap();
    assert!(!found(&store, "hash-1").await, "the revoking node");
    assert!(!found(&other_node, "hash-1").await, "every other node, by the time the revocation answers");
    assert!(!found(&other_node, "hash-2").await, "a revocation forgets every kept key");

    let kept = within(5, async || found(&other_node, "hash-3").await && kept_api_keys(&other_node) == 1).await;
    assert!(kept);
    if !is_postgres() {
        assert_eq!(behind("DELETE FROM meta WHERE key = 'api_key_changes'").await, 1);
        assert!(within(2, async || kept_api_keys(&other_node) == 0).await, "a process that cannot poll stops serving");
        assert_eq!(behind("UPDATE api_keys SET revoked_at = 1 WHERE secret_hash = 'hash-3'").await, 1);
        assert!(!found(&other_node, "hash-3").await, "and reads each key afresh");
        return;
    }
    let listeners = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'LISTEN%'";
    assert!(behind(listeners).await >= 1, "the listeners were found");
    assert_eq!(behind("UPDATE api_keys SET revoked_at = 1 WHERE secret_hash = 'hash-3'").await, 1);
    assert!(within(2, async || !found(&other_node, "hash-3").await).await, "a node that cannot hear stops serving");
}

#[tokio::test]
async fn audited_changes_chain_and_failed_changes_leave_no_event() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    let key = new_key(&t.id, "hash-a");
    store.create_api_key(&key, &audit("api_key.created")).await.unwrap();
    let missing = ApiKeyId::generate();
    assert!(store.revoke_api_key(&t.id, &missing, &audit("api_key.revoked")).await.is_err());
    assert!(store.replace_settings(&t.id, &Settings::default(), 99, &audit("settings.updated")).await.is_err());
    assert!(store.create_api_key(&new_key(&t.id, "hash-a"), &audit("api_key.created")).await.is_err());

    let events = store.audit_events(&t.id, 0, 100).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(actions, vec!["tenant.created", "api_key.created"], "failed changes must not be audited");
    assert_eq!(store.audit_head(&t.id).await.unwrap(), 2);
    assert!(verify_chain(&audit_key().unwrap(), &events, 2).valid);
    assert_eq!(store.audit_events(&t.id, 1, 100).await.unwrap().len(), 1, "paging by seq");
}

#[tokio::test]
async fn concurrent_audited_changes_keep_one_valid_chain() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    let writes = (0..20).map(|i| {
        let store = store.clone();
        let service = Service::new(t.id.clone(), &format!("s{i}"), None, None, None, at(5)).unwrap();
        tokio::spawn(async move { store.create_service(&service, &audit("service.created")).await })
    });
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let events = store.audit_events(&t.id, 0, 1000).await.unwrap();
    assert_eq!(events.len(), 21);
    let check = verify_chain(&audit_key().unwrap(), &events, store.audit_head(&t.id).await.unwrap());
    assert!(check.valid, "{check:?}");
}

/// Audited writes land pending and are chained afterwards. Two nodes
/// writing and chaining at once (each node's background chainer, and a
/// reader's chaining before its read) give every entry exactly one place:
/// one valid chain, nothing lost, nothing twice.
#[tokio::test]
async fn two_nodes_chaining_at_once_keep_every_entry_once() {
    let (store, db) = store().await;
    let other_node = vouchsafe_store::testing::connect(&db).await.unwrap();
    let t = tenant(&store, "a").await;
    let mut tasks = Vec::new();
    for i in 0..90 {
        let node = if i % 2 == 0 { store.clone() } else { other_node.clone() };
        let service = Service::new(t.id.clone(), &format!("s{i}"), None, None, None, at(5)).unwrap();
        tasks.push(tokio::spawn(async move {
            let entry = AuditEntry::success("key_test", "service.created", service.id.as_str(), at(5));
            node.create_service(&service, &entry).await.map(|()| 0)
        }));
        if i % 10 == 0 {
            let node = if i % 20 == 0 { other_node.clone() } else { store.clone() };
            tasks.push(tokio::spawn(async move { node.chain_audit().await }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let events = store.audit_events(&t.id, 0, 1000).await.unwrap();
    assert_eq!(events.len(), 91, "tenant.created and 90 services (the tenant may have 100)");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=91).collect::<Vec<_>>());
    let targets: std::collections::BTreeSet<_> = events.iter().map(|e| e.entry.target.clone()).collect();
    assert_eq!(targets.len(), 91, "no entry chained twice");
    let check = verify_chain(&audit_key().unwrap(), &events, other_node.audit_head(&t.id).await.unwrap());
    assert!(check.valid, "{check:?}");
    assert_eq!(store.chain_audit().await.unwrap(), 0, "nothing is left pending");
}

// ----- webhook endpoints and the outbox -----

/// Creates an endpoint of tenant `t` with `filter`, enabled or not (these
/// tests make many per tenant; the limit has tests of its own).
pub(crate) async fn endpoint(store: &SqlStore, t: &Tenant, filter: EventFilter, enabled: bool) -> WebhookEndpoint {
    let e = new_endpoint(t, filter, enabled);
    store.create_webhook_endpoint(&e, b"sealed", &audit("webhook_endpoint.created"), u32::MAX).await.unwrap();
    e
}

/// An endpoint of tenant `t`, not stored.
pub(crate) fn new_endpoint(t: &Tenant, filter: EventFilter, enabled: bool) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        tenant_id: t.id.clone(),
        url: "https://crm.example.test/hook".into(),
        description: String::new(),
        events: filter,
        enabled,
        disabled_reason: None,
        created_at: at(1),
        updated_at: at(1),
    }
}

/// Records one attempt of `m` with `outcome`.
pub(crate) async fn finish(store: &SqlStore, m: &DueMessage, outcome: MessageOutcome, s: i64) {
    let finished = Finished { message: m.clone(), outcome, attempt: attempt_of(m, outcome.as_str(), s) };
    store.finish_messages(&[finished]).await.unwrap();
}

pub(crate) fn attempt_of(m: &DueMessage, outcome: &str, s: i64) -> Attempt {
    Attempt {
        id: AttemptId::generate(),
        message_id: m.id.clone(),
        tenant_id: m.tenant_id.clone(),
        endpoint_id: m.endpoint_id.clone(),
        event_id: m.event_id.clone(),
        event_type: m.event_type.as_str().into(),
        attempt: m.attempts,
        at: at(s),
        status_code: Some(500),
        latency_ms: 3,
        error: None,
        outcome: outcome.into(),
    }
}

#[tokio::test]
async fn events_fan_out_to_enabled_endpoints_that_want_them() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    let other = tenant(&store, "b").await;
    let wants_ping = endpoint(&store, &t, EventFilter::Only(vec![EventType::Ping]), true).await;
    endpoint(&store, &t, EventFilter::Only(vec![EventType::UserLocked]), true).await;
    endpoint(&store, &t, EventFilter::All, false).await;
    endpoint(&store, &other, EventFilter::All, true).await;
    let all = endpoint(&store, &t, EventFilter::All, true).await;

    let event = Event::new(t.id.clone(), EventType::Ping, json!({"n": 1}), at(100));
    assert_eq!(store.enqueue_event(&event, None).await.unwrap(), 2);
    assert_eq!(
        store
            .enqueue_event(&Event::new(t.id.clone(), EventType::Ping, json!({}), at(100)), Some(&all.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.outbox_depth().await.unwrap(), 3);

    let due = store.claim_due_messages(at(100), at(130), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    let first = due.iter().find(|m| m.event_id == event.id && m.endpoint_id == wants_ping.id).unwrap();
    assert_eq!(first.body, event.body());
    assert_eq!(first.attempts, 1);
    assert_eq!(first.secrets.current, b"sealed");
    assert!(
        store.claim_due_messages(at(101), at(131), 10).await.unwrap().is_empty(),
        "leased messages are not claimed twice"
    );

    // One transaction for the whole batch.
    let batch: Vec<_> = due
        .iter()
        .map(|m| Finished {
            message: m.clone(),
            outcome: MessageOutcome::Delivered,
            attempt: attempt_of(m, "delivered", 101),
        })
        .collect();
    store.finish_messages(&batch).await.unwrap();
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    let log = store.webhook_attempts(&t.id, &wants_ping.id, None, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, "delivered");
    assert!(store.webhook_attempts(&other.id, &wants_ping.id, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lost_lease_cannot_move_the_message() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    endpoint(&store, &t, EventFilter::All, true).await;
    store.enqueue_event(&Event::new(t.id.clone(), EventType::Ping, json!({}), at(100)), None).await.unwrap();
    let slow = store.claim_due_messages(at(100), at(105), 10).await.unwrap().remove(0);
    // The lease ran out; another dispatcher takes the message over.
    let fast = store.claim_due_messages(at(106), at(136), 10).await.unwrap().remove(0);
    assert_eq!(fast.id, slow.id);
    assert_eq!(fast.attempts, 2);
    finish(&store, &slow, MessageOutcome::Delivered, 107).await;
    assert_eq!(store.outbox_depth().await.unwrap(), 1, "the stale finisher changed nothing");
    finish(&store, &fast, MessageOutcome::RetryAt(at(200)), 107).await;
    assert!(store.claim_due_messages(at(199), at(229), 10).await.unwrap().is_empty(), "not due before its time");
    assert_eq!(store.claim_due_messages(at(200), at(230), 10).await.unwrap()[0].attempts, 3);
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_audits_it() {
    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    let e = endpoint(&store, &t, EventFilter::All, true).await;
    for _ in 0..2 {
        store.enqueue_event(&Event::new(t.id.clone(), EventType::Ping, json!({}), at(100)), None).await.unwrap();
    }
    let due = store.claim_due_messages(at(100), at(130), 1).await.unwrap();
    finish(&store, &due[0], MessageOutcome::Gone, 101).await;
    let read = store.webhook_endpoint(&t.id, &e.id).await.unwrap();
    assert!(!read.enabled);
    assert!(read.disabled_reason.unwrap().contains("410"));
    assert!(
        store.claim_due_messages(at(102), at(132), 10).await.unwrap().is_empty(),
        "a disabled endpoint gets nothing"
    );
    let events = store.audit_events(&t.id, 0, 100).await.unwrap();
    assert_eq!(events.last().unwrap().entry.action, "webhook_endpoint.disabled");
    assert!(verify_chain(&audit_key().unwrap(), &events, store.audit_head(&t.id).await.unwrap()).valid);
}

/// Two stores (two server processes) with eight claimers each race over
/// 200 due messages: every message is claimed exactly once per lease. Each
/// claimer delivers what it claimed before claiming again (one endpoint
/// holds at most `IN_FLIGHT_PER_ENDPOINT` leases).
#[tokio::test]
async fn racing_claimers_on_two_nodes_never_share_a_message() {
    let (store, db) = store().await;
    let t = tenant(&store, "a").await;
    endpoint(&store, &t, EventFilter::All, true).await;
    for _ in 0..200 {
        store.enqueue_event(&Event::new(t.id.clone(), EventType::Ping, json!({}), at(100)), None).await.unwrap();
    }
    let other_node = connect(&db).await.unwrap();
    let mut claimers = Vec::new();
    for i in 0..16 {
        let node = if i % 2 == 0 { store.clone() } else { other_node.clone() };
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = node.claim_due_messages(at(100), at(400), 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                for m in got {
                    finish(&node, &m, MessageOutcome::Delivered, 100).await;
                    mine.push(m.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200, "claimed {} times for 200 messages", all.len());
    assert_eq!(unique.len(), 200);
}

/// Issue 16, item 17: a tenant's flood of messages to endpoints that never
/// answer holds at most its share of attempts in flight, and another
/// tenant's message is claimed in the first turn.
#[tokio::test]
async fn claims_keep_fair_shares_between_endpoints_and_tenants() {
    use vouchsafe_core::webhook::{IN_FLIGHT_PER_ENDPOINT, IN_FLIGHT_PER_TENANT};

    let (store, _db) = store().await;
    let (flooder, quiet) = (tenant(&store, "b").await, tenant(&store, "a").await);
    let mut dead = Vec::new();
    for _ in 0..6 {
        dead.push(endpoint(&store, &flooder, EventFilter::All, true).await.id);
    }
    for i in 0..40 {
        for e in &dead {
            let event = Event::new(flooder.id.clone(), EventType::Ping, json!({}), at(10 + i));
            store.enqueue_event(&event, Some(e)).await.unwrap();
        }
    }
    let first = store.claim_due_messages(at(100), at(400), 16).await.unwrap();
    assert_eq!(first.len(), 16);
    let per_endpoint = |claimed: &[DueMessage]| {
        dead.iter().map(|e| claimed.iter().filter(|m| &m.endpoint_id == e).count()).collect::<Vec<_>>()
    };
    assert!(per_endpoint(&first).iter().all(|&n| n <= 3), "endpoints take turns: {:?}", per_endpoint(&first));
    // The flooder's endpoints never answer: its leases pile up to its share.
    let mut held = first;
    loop {
        let more = store.claim_due_messages(at(100), at(400), 64).await.unwrap();
        if more.is_empty() {
            break;
        }
        held.extend(more);
    }
    assert_eq!(held.len() as i64, IN_FLIGHT_PER_TENANT, "a tenant holds at most its share");
    assert!(per_endpoint(&held).iter().all(|&n| n as i64 <= IN_FLIGHT_PER_ENDPOINT), "{:?}", per_endpoint(&held));
    // The quiet tenant's event, queued last and due last, is claimed at once.
    endpoint(&store, &quiet, EventFilter::All, true).await;
    store.enqueue_event(&Event::new(quiet.id.clone(), EventType::Ping, json!({}), at(99)), None).await.unwrap();
    let next = store.claim_due_messages(at(100), at(400), 1).await.unwrap();
    assert_eq!(next.iter().map(|m| &m.tenant_id).collect::<Vec<_>>(), [&quiet.id]);
    // A lease the flooder gives back makes room for one more of its own.
    finish(&store, &held[0], MessageOutcome::RetryAt(at(10_000)), 101).await;
    assert_eq!(store.claim_due_messages(at(101), at(400), 64).await.unwrap().len(), 1);
}

/// A claim ranks only each endpoint's first `IN_FLIGHT_PER_ENDPOINT` due
/// messages (leased ones among them), so its work does not grow with the
/// backlog; it still takes exactly the earliest claimable messages, in due
/// order, as leases come and go and retries move messages later.
#[tokio::test]
async fn claims_take_an_endpoints_earliest_due_messages_from_a_long_backlog() {
    use std::collections::BTreeSet;
    use vouchsafe_core::ids::EventId;
    use vouchsafe_core::webhook::IN_FLIGHT_PER_ENDPOINT;

    let (store, _db) = store().await;
    let t = tenant(&store, "a").await;
    let e = endpoint(&store, &t, EventFilter::All, true).await.id;
    let mut events = Vec::new();
    for i in 1..=50 {
        let event = Event::new(t.id.clone(), EventType::Ping, json!({}), at(i));
        store.enqueue_event(&event, Some(&e)).await.unwrap();
        events.push(event.id);
    }
    // Which messages a claim takes (RETURNING gives them in no order).
    let ids = |claimed: &[DueMessage]| claimed.iter().map(|m| m.event_id.to_string()).collect::<BTreeSet<_>>();
    let of = |events: &[EventId]| events.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
    let first = store.claim_due_messages(at(100), at(400), 5).await.unwrap();
    assert_eq!(ids(&first), of(&events[..5]));
    let share = usize::try_from(IN_FLIGHT_PER_ENDPOINT).unwrap();
    let second = store.claim_due_messages(at(100), at(400), 64).await.unwrap();
    assert_eq!(ids(&second), of(&events[5..share]), "the endpoint's share, less the five in flight");
    // The first five fail and retry later; the next eleven are delivered.
    for m in &first {
        finish(&store, m, MessageOutcome::RetryAt(at(1_000)), 100).await;
    }
    for m in &second {
        finish(&store, m, MessageOutcome::Delivered, 100).await;
    }
    let third = store.claim_due_messages(at(101), at(400), 64).await.unwrap();
    assert_eq!(ids(&third), of(&events[share..2 * share]), "the next due ones, the retried ones not yet due");
    for m in &third {
        finish(&store, m, MessageOutcome::Delivered, 101).await;
    }
    // Once due again, the retried messages (due at 1,000) queue behind the
    // rest, which have been due since they were made.
    let fourth = store.claim_due_messages(at(1_000), at(1_400), 64).await.unwrap();
    assert_eq!(ids(&fourth), of(&events[2 * share..3 * share]));
    for m in &fourth {
        finish(&store, m, MessageOutcome::Delivered, 1_000).await;
    }
    let fifth = store.claim_due_messages(at(1_000), at(1_400), 64).await.unwrap();
    let expected = of(&events[..5]).union(&of(&events[3 * share..])).cloned().collect();
    assert_eq!(ids(&fifth), expected, "the last two, and the retried five");
}

/// Issue 16, item 3: answers are counted before they are evaluated, a user
/// at the threshold is locked once (one `user.locked`), and the approving
/// statement requires the user to be unlocked.
#[tokio::test]
async fn answers_are_counted_first_and_a_lock_blocks_approval() {
    use crate::people::challenge;
    use vouchsafe_core::store::{AnswerGate, ApprovalOutcome, Lockout, UserStore};
    use vouchsafe_core::user::Contacts;

    let (store, _db) = store().await;
    let t = tenant(&store, "acme").await;
    let contacts = Contacts { phone: None, email: None, display_name: None };
    store.put_user(&t.id, "u1", &contacts, false, at(1_700_000_000), &audit("user.put")).await.unwrap();
    let now = at(1_700_000_100);
    let (first, second) = (challenge(&t, "u1", 600), challenge(&t, "u1", 5_000));
    for c in [&first, &second] {
        store.create_challenge(c, &audit("challenge.created")).await.unwrap();
    }
    let lockout = Lockout {
        threshold: 1,
        lock_until: at(1_700_001_000),
        tenant: t.id.clone(),
        user: "u1".into(),
        challenge: None,
        actor: "key_test".into(),
        at: now,
    };
    let to = |c: &vouchsafe_core::challenge::Challenge, when| Lockout {
        challenge: Some(c.id.clone()),
        at: when,
        ..lockout.clone()
    };
    let gate = store.reserve_answer(&to(&first, now)).await.unwrap();
    assert_eq!(gate, AnswerGate::Counted { attempt: 1, failures: 1 });
    // The threshold is reached while the first answer is evaluated: the
    // next answer locks the user instead of being counted.
    for _ in 0..3 {
        let gate = store.reserve_answer(&to(&second, now)).await.unwrap();
        assert_eq!(gate, AnswerGate::Locked(lockout.lock_until));
    }
    assert_eq!(store.challenge(&t.id, &second.id).await.unwrap().attempts, 0, "a refused answer counts nothing");
    let event = Event::new(t.id.clone(), EventType::ChallengeApproved, json!({}), now);
    let approved = store.approve_challenge(&first, None, now, &event, &audit("challenge.approved")).await.unwrap();
    assert_eq!(approved, ApprovalOutcome::NotPending, "a locked user's answer does not approve");
    let events = store.audit_events(&t.id, 0, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.entry.action == "user.locked").count(), 1, "one lock, one event");
    // When the lock is over, counting starts afresh.
    let later = at(1_700_001_001);
    let gate = store.reserve_answer(&to(&second, later)).await.unwrap();
    assert_eq!(gate, AnswerGate::Counted { attempt: 1, failures: 1 });
}

/// An answer to a challenge no longer pending (raced past the engine's
/// read) counts nothing: neither an attempt of the challenge nor a failure
/// of the user (on PostgreSQL, where both are counted in one statement,
/// the user's count is given back).
#[tokio::test]
async fn an_answer_to_a_challenge_no_longer_pending_counts_nothing() {
    use crate::people::challenge;
    use vouchsafe_core::store::{AnswerGate, Lockout, UserStore};
    use vouchsafe_core::user::Contacts;

    let (store, _db) = store().await;
    let t = tenant(&store, "acme").await;
    let contacts = Contacts { phone: None, email: None, display_name: None };
    store.put_user(&t.id, "u1", &contacts, false, at(1_700_000_000), &audit("user.put")).await.unwrap();
    let (ended, open) = (challenge(&t, "u1", 600), challenge(&t, "u1", 5_000));
    for c in [&ended, &open] {
        store.create_challenge(c, &audit("challenge.created")).await.unwrap();
    }
    let now = at(1_700_000_700);
    let lockout = Lockout {
        threshold: 3,
        lock_until: at(1_700_001_000),
        tenant: t.id.clone(),
        user: "u1".into(),
        challenge: None,
        actor: "key_test".into(),
        at: now,
    };
    let to = |c: &vouchsafe_core::challenge::Challenge| Lockout { challenge: Some(c.id.clone()), ..lockout.clone() };
    let gate = store.reserve_answer(&to(&ended)).await.unwrap();
    assert_eq!(gate, AnswerGate::NotPending);
    assert_eq!(store.user(&t.id, "u1").await.unwrap().failures, 0);
    assert_eq!(store.challenge(&t.id, &ended.id).await.unwrap().attempts, 0);
    let gate = store.reserve_answer(&to(&open)).await.unwrap();
    assert_eq!(gate, AnswerGate::Counted { attempt: 1, failures: 1 });
}

/// Issue 16, item 19: an import replaces a user's active authenticator only
/// when told to; the statement that inserts refuses, and the batch rolls
/// back whole. Unconfirmed ones are always replaced.
#[tokio::test]
async fn an_import_replaces_an_active_authenticator_only_when_told_to() {
    use vouchsafe_core::authenticator::{Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorStatus};
    use vouchsafe_core::ids::AuthenticatorId;
    use vouchsafe_core::store::{ImportMode, ImportOutcome, UserStore};

    let (store, _db) = store().await;
    let t = tenant(&store, "acme").await;
    let now = at(1_700_000_000);
    let token = |user: &str, status: AuthenticatorStatus| Authenticator {
        id: AuthenticatorId::generate(),
        tenant_id: t.id.clone(),
        user_id: user.into(),
        kind: AuthenticatorKind::Totp,
        status,
        label: None,
        params: AuthenticatorParams::Totp {
            issuer: None,
            algorithm: vouchsafe_core::otp::Algorithm::Sha1,
            digits: 6,
            period: 30,
        },
        sealed: vec![1, 2, 3],
        counter: -1,
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    let entry = audit("authenticators.imported");
    let tenant_id = t.id.clone();
    let import = |items: Vec<Authenticator>, mode| {
        let (store, tenant, entry) = (store.clone(), tenant_id.clone(), entry.clone());
        async move { store.import_authenticators(&tenant, &items, mode, now, &entry).await }
    };
    let ids = |user: &'static str| {
        let (store, tenant) = (store.clone(), tenant_id.clone());
        async move { store.authenticators(&tenant, user).await.unwrap().into_iter().map(|a| a.id).collect::<Vec<_>>() }
    };
    let pending = token("u0", AuthenticatorStatus::Unconfirmed);
    let active = token("u1", AuthenticatorStatus::Active);
    assert_eq!(
        import(vec![pending, active.clone()], ImportMode::KeepActive).await.unwrap(),
        ImportOutcome::Imported(2)
    );
    // The unconfirmed one is replaced even without being told.
    let fresh = token("u0", AuthenticatorStatus::Active);
    assert_eq!(import(vec![fresh.clone()], ImportMode::KeepActive).await.unwrap(), ImportOutcome::Imported(1));
    assert_eq!(ids("u0").await, [fresh.id]);

    let (newcomer, again) = (token("u2", AuthenticatorStatus::Active), token("u1", AuthenticatorStatus::Active));
    let refused = import(vec![newcomer.clone(), again.clone()], ImportMode::KeepActive).await.unwrap();
    assert_eq!(refused, ImportOutcome::WouldReplace { index: 1 });
    assert_eq!(ids("u1").await, std::slice::from_ref(&active.id), "the active one is kept");
    assert!(ids("u2").await.is_empty(), "the batch rolled back whole");
    assert!(store.user(&tenant_id, "u2").await.is_err(), "its new user too");

    assert_eq!(import(vec![newcomer, again.clone()], ImportMode::Replace).await.unwrap(), ImportOutcome::Imported(2));
    assert_eq!(ids("u1").await, [again.id], "replaced when told to");

    // One user's token twice in a batch: the second meets the first as
    // it would in a batch of its own (on PostgreSQL such a batch is not
    // written over arrays, where the two could not see each other).
    let (first, second) = (token("u3", AuthenticatorStatus::Active), token("u3", AuthenticatorStatus::Active));
    let twice = import(vec![first.clone(), second.clone()], ImportMode::KeepActive).await.unwrap();
    assert_eq!(twice, ImportOutcome::WouldReplace { index: 1 });
    assert!(ids("u3").await.is_empty(), "the batch rolled back whole");
    assert_eq!(import(vec![first, second.clone()], ImportMode::Replace).await.unwrap(), ImportOutcome::Imported(2));
    assert_eq!(ids("u3").await, [second.id], "the later one replaced the earlier");
}

/// An import asks about its users a batch at a time: only their active
/// authenticators are named, with their kind, and only in this tenant.
#[tokio::test]
async fn the_active_authenticators_among_users_are_named_with_their_kind() {
    use vouchsafe_core::authenticator::{Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorStatus};
    use vouchsafe_core::ids::AuthenticatorId;
    use vouchsafe_core::store::{ImportMode, ImportOutcome, UserStore};

    let (store, _db) = store().await;
    let (acme, other) = (tenant(&store, "acme").await, tenant(&store, "other").await);
    let now = at(1_700_000_000);
    let token = |tenant: &vouchsafe_core::ids::TenantId, user: &str, kind, status| Authenticator {
        id: AuthenticatorId::generate(),
        tenant_id: tenant.clone(),
        user_id: user.into(),
        kind,
        status,
        label: None,
        params: AuthenticatorParams::Hotp { algorithm: vouchsafe_core::otp::Algorithm::Sha1, digits: 6 },
        sealed: vec![1, 2, 3],
        counter: 0,
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    let (active, pending) = (AuthenticatorStatus::Active, AuthenticatorStatus::Unconfirmed);
    let (totp, hotp) = (AuthenticatorKind::Totp, AuthenticatorKind::Hotp);
    let entry = audit("authenticators.imported");
    let items = vec![
        token(&acme.id, "ada", totp, active),
        token(&acme.id, "ada", hotp, active),
        token(&acme.id, "bob", hotp, pending),
        token(&acme.id, "carl", totp, active),
    ];
    assert_eq!(
        store.import_authenticators(&acme.id, &items, ImportMode::KeepActive, now, &entry).await.unwrap(),
        ImportOutcome::Imported(4)
    );
    let theirs = vec![token(&other.id, "bob", totp, active)];
    store.import_authenticators(&other.id, &theirs, ImportMode::KeepActive, now, &entry).await.unwrap();

    let asked: Vec<String> = ["ada", "bob", "dan", "o'brien\"\\"].map(String::from).to_vec();
    let mut found = store.active_authenticators_among(&acme.id, &asked).await.unwrap();
    found.sort_by_key(|(user, kind)| (user.clone(), kind.as_str()));
    assert_eq!(
        found,
        [("ada".to_owned(), hotp), ("ada".to_owned(), totp)],
        "carl was not asked about; bob's is unconfirmed here and the active one is another tenant's"
    );
    assert!(store.active_authenticators_among(&acme.id, &[]).await.unwrap().is_empty());
}
