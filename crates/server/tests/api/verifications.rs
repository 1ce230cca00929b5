//! Verifications end to end: codes sent through fake providers on
//! loopback (the real wire formats), read back from what the provider
//! received, and checked against the real server.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use crate::fake_providers::{FakeProviders, Seen, TWILIO_SID, TWILIO_TOKEN, code_in};
use crate::helpers::{TestApp, metric, spawn_app, spawn_second_node, wrong};

pub const MOBILE: &str = "+447400123456";
pub const LANDLINE: &str = "+442079460018";

/// Twilio (fake) as the tenant's only provider.
pub async fn use_twilio(app: &TestApp, fake: &FakeProviders) {
    let cred = json!({"type": "basic", "username": TWILIO_SID, "password": TWILIO_TOKEN});
    assert_eq!(app.put("/v1/credentials/twilio", &app.admin, cred).await.status, StatusCode::OK);
    let provider = json!({"type": "twilio", "channels": ["sms", "voice"], "priority": 10, "credential": "twilio",
        "settings": {"from": "+15005550006", "base_url": fake.base}});
    let reply = app.put("/v1/providers/twilio", &app.admin, provider).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(app.delete("/v1/providers/console", &app.admin).await.status, StatusCode::NO_CONTENT);
}

async fn start(app: &TestApp, to: &str, channel: &str) -> crate::helpers::Reply {
    app.post("/v1/verifications", &app.admin, json!({"to": to, "channel": channel})).await
}

async fn check(app: &TestApp, to: &str, code: &str) -> crate::helpers::Reply {
    app.post("/v1/verifications/check", &app.admin, json!({"to": to, "code": code})).await
}

fn sms_code(seen: &Seen) -> String {
    code_in(&seen.form["Body"], 6)
}

#[tokio::test]
async fn a_code_sent_by_sms_is_approved_once() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let started = start(&app, "+44 7400 123456", "sms").await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    assert_eq!(started.body["status"], "pending");
    assert_eq!(started.body["to"], MOBILE, "stored and shown in E.164");
    assert_eq!(started.body["attempts_remaining"], 5);
    assert_eq!(started.body["send_count"], 1);
    assert!(started.body["id"].as_str().unwrap().starts_with("ver_"));
    let sent = &fake.wait_for("twilio_sms", 1).await[0];
    assert_eq!(sent.form["To"], MOBILE);
    assert_eq!(sent.form["From"], "+15005550006");
    assert!(sent.form["StatusCallback"].contains("/v1/provider-callbacks/twilio?delivery_id=dlv_"));
    let code = sms_code(sent);
    assert_eq!(sent.form["Body"], format!("Your vouchsafe verification code is: {code}"));

    let miss = check(&app, MOBILE, &wrong(&code)).await;
    assert_eq!(miss.status, StatusCode::OK);
    assert_eq!((miss.body["status"].as_str(), miss.body["valid"].as_bool()), (Some("pending"), Some(false)));
    assert_eq!(miss.body["attempts_remaining"], 4);
    let hit = check(&app, MOBILE, &code).await;
    assert_eq!((hit.body["status"].as_str(), hit.body["valid"].as_bool()), (Some("approved"), Some(true)));
    let again = check(&app, MOBILE, &code).await;
    assert_eq!((again.body["status"].as_str(), again.body["valid"].as_bool()), (Some("approved"), Some(false)));
    let id = started.body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/verifications/{id}"), &app.admin).await.body["status"], "approved");
    // The approval is in the audit log and its event in the outbox.
    let audit = app.get("/v1/audit-events", &app.admin).await;
    let approved: Vec<&Value> =
        audit.body["events"].as_array().unwrap().iter().filter(|e| e["action"] == "verification.approved").collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["target"], id);
    let events = app
        .count_rows(&format!("SELECT COUNT(*) FROM events WHERE type = 'verification.approved' AND body LIKE '%{id}%'"))
        .await;
    assert_eq!(events, 1);
}

