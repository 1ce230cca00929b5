//! Webhooks end to end: a real receiver on loopback verifies every
//! delivery with the official `standardwebhooks` package; retries keep the
//! event's id; `410 Gone` disables the endpoint; the schedule ends in the
//! dead letter; ping reports plainly; rotation signs with both secrets.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vouchsafe_core::role::Role;
use vouchsafe_store::DatabaseUrl;

use crate::fake_providers::{FakeProviders, code_in};
use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with, spawn_app_with_endpoint_limit};
use crate::receiver::Receiver;
use crate::verifications::{MOBILE, use_twilio};

async fn endpoint(app: &TestApp, receiver: &Receiver) -> (String, String) {
    let created = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": receiver.url, "events": ["ping"]})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    receiver.configure(json!({"secret": secret})).await;
    (created.body["id"].as_str().unwrap().to_owned(), secret)
}

async fn test_event(app: &TestApp, id: &str) -> String {
    let reply = app.call(Method::POST, &format!("/v1/webhook-endpoints/{id}/test"), Some(&app.admin), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    reply.body["event_id"].as_str().unwrap().to_owned()
}

async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    let reply: Reply = app.get(&format!("/v1/webhook-endpoints/{id}/deliveries"), &app.admin).await;
    reply.body["deliveries"].as_array().unwrap().clone()
}

/// Waits until the endpoint's log has `n` attempts (the dispatcher polls every 25 ms).
async fn wait_attempts(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let log = deliveries(app, id).await;
        if log.len() >= n {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} attempts: {:?}", deliveries(app, id).await);
}

#[tokio::test]
async fn an_event_arrives_signed_so_standardwebhooks_verifies_it() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, secret) = endpoint(&app, &receiver).await;
    assert!(secret.starts_with("whsec_"));
    let event_id = test_event(&app, &id).await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], event_id.as_str());
    assert_eq!(got[0]["verified"], true, "standardwebhooks must accept the signature");
    assert_eq!(got[0]["type"], "ping");
    let log = wait_attempts(&app, &id, 1).await;
    assert_eq!(log[0]["outcome"], "delivered");
    assert_eq!(log[0]["status_code"], 200);
    assert_eq!(log[0]["event_id"], event_id.as_str());

    // With another secret the same delivery would not verify: the check is real.
    receiver.configure(json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})).await;
    test_event(&app, &id).await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1]["verified"], false);
}

