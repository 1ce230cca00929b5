//! The storage contract of verifications, send limits, providers and
//! deliveries, on whichever engine `TEST_DB` names. The racing tests use
//! two pools on one database, as two server processes would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::json;
use time::{Duration, OffsetDateTime};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::delivery::{Delivery, DeliveryResult, DeliveryStatus};
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::fraud::{SendCounter, counters_for};
use vouchsafe_core::ids::{DeliveryId, VerificationId};
use vouchsafe_core::provider::{PROVIDERS_PER_TENANT, ProviderConfig, ProviderKind, ProviderSettings};
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::{FraudSettings, Settings};
use vouchsafe_core::store::{
    AuditStore, DeliveryStore, ProviderStore, ProvidersToSend, ReadForCheck, Resend, SendRefusal, StoreError,
    TenantStore, VerificationStore, WebhookStore,
};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_core::verification::{Destination, OtpPolicy, Verification, VerificationStatus};
use vouchsafe_core::webhook::EventFilter;
use vouchsafe_store::SqlStore;

use crate::store;
use vouchsafe_store::testing::{connect, execute_behind_the_stores, is_postgres};

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap()
}

const T0: i64 = 1_700_000_000;

pub(crate) async fn tenant(store: &SqlStore) -> (Tenant, Service) {
    let (t, default) = Tenant::new("acme", at(T0)).unwrap();
    let audit = AuditEntry::success("cli", "tenant.created", t.id.as_str(), at(T0));
    store.create_tenant(&t, &default, &Settings::default(), &audit).await.unwrap();
    (t, default)
}

pub(crate) fn pending(service: &Service, to: &str, hash: &str, now: i64) -> Verification {
    let policy = OtpPolicy::resolve(&Settings::default(), service);
    let to = Destination::parse(Channel::Sms, "to", to).unwrap();
    Verification::new(VerificationId::generate(), service, &to, Channel::Sms, None, hash.into(), &policy, at(now))
}

fn phone(text: &str) -> Destination {
    Destination::parse(Channel::Sms, "to", text).unwrap()
}

fn audit(action: &str, s: i64) -> AuditEntry {
    AuditEntry::success("key_test", action, "ver", at(s))
}

#[tokio::test]
async fn one_pending_verification_per_destination_until_it_expires() {
    let (store, _db) = store().await;
    let (_, service) = tenant(&store).await;
    let first = pending(&service, "+447400123456", "h1", T0);
    store.create_verification(&first, &[]).await.unwrap().unwrap();
    let second = pending(&service, "+447400123456", "h2", T0 + 1);
    assert!(matches!(store.create_verification(&second, &[]).await, Err(StoreError::Conflict(_))));
    // Once the first is past its time, a new one takes the slot and the
    // old one is written down as expired.
    let later = pending(&service, "+447400123456", "h3", T0 + 601);
    store.create_verification(&later, &[]).await.unwrap().unwrap();
    let old = store.verification(&service.tenant_id, &first.id).await.unwrap();
    assert_eq!(old.status, VerificationStatus::Expired);
    let found = store.verification_by_to(&service.tenant_id, &service.id, "+447400123456").await.unwrap().unwrap();
    assert_eq!(found.id, later.id, "the pending one is found first");
}

/// Issue 16, item 7: an address in another case is the same destination
/// for the one-pending rule and the lookup, and is kept as given.
#[tokio::test]
async fn an_email_address_in_any_case_is_one_destination() {
    let (store, _db) = store().await;
    let (_, service) = tenant(&store).await;
    let policy = OtpPolicy::resolve(&Settings::default(), &service);
    let email = |text: &str, hash: &str| {
        let to = Destination::parse(Channel::Email, "to", text).unwrap();
        Verification::new(VerificationId::generate(), &service, &to, Channel::Email, None, hash.into(), &policy, at(T0))
    };
    let first = email("Bob.Smith@example.com", "h1");
    store.create_verification(&first, &[]).await.unwrap().unwrap();
    let shouted = email("BOB.SMITH@EXAMPLE.COM", "h2");
    assert!(matches!(store.create_verification(&shouted, &[]).await, Err(StoreError::Conflict(_))));
    let key = Destination::parse(Channel::Email, "to", "bob.smith@Example.com").unwrap().match_key();
    let found = store.verification_by_to(&service.tenant_id, &service.id, &key).await.unwrap().unwrap();
    assert_eq!((found.id, found.to.as_str()), (first.id, "Bob.Smith@example.com"));
}