#[tokio::test]
async fn a_resend_replaces_the_code_and_keeps_the_attempts() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let first = start(&app, MOBILE, "sms").await;
    let old = sms_code(&fake.wait_for("twilio_sms", 1).await[0]);
    assert_eq!(check(&app, MOBILE, &wrong(&old)).await.body["attempts_remaining"], 4);
    let early = start(&app, MOBILE, "sms").await;
    assert_eq!(early.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(early.code(), "max_send_attempts_reached");
    assert_eq!(early.headers["retry-after"], "30");
    app.clock.advance(Duration::seconds(31));
    let second = start(&app, MOBILE, "sms").await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    assert_eq!(second.body["id"], first.body["id"], "the same verification");
    assert_eq!(second.body["send_count"], 2);
    assert_eq!(second.body["attempts_remaining"], 4, "a resend never resets attempts");
    let new = sms_code(&fake.wait_for("twilio_sms", 2).await[1]);
    if new != old {
        let stale = check(&app, MOBILE, &old).await;
        assert_eq!((stale.body["status"].as_str(), stale.body["valid"].as_bool()), (Some("pending"), Some(false)));
        assert_eq!(stale.body["attempts_remaining"], 3);
    }
    assert_eq!(check(&app, MOBILE, &new).await.body["valid"], true);
}

#[tokio::test]
async fn sends_stop_at_max_sends_within_the_window() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let patch = json!({"otp": {"max_sends": 2, "resend_cooldown_s": 0, "send_window_s": 600}});
    assert_eq!(app.patch("/v1/settings", &app.admin, patch).await.status, StatusCode::OK);
    assert_eq!(start(&app, MOBILE, "sms").await.status, StatusCode::CREATED);
    assert_eq!(start(&app, MOBILE, "sms").await.status, StatusCode::CREATED);
    let third = start(&app, MOBILE, "sms").await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.code(), "max_send_attempts_reached");
    assert_eq!(third.headers["retry-after"], "600");
    assert_eq!(fake.seen_of("twilio_sms").len(), 2, "a refused start sends nothing");
}

#[tokio::test]
async fn the_wrong_code_limit_ends_the_verification() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    start(&app, MOBILE, "sms").await;
    let code = sms_code(&fake.wait_for("twilio_sms", 1).await[0]);
    for left in (0..5).rev() {
        let reply = check(&app, MOBILE, &wrong(&code)).await;
        assert_eq!(reply.body["attempts_remaining"], left);
        let expected = if left == 0 { "max_attempts_reached" } else { "pending" };
        assert_eq!(reply.body["status"], expected);
    }
    let right = check(&app, MOBILE, &code).await;
    assert_eq!(right.status, StatusCode::OK);
    assert_eq!(
        (right.body["status"].as_str(), right.body["valid"].as_bool()),
        (Some("max_attempts_reached"), Some(false))
    );
    // Non-digit guesses count as wrong too, and change nothing once final.
    assert_eq!(check(&app, MOBILE, "abc").await.body["status"], "max_attempts_reached");
}

#[tokio::test]
async fn expiry_and_cancel_are_final_states() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    start(&app, MOBILE, "sms").await;
    let code = sms_code(&fake.wait_for("twilio_sms", 1).await[0]);
    app.clock.advance(Duration::seconds(601));
    let late = check(&app, MOBILE, &code).await;
    assert_eq!((late.body["status"].as_str(), late.body["valid"].as_bool()), (Some("expired"), Some(false)));
    let audit = app.get("/v1/audit-events", &app.admin).await;
    assert!(audit.text.contains("verification.expired"));

    // A new start after expiry opens a new verification; cancel ends it.
    let next = start(&app, MOBILE, "sms").await;
    assert_eq!(next.status, StatusCode::CREATED);
    let code = sms_code(&fake.wait_for("twilio_sms", 2).await[1]);
    let id = next.body["id"].as_str().unwrap();
    let canceled = app.post(&format!("/v1/verifications/{id}/cancel"), &app.admin, json!({})).await;
    assert_eq!(canceled.body["status"], "canceled");
    let after = app.post("/v1/verifications/check", &app.admin, json!({"verification_id": id, "code": code})).await;
    assert_eq!((after.body["status"].as_str(), after.body["valid"].as_bool()), (Some("canceled"), Some(false)));
}