#[tokio::test]
async fn a_receiver_that_fails_then_recovers_gets_the_event_with_the_same_id() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    receiver.configure(json!({"fail_first": 2, "failure_status": 503})).await;
    let event_id = test_event(&app, &id).await;
    wait_attempts(&app, &id, 1).await;
    // The schedule of this server is 0, 5, 60, 300 s: move its clock on.
    app.clock.advance(time::Duration::seconds(6));
    wait_attempts(&app, &id, 2).await;
    app.clock.advance(time::Duration::seconds(70));
    let log = wait_attempts(&app, &id, 3).await;

    let got = receiver.received().await;
    assert_eq!(got.len(), 3);
    for request in &got {
        assert_eq!(request["id"], event_id.as_str(), "every retry keeps the webhook-id");
        assert_eq!(request["verified"], true);
    }
    let outcomes: Vec<_> = log
        .iter()
        .rev()
        .map(|a| (a["attempt"].as_u64().unwrap(), a["outcome"].as_str().unwrap().to_owned(), a["status_code"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![(1, "failed".into(), json!(503)), (2, "failed".into(), json!(503)), (3, "delivered".into(), json!(200))]
    );
    assert!(log.iter().all(|a| a["latency_ms"].is_u64() && a["at"].is_string()));
}

/// A receiver down for most of the schedule (the first three attempts of
/// every event, over 75 s of the server's manual clock): nothing is sent
/// ahead of its time, and after recovery every event arrives with the id
/// it had from the start.
#[tokio::test]
async fn after_a_long_outage_every_event_arrives_on_schedule_with_its_id() {
    const EVENTS: usize = 10;
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    receiver.configure(json!({"fail_first": 3 * EVENTS, "failure_status": 503})).await;
    let mut sent = Vec::new();
    for _ in 0..EVENTS {
        sent.push(test_event(&app, &id).await);
    }
    wait_attempts(&app, &id, EVENTS).await;
    // The schedule of this server is 0, 5, 60, 300 s, each ±10%.
    app.clock.advance(time::Duration::seconds(6));
    wait_attempts(&app, &id, 2 * EVENTS).await;
    app.clock.advance(time::Duration::seconds(45));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(deliveries(&app, &id).await.len(), 2 * EVENTS, "no third attempt before 54 s");
    app.clock.advance(time::Duration::seconds(24));
    wait_attempts(&app, &id, 3 * EVENTS).await;
    app.clock.advance(time::Duration::seconds(340));
    let log = wait_attempts(&app, &id, 4 * EVENTS).await;

    let got = receiver.received().await;
    assert_eq!(got.len(), 4 * EVENTS, "four attempts per event, no more");
    // Signed, each one (standardwebhooks' own check would refuse these
    // timestamps: the server's clock is minutes ahead of the receiver's).
    assert!(got.iter().all(|r| r["signature"].as_str().is_some_and(|s| s.starts_with("v1,"))), "{got:?}");
    for event in &sent {
        let attempts: Vec<_> = got.iter().filter(|r| r["id"] == event.as_str()).collect();
        assert_eq!(attempts.len(), 4, "event {event} kept its id through the outage");
        assert_eq!(attempts.last().unwrap()["status"], 200, "and was delivered at the end");
    }
    let delivered = log.iter().filter(|a| a["outcome"] == "delivered").count();
    assert_eq!(delivered, EVENTS);
}

#[tokio::test]
async fn a_retry_waits_for_its_time() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    receiver.configure(json!({"fail_first": 1})).await;
    test_event(&app, &id).await;
    wait_attempts(&app, &id, 1).await;
    app.clock.advance(time::Duration::seconds(3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().await.len(), 1, "no retry before 5 s (±10%) have passed");
    // The dispatcher was waiting, not stuck: past 5.5 s the retry comes.
    app.clock.advance(time::Duration::seconds(3));
    assert_eq!(receiver.wait_for(2, Duration::from_secs(10)).await.len(), 2, "the retry once its time came");
}

#[tokio::test]
async fn the_schedule_ends_in_the_dead_letter() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    receiver.configure(json!({"fail_first": 100})).await;
    test_event(&app, &id).await;
    for n in 1..=4 {
        wait_attempts(&app, &id, n).await;
        app.clock.advance(time::Duration::seconds(400));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = deliveries(&app, &id).await;
    assert_eq!(log.len(), 4, "four attempts in a schedule of four");
    assert_eq!(log[0]["outcome"], "dead");
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(metrics.contains("vouchsafe_webhook_deliveries_total{outcome=\"dead\"}"), "{metrics}");
    for family in [
        "vouchsafe_webhook_deliveries_total{outcome=\"failed\"}",
        "vouchsafe_webhook_events_enqueued_total{type=\"ping\"}",
        "vouchsafe_webhook_delivery_duration_seconds_bucket",
        "vouchsafe_webhook_outbox_depth",
    ] {
        assert!(metrics.contains(family), "{family} missing from /metrics");
    }
}

#[tokio::test]
async fn gone_disables_the_endpoint_until_it_is_enabled_again() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    receiver.configure(json!({"fail_first": 1, "failure_status": 410})).await;
    test_event(&app, &id).await;
    let log = wait_attempts(&app, &id, 1).await;
    assert_eq!(log[0]["outcome"], "gone");
    let read = app.get(&format!("/v1/webhook-endpoints/{id}"), &app.admin).await;
    assert_eq!(read.body["enabled"], false);
    assert!(read.body["disabled_reason"].as_str().unwrap().contains("410"));
    let refused = app.call(Method::POST, &format!("/v1/webhook-endpoints/{id}/test"), Some(&app.admin), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let pings = app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'ping'").await;
    assert_eq!(pings, 1, "the refused test stored no event");

    let enabled = app.patch(&format!("/v1/webhook-endpoints/{id}"), &app.admin, json!({"enabled": true})).await;
    assert_eq!(enabled.body["enabled"], true);
    test_event(&app, &id).await;
    let log = wait_attempts(&app, &id, 2).await;
    assert_eq!(log[0]["outcome"], "delivered");
}

/// A test event names an endpoint of the caller's tenant: another
/// tenant's, or one that does not exist, is `404` and stores nothing.
#[tokio::test]
async fn a_test_event_for_another_tenants_endpoint_is_not_found() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (theirs, _) = endpoint(&app, &receiver).await;
    let (_, other, _) = app.new_tenant("other", Role::Admin).await;
    for id in [theirs.as_str(), "whe_00000000000000000000000000"] {
        let refused = app.call(Method::POST, &format!("/v1/webhook-endpoints/{id}/test"), Some(&other), None).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{id}: {}", refused.text);
        assert_eq!(refused.body["error"]["code"], "not_found");
    }
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM events").await, 0);
}