#[tokio::test]
async fn a_code_is_approved_once_under_a_hundred_racing_checks_on_two_nodes() {
    let (store, db) = store().await;
    let other_node = connect(&db).await.unwrap();
    let (t, service) = tenant(&store).await;
    let v = pending(&service, "+447400123456", "right", T0);
    store.create_verification(&v, &[]).await.unwrap().unwrap();
    let nodes = [Arc::new(store.clone()), Arc::new(other_node)];
    let mut checks = Vec::new();
    for i in 0..100 {
        let node = nodes[i % 2].clone();
        let v = v.clone();
        checks.push(tokio::spawn(async move {
            let event = Event::new(v.tenant_id.clone(), EventType::VerificationApproved, json!({"i": i}), at(T0 + 5));
            node.approve_verification(&v, at(T0 + 5), &event, &audit("verification.approved", T0 + 5)).await.unwrap()
        }));
    }
    let mut approvals = 0;
    for c in checks {
        approvals += usize::from(c.await.unwrap());
    }
    assert_eq!(approvals, 1);
    let events = store.audit_events(&t.id, 0, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.entry.action == "verification.approved").count(), 1);
    assert_eq!(store.verification(&t.id, &v.id).await.unwrap().status, VerificationStatus::Approved);
}

/// The approval's event is queued for every endpoint that wants it, in the
/// approving transaction (on SQLite, on the writer's connection: a
/// statement that names `$5` before `$4` once bound them swapped there, and
/// approvals queued no webhook).
#[tokio::test]
async fn an_approval_queues_its_event_for_the_endpoints_that_want_it() {
    let (store, _db) = store().await;
    let (t, service) = tenant(&store).await;
    for filter in [EventFilter::All, EventFilter::Only(vec![EventType::VerificationApproved])] {
        crate::contract::endpoint(&store, &t, filter, true).await;
    }
    // Neither a disabled endpoint nor one that wants other events gets it.
    crate::contract::endpoint(&store, &t, EventFilter::All, false).await;
    crate::contract::endpoint(&store, &t, EventFilter::Only(vec![EventType::ChallengeApproved]), true).await;
    let v = pending(&service, "+447400123456", "right", T0);
    store.create_verification(&v, &[]).await.unwrap().unwrap();
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    let approved = |v: &Verification, s: i64| {
        let event = Event::new(t.id.clone(), EventType::VerificationApproved, json!({}), at(s));
        let store = store.clone();
        let v = v.clone();
        async move { store.approve_verification(&v, at(s), &event, &audit("verification.approved", s)).await.unwrap() }
    };
    // Another code changes nothing.
    let other_code = Verification { code_hash: "other".into(), ..v.clone() };
    assert!(!approved(&other_code, T0 + 4).await);
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    assert!(approved(&v, T0 + 5).await);
    assert_eq!(store.outbox_depth().await.unwrap(), 2, "one message for each endpoint that wants the event");
    assert_eq!(store.verification(&t.id, &v.id).await.unwrap().status, VerificationStatus::Approved);
    // Approved once: a second approval writes nothing more.
    assert!(!approved(&v, T0 + 6).await);
    assert_eq!(store.outbox_depth().await.unwrap(), 2);
    let log = store.audit_events(&t.id, 0, 100).await.unwrap();
    let approvals: Vec<_> = log.iter().filter(|e| e.entry.action == "verification.approved").collect();
    assert_eq!(approvals.len(), 1, "one audit entry, written with the approval");
    assert_eq!(approvals[0].entry.at, at(T0 + 5));
}

#[tokio::test]
async fn an_old_code_or_an_expired_verification_is_not_approved() {
    let (store, _db) = store().await;
    let (t, service) = tenant(&store).await;
    let v = pending(&service, "+447400123456", "old", T0);
    store.create_verification(&v, &[]).await.unwrap().unwrap();
    let resend = Resend {
        tenant_id: t.id.clone(),
        id: v.id.clone(),
        code_hash: "new".into(),
        channel: Channel::Sms,
        locale: None,
        now: at(T0 + 60),
        expires_at: at(T0 + 660),
        max_sends: 5,
        send_window_ms: 600_000,
        cooldown_ms: 30_000,
    };
    store.resend_verification(&resend, &[]).await.unwrap().unwrap();
    let event = Event::new(t.id.clone(), EventType::VerificationApproved, json!({}), at(T0 + 61));
    // `v` still carries the first code's hash: a check that read it before
    // the resend cannot approve.
    assert!(!store.approve_verification(&v, at(T0 + 61), &event, &audit("a", T0 + 61)).await.unwrap());
    let fresh = store.verification(&t.id, &v.id).await.unwrap();
    assert!(!store.approve_verification(&fresh, at(T0 + 660), &event, &audit("a", T0 + 660)).await.unwrap());
    assert!(store.approve_verification(&fresh, at(T0 + 659), &event, &audit("a", T0 + 659)).await.unwrap());
}