#[tokio::test]
async fn bad_destinations_get_their_own_errors_and_change_nothing() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let landline = start(&app, LANDLINE, "sms").await;
    assert_eq!((landline.status, landline.code()), (StatusCode::BAD_REQUEST, "invalid_request"));
    assert_eq!(landline.body["error"]["field"], "to");
    for bad in ["4155552671", "+1", "not a number"] {
        let reply = start(&app, bad, "sms").await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_phone_number"), "{bad}");
    }
    let email = start(&app, "not-an-email", "email").await;
    assert_eq!((email.status, email.code()), (StatusCode::BAD_REQUEST, "invalid_request"));
    let channel = start(&app, MOBILE, "fax").await;
    assert_eq!((channel.status, channel.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("channel")));
    assert_eq!(fake.seen().len(), 0);
    let none = check(&app, LANDLINE, "123456").await;
    assert_eq!((none.status, none.code()), (StatusCode::NOT_FOUND, "not_found"));
    let missing = app.post("/v1/verifications/check", &app.admin, json!({"code": "123456"})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_landline_gets_its_code_by_voice_digit_by_digit() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let started = start(&app, LANDLINE, "voice").await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let call = &fake.wait_for("twilio_call", 1).await[0];
    let twiml = &call.form["Twiml"];
    assert!(twiml.starts_with("<?xml") && twiml.contains("<Say language=\"en-US\">"), "{twiml}");
    let code = code_in(twiml.split("code is ").nth(1).unwrap(), 6);
    let spaced = code.chars().map(String::from).collect::<Vec<_>>().join(", ");
    assert!(twiml.contains(&spaced), "{twiml}");
    assert_eq!(check(&app, LANDLINE, &code).await.body["valid"], true);
}

#[tokio::test]
async fn geo_permissions_refuse_other_countries() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    app.patch("/v1/settings", &app.admin, json!({"geo": {"allowed_countries": ["US", "DE"]}})).await;
    let refused = start(&app, MOBILE, "sms").await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "geo_not_permitted"));
    assert_eq!(check(&app, MOBILE, "123456").await.status, StatusCode::NOT_FOUND, "nothing was stored");
    assert_eq!(start(&app, "+4915123456789", "sms").await.status, StatusCode::CREATED);
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn messages_speak_the_locale_asked_for() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let reply =
        app.post("/v1/verifications", &app.admin, json!({"to": MOBILE, "channel": "sms", "locale": "es"})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let body = &fake.wait_for("twilio_sms", 1).await[0].form["Body"];
    assert!(body.starts_with("Tu código de verificación de vouchsafe es: "), "{body}");
    // A tenant override for a locale wins over the built-in text.
    let patch = json!({"templates": {"locales": {"fr": {"voice": "Code Acme : {code}"}}}});
    assert_eq!(app.patch("/v1/settings", &app.admin, patch).await.status, StatusCode::OK);
    app.post("/v1/verifications", &app.admin, json!({"to": LANDLINE, "channel": "voice", "locale": "fr-FR"})).await;
    let twiml = &fake.wait_for("twilio_call", 1).await[0].form["Twiml"];
    assert!(twiml.contains("<Say language=\"fr-FR\">Code Acme : "), "{twiml}");
    let bad = app.post("/v1/verifications", &app.admin, json!({"to": MOBILE, "channel": "sms", "locale": "x y"})).await;
    assert_eq!(bad.body["error"]["field"], "locale");
}