/// A hundred test events to one endpoint at once: exactly its hourly
/// limit is queued, each with its event and its one message, and the rest
/// are `429 rate_limited` with a `Retry-After` and leave nothing behind
/// (the count is the conditional write that queues, not a read before it).
#[tokio::test]
async fn a_hundred_concurrent_test_events_queue_exactly_the_hourly_limit() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    let path = format!("/v1/webhook-endpoints/{id}/test");
    let replies =
        futures::future::join_all((0..100).map(|_| app.call(Method::POST, &path, Some(&app.admin), None))).await;
    let queued = replies.iter().filter(|r| r.status == StatusCode::ACCEPTED).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(
        (queued, limited.len()),
        (60, 40),
        "only 202 and 429: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for refused in limited {
        assert_eq!(refused.body["error"]["code"], "rate_limited", "{}", refused.text);
        let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'ping'").await, 60);
    let messages = format!("SELECT COUNT(*) FROM webhook_messages WHERE endpoint_id = '{id}'");
    assert_eq!(app.count_rows(&messages).await, 60);
    assert_eq!(receiver.wait_for(60, Duration::from_secs(20)).await.len(), 60);
}

#[tokio::test]
async fn ping_reports_health_and_says_plainly_what_a_403_means() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    let path = format!("/v1/webhook-endpoints/{id}/ping");
    let healthy = app.call(Method::POST, &path, Some(&app.admin), None).await;
    assert_eq!(healthy.status, StatusCode::OK);
    assert_eq!(healthy.body["healthy"], true);
    assert_eq!(healthy.body["status_code"], 200);
    assert!(healthy.body["latency_ms"].is_u64());
    assert_eq!(receiver.received().await[0]["verified"], true);

    receiver.configure(json!({"status": 403})).await;
    let refused = app.call(Method::POST, &path, Some(&app.admin), None).await;
    assert_eq!(refused.body["healthy"], false);
    assert_eq!(refused.body["status_code"], 403);
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("403") && error.contains("refused"), "{error}");

    drop(receiver);
    let down = app.call(Method::POST, &path, Some(&app.admin), None).await;
    assert_eq!(down.body["healthy"], false);
    assert_eq!(down.body["status_code"], Value::Null);
    assert!(down.body["error"].as_str().unwrap().contains("connect"));
}

#[tokio::test]
async fn during_rotation_both_secrets_sign() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, old_secret) = endpoint(&app, &receiver).await;
    let rotated =
        app.post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), &app.admin, json!({"grace_s": 60})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);

    test_event(&app, &id).await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0]["verified"], true, "a receiver still on the old secret keeps working");
    assert_eq!(got[0]["signature"].as_str().unwrap().split(' ').count(), 2);
    receiver.configure(json!({"secret": new_secret})).await;
    test_event(&app, &id).await;
    assert_eq!(receiver.wait_for(2, Duration::from_secs(10)).await[1]["verified"], true);

    // After the grace period only the new secret signs. (The receiver
    // rejects timestamps more than 5 minutes off its own clock, so the grace
    // period here is short.)
    app.clock.advance(time::Duration::seconds(61));
    test_event(&app, &id).await;
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got[2]["signature"].as_str().unwrap().split(' ').count(), 1);
    assert_eq!(got[2]["verified"], true);
}