#[tokio::test]
async fn wrong_codes_stop_at_the_limit_even_when_they_race() {
    let (store, db) = store().await;
    let other_node = connect(&db).await.unwrap();
    let (t, service) = tenant(&store).await;
    let v = pending(&service, "+447400123456", "h", T0);
    store.create_verification(&v, &[]).await.unwrap().unwrap();
    let nodes = [Arc::new(store.clone()), Arc::new(other_node)];
    let mut tries = Vec::new();
    for i in 0..40 {
        let node = nodes[i % 2].clone();
        let (tenant, id) = (t.id.clone(), v.id.clone());
        tries.push(tokio::spawn(async move {
            node.record_wrong_code(&tenant, &id, at(T0 + 1), &audit("verification.max_attempts_reached", T0 + 1))
                .await
                .unwrap()
        }));
    }
    let mut counted = 0;
    for t in tries {
        counted += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(counted, 5, "exactly max_check_attempts wrong codes are counted");
    let after = store.verification(&t.id, &v.id).await.unwrap();
    assert_eq!((after.status, after.attempts), (VerificationStatus::MaxAttemptsReached, 5));
    let events = store.audit_events(&t.id, 0, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.entry.action == "verification.max_attempts_reached").count(), 1);
    // Even the right code cannot approve it now.
    let event = Event::new(t.id.clone(), EventType::VerificationApproved, json!({}), at(T0 + 2));
    assert!(!store.approve_verification(&after, at(T0 + 2), &event, &audit("a", T0 + 2)).await.unwrap());
}