#[tokio::test]
async fn a_hundred_racing_checks_on_two_nodes_approve_once() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let second = spawn_second_node(&app).await;
    let started = start(&app, MOBILE, "sms").await;
    let id = started.body["id"].as_str().unwrap().to_owned();
    let code = sms_code(&fake.wait_for("twilio_sms", 1).await[0]);
    let bases = Arc::new([app.base.clone(), second]);
    let mut checks = Vec::new();
    for i in 0..100 {
        let (client, bases, secret) = (app.client.clone(), bases.clone(), app.admin.clone());
        let body = json!({"verification_id": id, "code": code});
        checks.push(tokio::spawn(async move {
            let url = format!("{}/v1/verifications/check", bases[i % 2]);
            let reply: Value =
                client.post(url).bearer_auth(secret).json(&body).send().await.unwrap().json().await.unwrap();
            assert_eq!(reply["status"], "approved", "{reply}");
            reply["valid"].as_bool().unwrap()
        }));
    }
    let mut valid = 0;
    for c in checks {
        valid += usize::from(c.await.unwrap());
    }
    assert_eq!(valid, 1, "exactly one check approves");
    let events = app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'verification.approved'").await;
    assert_eq!(events, 1, "and exactly one event");
}

#[tokio::test]
async fn metrics_show_sends_and_approvals_per_country() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    // Two numbers of one country get codes; only one is checked: the
    // conversion an operator watches for SMS pumping.
    let series = [
        ("vouchsafe_verification_sends_total{channel=\"sms\",country=\"DE\",outcome=\"sent\"}", 2.0),
        ("vouchsafe_verification_approvals_total{channel=\"sms\",country=\"DE\"}", 1.0),
        ("vouchsafe_verification_checks_total{outcome=\"approved\"}", 1.0),
    ];
    let before = app.metrics().await;
    start(&app, "+4915123456701", "sms").await;
    start(&app, "+4915123456702", "sms").await;
    let code = sms_code(&fake.wait_for("twilio_sms", 2).await[0]);
    check(&app, "+4915123456701", &code).await;
    let after = app.metrics().await;
    // Counters are process-wide (tests beside this one add to them): what
    // this test did shows as the difference.
    for (name, added) in series {
        assert!(metric(&after, name) - metric(&before, name) >= added, "{name}: {after}");
    }
    assert!(after.contains("vouchsafe_provider_latency_seconds"), "provider latency histogram");
}

#[tokio::test]
async fn fraud_limits_cap_sends_per_tenant_and_prefix() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let patch = json!({"fraud": {"max_sends_per_prefix_per_hour": 2, "prefix_length": 8}});
    assert_eq!(app.patch("/v1/settings", &app.admin, patch).await.status, StatusCode::OK);
    // A pumping run walks through one block of numbers.
    assert_eq!(start(&app, "+447400123401", "sms").await.status, StatusCode::CREATED);
    assert_eq!(start(&app, "+447400123402", "sms").await.status, StatusCode::CREATED);
    let blocked = start(&app, "+447400123403", "sms").await;
    assert_eq!((blocked.status, blocked.code()), (StatusCode::TOO_MANY_REQUESTS, "max_send_attempts_reached"));
    assert!(blocked.body["error"]["message"].as_str().unwrap().contains("per prefix"));
    assert!(blocked.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() <= 3_600);
    assert_eq!(check(&app, "+447400123403", "123456").await.status, StatusCode::NOT_FOUND, "nothing was stored");
    // Another block is not affected, until the tenant's own cap.
    let patch = json!({"fraud": {"max_sends_per_tenant_per_hour": 3}});
    app.patch("/v1/settings", &app.admin, patch).await;
    assert_eq!(start(&app, "+4915123456789", "sms").await.status, StatusCode::CREATED);
    let capped = start(&app, "+4915123456788", "sms").await;
    assert!(capped.body["error"]["message"].as_str().unwrap().contains("per tenant"), "{}", capped.text);
    assert_eq!(fake.seen().len(), 3);
}