#[tokio::test]
async fn endpoints_validate_input_and_never_show_the_secret_again() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"url": "ftp://x"}), "url"),
        (json!({"url": "https://crm.example.test", "events": ["nope"]}), "events"),
        (json!({"events": ["ping"]}), "url"),
    ] {
        let reply = app.post("/v1/webhook-endpoints", &app.admin, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.body["error"]["field"], field);
    }
    let created = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": "https://crm.example.test/h"})).await;
    let secret = created.body["secret"].as_str().unwrap();
    assert_eq!(created.body["events"].as_array().unwrap().len(), 7, "no filter means every event");
    let id = created.body["id"].as_str().unwrap();
    assert!(id.starts_with("whe_"));
    for path in ["/v1/webhook-endpoints".to_owned(), format!("/v1/webhook-endpoints/{id}")] {
        assert!(!app.get(&path, &app.admin).await.text.contains(&secret[6..]));
    }
    assert_eq!(app.delete(&format!("/v1/webhook-endpoints/{id}"), &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/webhook-endpoints/{id}"), &app.admin).await.status, StatusCode::NOT_FOUND);
}

/// A tenant has at most the server's `webhook_endpoints_per_tenant`
/// endpoints: one more answers 409 and stores and audits nothing, another
/// tenant has its own, and a deleted endpoint frees its place.
#[tokio::test]
async fn a_tenant_at_its_endpoint_limit_is_refused_with_409() {
    let app = spawn_app_with_endpoint_limit(2).await;
    let create = |secret: String| {
        let app = &app;
        async move { app.post("/v1/webhook-endpoints", &secret, json!({"url": "https://crm.example.test/h"})).await }
    };
    let first = create(app.admin.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(create(app.admin.clone()).await.status, StatusCode::CREATED);
    // One statement, so an entry the chainer moves meanwhile counts once.
    let audited = "SELECT (SELECT COUNT(*) FROM audit_pending WHERE action = 'webhook_endpoint.created') \
                   + (SELECT COUNT(*) FROM audit_events WHERE action = 'webhook_endpoint.created')";

    let refused = create(app.admin.clone()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "conflict");
    assert!(refused.text.contains("webhook_endpoints_per_tenant"), "{}", refused.text);
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM webhook_endpoints").await, 2, "nothing stored");
    assert_eq!(app.count_rows(audited).await, 2, "nothing audited");

    let (_, other, _) = app.new_tenant("other", Role::Admin).await;
    assert_eq!(create(other).await.status, StatusCode::CREATED, "another tenant has its own limit");

    let id = first.body["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/v1/webhook-endpoints/{id}"), &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(create(app.admin.clone()).await.status, StatusCode::CREATED, "a deleted endpoint frees its place");
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let app = spawn_app_with(false).await;
    for url in ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.7/hook", "http://[::1]/hook"] {
        let reply = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": url})).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(reply.code(), "invalid_request");
        assert_eq!(reply.body["error"]["field"], "url");
    }
    assert!(
        app.get("/v1/webhook-endpoints", &app.admin).await.body["webhook_endpoints"].as_array().unwrap().is_empty()
    );
}

/// Issue 16, item 9: `test` reaches the endpoint whatever its event filter.
#[tokio::test]
async fn a_test_event_reaches_an_endpoint_that_filters_events() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let created = app
        .post("/v1/webhook-endpoints", &app.admin, json!({"url": receiver.url, "events": ["verification.approved"]}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    receiver.configure(json!({"secret": created.body["secret"]})).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let event_id = test_event(&app, &id).await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0]["id"], event_id, "{got:?}");
    assert_eq!((got[0]["type"].as_str(), got[0]["verified"].as_bool()), (Some("ping"), Some(true)), "{got:?}");
}

