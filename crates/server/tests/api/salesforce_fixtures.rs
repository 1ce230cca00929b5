//! The Salesforce kit's contract fixtures (`integrations/salesforce/fixtures/`)
//! tied to the real server (issue 17): the webhook delivery the Apex tests
//! replay carries the signature this server's signer makes, the event shape
//! this server sends, and is the very delivery the Apex test embeds — so the
//! kit's mocks cannot drift from the server.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vouchsafe_core::webhook::{WebhookSecret, signature_header};

use crate::fake_providers::FakeProviders;
use crate::helpers::spawn_app;
use crate::verifications::{MOBILE, use_twilio};

const KIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../integrations/salesforce");

fn fixture(name: &str) -> Value {
    let path = format!("{KIT}/fixtures/{name}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn the_webhook_fixture_is_what_the_server_signs_and_sends() {
    let f = fixture("webhook_caller_verification_completed.json");
    let headers = &f["headers"];
    let body = f["body"].as_str().unwrap();
    let secret = WebhookSecret::parse(f["secret"].as_str().unwrap()).expect("a whsec_ secret");
    let timestamp: i64 = headers["webhook-timestamp"].as_str().unwrap().parse().unwrap();
    let signed = signature_header(&[secret], headers["webhook-id"].as_str().unwrap(), timestamp, body);
    assert_eq!(headers["webhook-signature"].as_str().unwrap(), signed, "the server's signer makes this signature");

    // The event the real server sends has exactly the fixture's members.
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let started = app
        .post("/v1/caller-verifications", &app.admin, json!({"record_id": "500xx000001Case1", "phone": MOBILE}))
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let id = started.body["id"].as_str().unwrap();
    app.post(&format!("/v1/caller-verifications/{id}/cancel"), &app.admin, json!({})).await;
    let sent = &app.event_bodies("caller_verification.completed").await[0];
    let replayed: Value = serde_json::from_str(body).unwrap();
    assert_eq!(keys(sent), keys(&replayed), "the envelope's members");
    assert_eq!(keys(&sent["data"]), keys(&replayed["data"]), "the event's members");

    // The Apex tests replay exactly this delivery.
    for class in ["VouchsafeWebhookSignatureTest", "VouchsafeWebhookResourceTest"] {
        let apex = std::fs::read_to_string(format!("{KIT}/force-app/main/default/classes/{class}.cls")).unwrap();
        check_constants(&apex, class, &f);
    }
}

/// The fixture's values, as the Apex test class declares them.
fn check_constants(apex: &str, class: &str, f: &Value) {
    let headers = &f["headers"];
    for (constant, value) in [
        ("FIXTURE_SECRET", f["secret"].as_str().unwrap()),
        ("FIXTURE_ID", headers["webhook-id"].as_str().unwrap()),
        ("FIXTURE_TIMESTAMP", headers["webhook-timestamp"].as_str().unwrap()),
        ("FIXTURE_SIGNATURE", headers["webhook-signature"].as_str().unwrap()),
        ("FIXTURE_BODY", f["body"].as_str().unwrap()),
    ] {
        assert!(apex.contains(&format!("{constant} = '{value}';")), "{class}'s {constant} is the fixture's");
    }
}

/// Every delivery exchange the OTP handler's Apex test mocks, replayed
/// against the real server: the same status, the same members and the same
/// `result` (ids and provider names are the server's own).
#[tokio::test]
async fn the_delivery_fixtures_are_what_the_server_answers() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    let provider = json!({"type": "http", "priority": 5, "settings": {"url": format!("{}/http/gateway", fake.base),
        "body_template": "{\"to\":\"{to}\",\"text\":\"{message}\"}"}});
    assert_eq!(app.put("/v1/providers/sms-gateway", &app.admin, provider).await.status, StatusCode::OK);
    app.delete("/v1/providers/console", &app.admin).await;
    replay(&app, "deliveries.json", "VouchsafeOtpDeliveryHandlerTest", &["result"]).await;
}

/// The Case component's calls, replayed in order against the real server.
#[tokio::test]
async fn the_caller_verification_fixtures_are_what_the_server_answers() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let compared = ["status", "valid", "channel", "to", "record_type", "time_allowed_s"];
    replay(&app, "caller_verifications.json", "VouchsafeCallerControllerTest", &compared).await;
}

/// Replays a fixture's exchanges in order against the real server: each
/// answer's status, members and the values of `compared`, and the Apex test
/// `class` must mock exactly the fixture's answer bodies. `{id}` in a path is
/// the id of the last thing created: the newest answer with an `id` to a
/// request whose own path had no `{id}`.
async fn replay(app: &crate::helpers::TestApp, file: &str, class: &str, compared: &[&str]) {
    let f = fixture(file);
    if let Some(settings) = f.get("setup").and_then(|s| s.get("settings")) {
        let patched = app.patch("/v1/settings", &app.admin, settings.clone()).await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    }
    let apex = std::fs::read_to_string(format!("{KIT}/force-app/main/default/classes/{class}.cls")).unwrap();
    let mut id = String::new();
    for exchange in f["exchanges"].as_array().unwrap() {
        let (name, request, answer) = (&exchange["name"], &exchange["request"], &exchange["answer"]);
        let path = request["path"].as_str().unwrap().replace("{id}", &id);
        let method = reqwest::Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
        let body = (method != reqwest::Method::GET).then(|| request["body"].clone());
        let reply = app.call(method, &path, Some(&app.admin), body).await;
        assert_eq!(reply.status.as_u16(), answer["status"].as_u64().unwrap() as u16, "{name}: {}", reply.text);
        assert_eq!(keys(&reply.body), keys(&answer["body"]), "{name}: {}", reply.text);
        for member in compared {
            assert_eq!(reply.body[member], answer["body"][member], "{name}'s {member}: {}", reply.text);
        }
        assert_eq!(reply.body["error"]["code"], answer["body"]["error"]["code"], "{name}: {}", reply.text);
        if !request["path"].as_str().unwrap().contains("{id}")
            && let Some(found) = reply.body["id"].as_str()
        {
            id = found.to_owned();
        }
        let mocked = serde_json::to_string(&answer["body"]).unwrap();
        assert!(apex.contains(&format!("'{mocked}'")), "{name}: {class} mocks {mocked}");
    }
}

#[tokio::test]
async fn the_verification_fixtures_are_what_the_server_answers() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    replay(&app, "verifications.json", "VouchsafeVerifyActionTest", &["status", "valid", "to", "channel"]).await;
}

#[tokio::test]
async fn the_challenge_fixtures_are_what_the_server_answers() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let compared = ["status", "valid", "factor", "action", "privileged", "phone", "attempts_remaining"];
    replay(&app, "challenges.json", "VouchsafeChallengeActionTest", &compared).await;
}