/// A hundred starts to a hundred numbers at once against a tenant cap of
/// ten: exactly ten are sent and stored, and the rest are `429` and leave
/// no verification behind. The counters are counted by the statement
/// that checks them, and a refused send gives back what it counted, so
/// the cap holds under any interleaving and the refused ones do not use
/// it up.
#[tokio::test]
async fn a_hundred_concurrent_starts_send_exactly_the_tenant_cap() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let patch = json!({"fraud": {"max_sends_per_tenant_per_hour": 10, "max_sends_per_prefix_per_hour": 1000}});
    assert_eq!(app.patch("/v1/settings", &app.admin, patch).await.status, StatusCode::OK);
    let numbers: Vec<String> = (0..100).map(|i| format!("+4474001239{i:02}")).collect();
    let replies = futures::future::join_all(numbers.iter().map(|to| start(&app, to, "sms"))).await;
    let sent = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!((sent, refused.len()), (10, 90), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(refused.iter().all(|r| r.code() == "max_send_attempts_reached"));
    assert_eq!(fake.wait_for("twilio_sms", 10).await.len(), 10);
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM verifications").await, 10);
    // The refused starts gave back their destinations' counts: each of
    // those numbers may still be sent to once the tenant's cap allows.
    let counted = "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM send_counters WHERE scope = 'destination'";
    assert_eq!(app.count_rows(counted).await, 10);
}

/// A hundred starts to one number at once: a start opens its
/// verification without reading first, so all hundred try to open one.
/// Exactly one does and sends; the other 99 find it pending and are
/// refused by its resend cooldown (`429`), none fails for the race, and
/// the send counters hold the one send alone.
#[tokio::test]
async fn a_hundred_concurrent_starts_to_one_number_open_one_verification_and_send_once() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let to = "+447400123988";
    let replies = futures::future::join_all((0..100).map(|_| start(&app, to, "sms"))).await;
    let statuses: Vec<_> = replies.iter().map(|r| r.status).collect();
    let sent: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::CREATED).collect();
    let refused = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS);
    assert_eq!((sent.len(), refused.count()), (1, 99), "{statuses:?}");
    assert!(
        replies.iter().filter(|r| r.status != StatusCode::CREATED).all(|r| r.code() == "max_send_attempts_reached")
    );
    assert_eq!(fake.wait_for("twilio_sms", 1).await.len(), 1);
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM verifications").await, 1);
    let counted = "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM send_counters WHERE scope = 'destination'";
    assert_eq!(app.count_rows(counted).await, 1, "the refused starts gave back what they counted");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(fake.seen_of("twilio_sms").len(), 1, "no second message");
    assert_eq!(sent[0].body["send_count"], 1, "{}", sent[0].text);
}

/// Brute force: 20 live verifications, each guessed at (in a 4-digit code
/// space) until the server says it is settled. Exactly the attempt limit
/// of wrong guesses is counted for each, none approves, and the right code
/// sent after that fails like any other guess.
#[tokio::test]
async fn guesses_stop_at_the_attempt_limit_and_then_even_the_right_code_fails() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let patch = json!({"otp": {"code_length": 4}, "fraud": {"max_sends_per_prefix_per_hour": 1000}});
    assert_eq!(app.patch("/v1/settings", &app.admin, patch).await.status, StatusCode::OK);
    let mut targets = Vec::new();
    for i in 0..20 {
        let to = format!("+4474001235{i:02}");
        let started = start(&app, &to, "sms").await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        let code = code_in(&fake.wait_for("twilio_sms", i + 1).await[i].form["Body"], 4);
        targets.push((started.body["id"].as_str().unwrap().to_owned(), code));
    }
    let mut guessers = Vec::new();
    for (id, code) in targets {
        let (client, url, secret) = (app.client.clone(), app.url("/v1/verifications/check"), app.admin.clone());
        guessers.push(tokio::spawn(async move {
            let guess = |code: String| {
                let request =
                    client.post(&url).bearer_auth(&secret).json(&json!({"verification_id": id, "code": code}));
                async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
            };
            let right: u32 = code.parse().unwrap();
            let mut counted = 0;
            // Wrong codes, until the verification is no longer pending.
            for wrong in (0..10_000u32).filter(|g| *g != right) {
                let reply = guess(format!("{wrong:04}")).await;
                assert_eq!(reply["valid"], false);
                counted += 1;
                if reply["status"] != "pending" {
                    assert_eq!(reply["status"], "max_attempts_reached");
                    break;
                }
            }
            let last = guess(code).await;
            (counted, last["status"].clone(), last["valid"].clone())
        }));
    }
    for g in guessers {
        let (counted, status, valid) = g.await.unwrap();
        assert_eq!(counted, 5, "the attempt limit of wrong guesses, then settled");
        assert_eq!((status.as_str(), valid.as_bool()), (Some("max_attempts_reached"), Some(false)));
    }
    let approved = app.count_rows("SELECT COUNT(*) FROM verifications WHERE status = 'approved'").await;
    let exhausted = app.count_rows("SELECT COUNT(*) FROM verifications WHERE status = 'max_attempts_reached'").await;
    assert_eq!((approved, exhausted), (0, 20));
}