/// An approval reaches, signed, the endpoint that asked for it: the event
/// is fanned out in the approving transaction (on SQLite, on the writer,
/// where `$N` once bound out of order and queued nothing).
#[tokio::test]
async fn an_approved_verification_reaches_the_endpoint_that_wants_it() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let receiver = Receiver::start();
    let created = app
        .post("/v1/webhook-endpoints", &app.admin, json!({"url": receiver.url, "events": ["verification.approved"]}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    receiver.configure(json!({"secret": created.body["secret"]})).await;
    let started = app.post("/v1/verifications", &app.admin, json!({"to": MOBILE, "channel": "sms"})).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let code = code_in(&fake.wait_for("twilio_sms", 1).await[0].form["Body"], 6);
    let hit = app.post("/v1/verifications/check", &app.admin, json!({"to": MOBILE, "code": code})).await;
    assert_eq!(hit.body["status"], "approved", "{}", hit.text);
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!((got[0]["type"].as_str(), got[0]["verified"].as_bool()), (Some("verification.approved"), Some(true)));
}

/// Makes the database refuse (or accept again) every row of the attempt
/// log, with a trigger: a real failed write of the dispatcher's outcomes,
/// as a lost connection or a pool that timed out would make one.
async fn refuse_attempt_rows(app: &TestApp, refuse: bool) {
    match (&app.db.url, refuse) {
        (DatabaseUrl::Sqlite { .. }, true) => {
            app.execute_sql(
                "CREATE TRIGGER refuse_attempts BEFORE INSERT ON webhook_attempts \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            )
            .await;
        }
        (DatabaseUrl::Postgres(_), true) => {
            app.execute_sql(
                "CREATE FUNCTION refuse_attempts() RETURNS trigger LANGUAGE plpgsql \
                 AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            )
            .await;
            app.execute_sql(
                "CREATE TRIGGER refuse_attempts BEFORE INSERT ON webhook_attempts \
                 FOR EACH ROW EXECUTE FUNCTION refuse_attempts()",
            )
            .await;
        }
        (DatabaseUrl::Sqlite { .. }, false) => {
            app.execute_sql("DROP TRIGGER refuse_attempts").await;
        }
        (DatabaseUrl::Postgres(_), false) => {
            app.execute_sql("DROP TRIGGER refuse_attempts ON webhook_attempts").await;
        }
    }
}

/// A server whose database refuses the attempt log's rows, and a test
/// event it has sent to the receiver: the app, the receiver, the
/// endpoint's id and the event's.
async fn delivered_while_attempt_rows_are_refused() -> (TestApp, Receiver, String, String) {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let (id, _) = endpoint(&app, &receiver).await;
    refuse_attempt_rows(&app, true).await;
    let event_id = test_event(&app, &id).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    (app, receiver, id, event_id)
}

/// An attempt whose outcome could not be written (the database refused
/// it) is written again once the database takes it, while its lease
/// lasts: the receiver gets the event once, and the message does not sit
/// leased until the lease runs out (the server's clock never moves here,
/// so it never would).
#[tokio::test]
async fn an_outcome_whose_write_failed_is_written_again_and_not_sent_again() {
    let (app, receiver, id, event_id) = delivered_while_attempt_rows_are_refused().await;
    // Several of the dispatcher's polls (25 ms apart) meet the refusal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM webhook_attempts").await, 0, "the write was refused");

    refuse_attempt_rows(&app, false).await;
    let log = wait_attempts(&app, &id, 1).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["outcome"], "delivered");
    assert_eq!(log[0]["event_id"], event_id.as_str());
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM webhook_messages WHERE status = 'delivered'").await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().await.len(), 1, "sent once");
}

/// An outcome still unwritten when its lease runs out is dropped: the
/// message may be claimed again by then, and is sent again (with its id),
/// as after a crash. Nothing is held for ever behind a write that fails.
#[tokio::test]
async fn an_outcome_unwritten_when_its_lease_runs_out_is_sent_again() {
    let (app, receiver, id, event_id) = delivered_while_attempt_rows_are_refused().await;
    // The lease is the attempt's timeout (5 s here) and 30 s more.
    app.clock.advance(time::Duration::seconds(36));
    tokio::time::sleep(Duration::from_millis(300)).await;

    refuse_attempt_rows(&app, false).await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(got.iter().all(|r| r["id"] == event_id.as_str()), "sent again with its id");
    let log = wait_attempts(&app, &id, 1).await;
    assert_eq!(log.len(), 1, "only the attempt written: {log:?}");
    assert_eq!(log[0]["attempt"], 2);
    assert_eq!(log[0]["outcome"], "delivered");
}