/// A check's read counts a wrong code where one statement can do both
/// (PostgreSQL) and only then: never the right code, never the last
/// attempt (that one is audited), never a settled verification; and
/// racing checks on two nodes count no more than the attempts left.
#[tokio::test]
async fn a_checks_read_counts_only_a_wrong_code_that_leaves_an_attempt() {
    let (store, db) = store().await;
    let other_node = connect(&db).await.unwrap();
    let (t, service) = tenant(&store).await;
    let v = pending(&service, "+447400123456", "right", T0);
    store.create_verification(&v, &[]).await.unwrap().unwrap();
    let counts_in_the_read = is_postgres();
    let read = |node: Arc<SqlStore>, candidate: Option<&'static str>| {
        let (tenant, id) = (t.id.clone(), v.id.clone());
        async move { node.verification_for_check(&tenant, &id, candidate, at(T0 + 1)).await.unwrap() }
    };
    let (one, two) = (Arc::new(store.clone()), Arc::new(other_node));

    assert_eq!(read(one.clone(), Some("right")).await, ReadForCheck::Read(v.clone()), "the right code counts nothing");
    for (attempt, candidate) in [(1, Some("wrong")), (2, None)] {
        match read(one.clone(), candidate).await {
            ReadForCheck::CountedWrong(after) => {
                assert!(counts_in_the_read, "SQLite's read never writes");
                assert_eq!((after.attempts, after.status), (attempt, VerificationStatus::Pending));
                assert_eq!(store.verification(&t.id, &v.id).await.unwrap(), after, "what it answers is stored");
            }
            ReadForCheck::Read(as_read) => {
                assert!(!counts_in_the_read, "PostgreSQL counts a wrong code as it reads");
                assert_eq!(as_read.attempts, attempt - 1, "read as it stood");
                store.record_wrong_code(&t.id, &v.id, at(T0 + 1), &audit("x", T0 + 1)).await.unwrap().unwrap();
            }
        }
    }

    let mut racing = Vec::new();
    for i in 0..40 {
        racing.push(tokio::spawn(read([one.clone(), two.clone()][i % 2].clone(), Some("wrong"))));
    }
    let mut counted = 0;
    for r in racing {
        counted += usize::from(matches!(r.await.unwrap(), ReadForCheck::CountedWrong(_)));
    }
    let max = v.max_attempts as usize;
    assert_eq!(counted, if counts_in_the_read { max - 3 } else { 0 }, "all but the last attempt, once each");
    if !counts_in_the_read {
        for _ in 0..max - 3 {
            store.record_wrong_code(&t.id, &v.id, at(T0 + 1), &audit("x", T0 + 1)).await.unwrap().unwrap();
        }
    }
    let last = store.verification(&t.id, &v.id).await.unwrap();
    assert_eq!((last.attempts as usize, last.status), (max - 1, VerificationStatus::Pending));
    assert_eq!(read(one.clone(), Some("wrong")).await, ReadForCheck::Read(last.clone()), "the last attempt is left");

    store.end_verification(&t.id, &v.id, true, at(T0 + 2), &audit("verification.canceled", T0 + 2)).await.unwrap();
    let ReadForCheck::Read(settled) = read(one.clone(), Some("wrong")).await else {
        panic!("a settled one is counted")
    };
    assert_eq!((settled.status, settled.attempts as usize), (VerificationStatus::Canceled, max - 1));
    let unknown = store.verification_for_check(&t.id, &VerificationId::generate(), None, at(T0 + 2)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

#[tokio::test]
async fn resends_respect_cooldown_and_the_send_window_and_keep_attempts() {
    let (store, _db) = store().await;
    let (t, service) = tenant(&store).await;
    let v = pending(&service, "+447400123456", "h0", T0);
    store.create_verification(&v, &[]).await.unwrap().unwrap();
    store.record_wrong_code(&t.id, &v.id, at(T0 + 1), &audit("x", T0 + 1)).await.unwrap().unwrap();
    let resend = |s: i64| Resend {
        tenant_id: t.id.clone(),
        id: v.id.clone(),
        code_hash: format!("h{s}"),
        channel: Channel::Sms,
        locale: Some("es".into()),
        now: at(s),
        expires_at: at(s + 600),
        max_sends: 3,
        send_window_ms: 600_000,
        cooldown_ms: 30_000,
    };
    assert_eq!(
        store.resend_verification(&resend(T0 + 10), &[]).await.unwrap(),
        Err(SendRefusal::Cooldown { retry_after_s: 20 })
    );
    let second = store.resend_verification(&resend(T0 + 30), &[]).await.unwrap().unwrap();
    assert_eq!((second.send_count, second.attempts, second.locale.as_deref()), (2, 1, Some("es")));
    store.resend_verification(&resend(T0 + 60), &[]).await.unwrap().unwrap();
    assert_eq!(
        store.resend_verification(&resend(T0 + 90), &[]).await.unwrap(),
        Err(SendRefusal::MaxSends { retry_after_s: 510 })
    );
    // A new window starts once the old one has run out.
    let fourth = store.resend_verification(&resend(T0 + 600), &[]).await.unwrap().unwrap();
    assert_eq!((fourth.send_count, fourth.window_sends, fourth.attempts), (4, 1, 1));
    // A verification that is no longer pending cannot be resent.
    store.end_verification(&t.id, &v.id, true, at(T0 + 601), &audit("c", T0 + 601)).await.unwrap();
    assert!(matches!(store.resend_verification(&resend(T0 + 700), &[]).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn fraud_counters_hold_their_limit_under_racing_sends_and_roll_back_together() {
    let (store, db) = store().await;
    let other_node = connect(&db).await.unwrap();
    let (t, _) = tenant(&store).await;
    let limits = FraudSettings { max_sends_per_destination_per_hour: 7, ..FraudSettings::default() };
    let nodes = [Arc::new(store.clone()), Arc::new(other_node)];
    let mut sends = Vec::new();
    for i in 0..30 {
        let node = nodes[i % 2].clone();
        let counters = counters_for(&t.id, &phone("+447400123456"), &limits, at(T0));
        sends.push(tokio::spawn(async move { node.count_sends(&counters, at(T0)).await.unwrap() }));
    }
    let mut allowed = 0;
    for s in sends {
        allowed += usize::from(s.await.unwrap().is_ok());
    }
    assert_eq!(allowed, 7);
    // The prefix counter was rolled back with each refusal: a neighbour
    // number still has the prefix budget minus those 7.
    let tight = FraudSettings { max_sends_per_prefix_per_hour: 8, ..limits };
    let neighbour = counters_for(&t.id, &phone("+447400123457"), &tight, at(T0));
    store.count_sends(&neighbour, at(T0)).await.unwrap().unwrap();
    let refused = store.count_sends(&neighbour, at(T0)).await.unwrap().unwrap_err();
    assert_eq!(refused, SendRefusal::Fraud { scope: "prefix", retry_after_s: 3_600 - (T0 % 3_600) as u64 });
    // The next hour is a new bucket.
    let next_hour = counters_for(&t.id, &phone("+447400123456"), &limits, at(T0 + 3_600));
    store.count_sends(&next_hour, at(T0 + 3_600)).await.unwrap().unwrap();
    let _: Vec<SendCounter> = next_hour;
}

/// Starts count their sends with the verification they create (on
/// PostgreSQL in a commit of their own just before it): racing starts on
/// two nodes stop at the tenant's limit, and a start refused for a live
/// verification on its number gives its counts back.
#[tokio::test]
async fn starts_hold_the_tenant_limit_when_they_race_and_a_conflicting_start_counts_nothing() {
    let (store, db) = store().await;
    let other_node = connect(&db).await.unwrap();
    let (t, service) = tenant(&store).await;
    let limits = FraudSettings { max_sends_per_tenant_per_hour: 10, ..FraudSettings::default() };
    let nodes = [Arc::new(store.clone()), Arc::new(other_node)];
    let mut starts = Vec::new();
    for i in 0..40 {
        let node = nodes[i % 2].clone();
        let to = format!("+4474001{i:05}");
        let v = pending(&service, &to, "h", T0);
        let counters = counters_for(&t.id, &phone(&to), &limits, at(T0));
        starts.push(tokio::spawn(async move { node.create_verification(&v, &counters).await.unwrap() }));
    }
    let mut created = 0;
    for s in starts {
        match s.await.unwrap() {
            Ok(()) => created += 1,
            Err(refusal) => assert!(matches!(refusal, SendRefusal::Fraud { scope: "tenant", .. }), "{refusal:?}"),
        }
    }
    assert_eq!(created, 10);

    // The next hour, limit 2: a start to a number with a live verification
    // is a conflict and uses none of the budget.
    let later = T0 + 3_600;
    let limits = FraudSettings { max_sends_per_tenant_per_hour: 2, ..FraudSettings::default() };
    let start = |to: &str| {
        let v = pending(&service, to, "h", later);
        let counters = counters_for(&t.id, &phone(to), &limits, at(later));
        let store = store.clone();
        async move { store.create_verification(&v, &counters).await }
    };
    start("+447400200001").await.unwrap().unwrap();
    assert!(matches!(start("+447400200001").await, Err(StoreError::Conflict(_))));
    start("+447400200002").await.unwrap().unwrap();
    assert!(matches!(start("+447400200003").await, Ok(Err(SendRefusal::Fraud { scope: "tenant", .. }))));
}

#[tokio::test]
async fn tenants_start_with_the_console_provider_and_credentials_guard_their_use() {
    let (store, _db) = store().await;
    let (t, _) = tenant(&store).await;
    let providers = store.list_providers(&t.id).await.unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(
        (providers[0].name.as_str(), providers[0].kind(), providers[0].priority),
        ("console", ProviderKind::Console, 1000)
    );
    let mut twilio = ProviderConfig::console(t.id.clone(), at(T0 + 1));
    twilio.name = "twilio-main".into();
    twilio.channels = vec![Channel::Sms, Channel::Voice];
    twilio.priority = 10;
    twilio.credential = Some("twilio".into());
    twilio.settings = ProviderSettings::parse(ProviderKind::Twilio, &json!({"from": "+15005550006"})).unwrap();
    assert!(matches!(store.put_provider(&twilio, &audit("provider.put", T0)).await, Err(StoreError::NotFound)));
    let info = store
        .put_credential(&t.id, "twilio", "basic", b"sealed-bytes", at(T0 + 1), &audit("credential.put", T0 + 1))
        .await
        .unwrap();
    assert_eq!((info.name.as_str(), info.kind.as_str()), ("twilio", "basic"));
    let saved = store.put_provider(&twilio, &audit("provider.put", T0 + 1)).await.unwrap();
    assert_eq!(saved, twilio);
    let names: Vec<_> = store.list_providers(&t.id).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["twilio-main", "console"], "tried in priority order");
    assert!(matches!(
        store.delete_credential(&t.id, "twilio", &audit("credential.deleted", T0 + 2)).await,
        Err(StoreError::Conflict(_))
    ));
    // Replacing keeps created_at and moves updated_at.
    twilio.updated_at = at(T0 + 5);
    let info = store
        .put_credential(&t.id, "twilio", "basic", b"rotated", at(T0 + 5), &audit("credential.put", T0 + 5))
        .await
        .unwrap();
    assert_eq!((info.created_at, info.updated_at), (at(T0 + 1), at(T0 + 5)));
    assert_eq!(store.sealed_credential(&t.id, "twilio").await.unwrap(), b"rotated");
    store.delete_provider(&t.id, "twilio-main", &audit("provider.deleted", T0 + 6)).await.unwrap();
    store.delete_credential(&t.id, "twilio", &audit("credential.deleted", T0 + 6)).await.unwrap();
    assert!(matches!(store.sealed_credential(&t.id, "twilio").await, Err(StoreError::NotFound)));
}

/// A send asks for its tenant's providers at the version its request's
/// read of the settings found, and is served from memory while that
/// version is kept. Every write of a provider or of a credential moves the
/// version in its own transaction, so another node sees each at once; a
/// change that moves no version (SQL behind the stores' backs) goes unseen
/// until one does, which shows the kept copy is what is served.
#[tokio::test]
async fn a_send_sees_every_provider_write_made_before_its_request_read_the_settings() {
    let (store, db) = store().await;
    let node = connect(&db).await.unwrap();
    let (t, _) = tenant(&store).await;
    let to_send = async |node: &SqlStore| {
        let seen = node.settings_and_service(&t.id, None).await.unwrap().providers_version;
        let found = node.providers_to_send(&t.id, seen).await.unwrap();
        assert_eq!(found.version, seen, "the providers as they were at the version found");
        found
    };
    let names = |found: &ProvidersToSend| found.providers.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let first = to_send(&node).await;
    assert_eq!((names(&first), first.sealed.len()), (vec!["console".to_owned()], 0));

    store
        .put_credential(&t.id, "twilio", "basic", b"sealed-bytes", at(T0), &audit("credential.put", T0))
        .await
        .unwrap();
    let mut twilio = ProviderConfig::console(t.id.clone(), at(T0));
    twilio.name = "twilio-main".into();
    twilio.channels = vec![Channel::Sms];
    twilio.priority = 10;
    twilio.credential = Some("twilio".into());
    twilio.settings = ProviderSettings::parse(ProviderKind::Twilio, &json!({"from": "+15005550006"})).unwrap();
    store.put_provider(&twilio, &audit("provider.put", T0)).await.unwrap();
    let saved = to_send(&node).await;
    assert!(saved.version > first.version);
    assert_eq!(names(&saved), ["twilio-main", "console"]);
    assert_eq!(saved.sealed.get("twilio").map(Vec::as_slice), Some(&b"sealed-bytes"[..]));

    store
        .put_credential(&t.id, "twilio", "basic", b"rotated", at(T0 + 1), &audit("credential.put", T0 + 1))
        .await
        .unwrap();
    let rotated = to_send(&node).await;
    assert_eq!(rotated.sealed.get("twilio").map(Vec::as_slice), Some(&b"rotated"[..]), "a rotation is seen");

    twilio.enabled = false;
    store.put_provider(&twilio, &audit("provider.put", T0 + 2)).await.unwrap();
    assert!(!to_send(&node).await.providers[0].enabled, "a provider switched off is seen");

    store.delete_provider(&t.id, "twilio-main", &audit("provider.deleted", T0 + 3)).await.unwrap();
    let deleted = to_send(&node).await;
    assert_eq!(names(&deleted), ["console"]);

    let behind = async |sql: &'static str| execute_behind_the_stores(&db, sql).await.unwrap();
    assert_eq!(behind("UPDATE providers SET priority = 7").await, 1);
    assert_eq!(to_send(&node).await.providers[0].priority, 1000, "served from memory at the version found");
    assert_eq!(behind("UPDATE tenants SET providers_version = providers_version + 1").await, 1);
    let moved = to_send(&node).await;
    assert_eq!(moved.providers[0].priority, 7, "read again once the version moves");

    let stale = node.providers_to_send(&t.id, first.version).await.unwrap();
    assert_eq!((stale.version, names(&stale)), (moved.version, names(&moved)), "an older version reads afresh");
}

/// Every send reads all of its tenant's providers, so a tenant has at most
/// PROVIDERS_PER_TENANT, the console provider among them, counted inside
/// the write: a burst of concurrent saves of new names stores exactly up to
/// the limit; at the limit a provider is still saved again under its own
/// name, a missing credential is still NotFound, and a deleted provider
/// frees its place.
#[tokio::test]
async fn a_burst_of_new_providers_stores_exactly_up_to_the_limit() {
    let (store, _db) = store().await;
    let store = Arc::new(store);
    let (t, _) = tenant(&store).await;
    let named = |name: String| {
        let mut p = ProviderConfig::console(t.id.clone(), at(T0 + 1));
        p.name = name;
        p
    };
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let (store, p) = (store.clone(), named(format!("gw-{n}")));
            tokio::spawn(async move { store.put_provider(&p, &audit("provider.put", T0 + 1)).await.map(|_| ()) })
        })
        .collect();
    let limit = usize::try_from(PROVIDERS_PER_TENANT).unwrap();
    assert_eq!(crate::tenant_limits::tally(tasks).await, (limit - 1, 40 - (limit - 1)), "the console provider counts");
    assert_eq!(store.list_providers(&t.id).await.unwrap().len(), limit);

    let providers = store.list_providers(&t.id).await.unwrap();
    let kept = providers.iter().find(|p| p.name.starts_with("gw-")).unwrap();
    let mut again = named(kept.name.clone());
    again.priority = 7;
    assert_eq!(store.put_provider(&again, &audit("provider.put", T0 + 2)).await.unwrap().priority, 7);
    let mut needs_credential = named("gw-new".into());
    needs_credential.credential = Some("missing".into());
    assert!(matches!(
        store.put_provider(&needs_credential, &audit("provider.put", T0 + 2)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.put_provider(&named("gw-new".into()), &audit("provider.put", T0 + 2)).await,
        Err(StoreError::LimitReached(_))
    ));
    store.delete_provider(&t.id, &again.name, &audit("provider.deleted", T0 + 3)).await.unwrap();
    assert!(store.put_provider(&named("gw-new".into()), &audit("provider.put", T0 + 3)).await.is_ok());
}

#[tokio::test]
async fn a_receipt_settles_a_sent_delivery_once() {
    let (store, _db) = store().await;
    let (t, _) = tenant(&store).await;
    let sent = Delivery {
        id: DeliveryId::generate(),
        tenant_id: t.id.clone(),
        verification_id: None,
        channel: Channel::Sms,
        to: "+447400123456".into(),
        country: Some("GB".into()),
        status: DeliveryStatus::Sent,
        result: DeliveryResult::Success,
        provider: Some("twilio-main".into()),
        provider_message_id: Some("SM123".into()),
        error: None,
        created_at: at(T0),
        updated_at: at(T0),
    };
    store.record_delivery(&sent, None).await.unwrap();
    assert_eq!(store.delivery_for_callback(&sent.id).await.unwrap(), sent);
    let failed = Delivery {
        status: DeliveryStatus::Undelivered,
        error: Some("30003".into()),
        updated_at: at(T0 + 9) + Duration::ZERO,
        ..sent.clone()
    };
    let event = Event::new(t.id.clone(), EventType::DeliveryFailed, json!({}), at(T0 + 9));
    assert!(store.record_receipt(&failed, Some(&event)).await.unwrap());
    assert!(!store.record_receipt(&failed, Some(&event)).await.unwrap(), "a replayed receipt changes nothing");
    assert_eq!(store.delivery(&t.id, &sent.id).await.unwrap().status, DeliveryStatus::Undelivered);
}

#[tokio::test]
async fn old_send_counters_are_pruned() {
    let (store, _db) = store().await;
    let (t, _) = tenant(&store).await;
    let limits = FraudSettings { max_sends_per_destination_per_hour: 1, ..FraudSettings::default() };
    let old = counters_for(&t.id, &phone("+447400123456"), &limits, at(T0));
    store.count_sends(&old, at(T0)).await.unwrap().unwrap();
    let fresh = counters_for(&t.id, &phone("+447400123456"), &limits, at(T0 + 7_200));
    store.count_sends(&fresh, at(T0 + 7_200)).await.unwrap().unwrap();
    assert_eq!(store.prune_send_counters(fresh[0].bucket).await.unwrap(), 3, "the old hour's three counters");
    assert!(store.count_sends(&fresh, at(T0 + 7_200)).await.unwrap().is_err(), "the current hour is kept");
}