/// Issue 17: CRM phone fields are often national (`(415) 555-2671`). A
/// request's `default_country`, or the tenant's `geo.default_country`,
/// reads them on every path that takes a number: verifications (start and
/// check), deliveries and users; without a country they are refused as
/// before, and a number that is not that country's is never guessed at.
#[tokio::test]
async fn national_numbers_are_read_in_the_default_country() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let us = json!({"to": "(415) 555-2671", "channel": "sms", "default_country": "US"});
    let started = app.post("/v1/verifications", &app.admin, us).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    assert_eq!(started.body["to"], "+14155552671");
    assert_eq!(fake.wait_for("twilio_sms", 1).await[0].form["To"], "+14155552671");
    let refused = app.post("/v1/verifications", &app.admin, json!({"to": "(415) 555-2671", "channel": "sms"})).await;
    assert_eq!(refused.code(), "invalid_phone_number", "no country, no guess");
    let bad = json!({"to": "(415) 555-2671", "channel": "sms", "default_country": "usa"});
    let bad = app.post("/v1/verifications", &app.admin, bad).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("default_country")));

    // The tenant's default serves every request that names none.
    let patched = app.patch("/v1/settings", &app.admin, json!({"geo": {"default_country": "GB"}})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let gb = app.post("/v1/verifications", &app.admin, json!({"to": "07400 123456", "channel": "sms"})).await;
    assert_eq!(gb.body["to"], MOBILE, "{}", gb.text);
    let code = code_in(&fake.wait_for("twilio_sms", 2).await[1].form["Body"], 6);
    let check = app.post("/v1/verifications/check", &app.admin, json!({"to": "07400 123456", "code": code})).await;
    assert_eq!(check.body["valid"], true, "a check by the national form finds it: {}", check.text);
    let user = app.put("/v1/users/nat", &app.admin, json!({"phone": "020 7946 0018"})).await;
    assert_eq!(user.body["phone"], LANDLINE, "{}", user.text);
    let user = app.put("/v1/users/nat2", &app.admin, json!({"phone": "415-555-2671", "default_country": "US"})).await;
    assert_eq!(user.body["phone"], "+14155552671", "{}", user.text);
    let delivery = json!({"to": "(415) 555-2671", "channel": "sms", "code": "482913", "default_country": "US"});
    let delivered = app.post("/v1/deliveries", &app.admin, delivery).await;
    assert_eq!(delivered.body["result"], "SUCCESS", "{}", delivered.text);
    assert_eq!(fake.wait_for("twilio_sms", 3).await[2].form["To"], "+14155552671");
    let not_gb = app.post("/v1/verifications", &app.admin, json!({"to": "415 555 2671", "channel": "sms"})).await;
    assert_eq!(not_gb.code(), "invalid_phone_number", "not a GB number: refused, not rewritten");
    let invalid = app.patch("/v1/settings", &app.admin, json!({"geo": {"default_country": "ZZ"}})).await;
    assert_eq!(invalid.body["error"]["field"], "geo.default_country");
}
