//! `/v1/deliveries` (the CRM made the code) and Twilio's status callbacks
//! (delivery receipts), signed here by the official `twilio` Python
//! package's `RequestValidator`, not by our own code.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_providers::{FakeProviders, Mode, TWILIO_TOKEN};
use crate::helpers::{TestApp, python, spawn_app};
use crate::verifications::{LANDLINE, MOBILE, use_twilio};

async fn deliver(app: &TestApp, body: Value) -> crate::helpers::Reply {
    app.post("/v1/deliveries", &app.admin, body).await
}

async fn gateway(app: &TestApp, fake: &FakeProviders) {
    let provider = json!({"type": "http", "priority": 5, "settings": {"url": format!("{}/http/gateway", fake.base),
        "body_template": "{\"to\":\"{to}\",\"text\":\"{message}\",\"code\":\"{code}\",\"user\":\"{user_id}\",\
\"network\":\"{network_id}\",\"experience\":\"{experience_id}\"}"}});
    assert_eq!(app.put("/v1/providers/gateway", &app.admin, provider).await.status, StatusCode::OK);
    app.delete("/v1/providers/console", &app.admin).await;
}

#[tokio::test]
async fn a_crm_code_is_delivered_with_its_fields_and_never_stored() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    gateway(&app, &fake).await;
    let reply = deliver(&app, json!({"to": MOBILE, "channel": "sms", "code": "739184",
        "message": "Your Acme code is {code}", "user_id": "005xx0001", "network_id": "0DBxx01", "experience_id": "login"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["result"], "SUCCESS");
    assert_eq!(reply.body["provider"], "gateway");
    assert!(reply.body["provider_message_id"].as_str().unwrap().starts_with("msg-"));
    assert!(reply.body["id"].as_str().unwrap().starts_with("dlv_"));
    let seen = &fake.wait_for("http/gateway", 1).await[0].json;
    assert_eq!(seen["text"], "Your Acme code is 739184");
    assert_eq!((seen["code"].as_str(), seen["user"].as_str()), (Some("739184"), Some("005xx0001")));
    assert_eq!((seen["network"].as_str(), seen["experience"].as_str()), (Some("0DBxx01"), Some("login")));
    // Without a message, the channel template carries the code.
    deliver(&app, json!({"to": MOBILE, "channel": "sms", "code": "552201"})).await;
    let seen = &fake.wait_for("http/gateway", 2).await[1].json;
    assert_eq!(seen["text"], "Your vouchsafe verification code is: 552201");
    let id = reply.body["id"].as_str().unwrap();
    let detail = app.get(&format!("/v1/deliveries/{id}"), &app.admin).await;
    assert_eq!((detail.body["status"].as_str(), detail.body["to"].as_str()), (Some("sent"), Some(MOBILE)));
    let contents = crate::secrets::database_contents(&app).await;
    assert!(contents.contains(id));
    assert!(!contents.contains("739184") && !contents.contains("552201"), "a CRM's code was stored");
}

#[tokio::test]
async fn refusals_come_back_as_salesforce_results() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    gateway(&app, &fake).await;
    let patch = json!({"geo": {"allowed_countries": ["GB"]}, "fraud": {"max_sends_per_destination_per_hour": 2}});
    assert_eq!(app.patch("/v1/settings", &app.admin, patch).await.status, StatusCode::OK);
    let result = |reply: crate::helpers::Reply| {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body["result"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        result(deliver(&app, json!({"to": "12345", "channel": "sms", "code": "1111"})).await),
        "INVALID_PHONE_NUMBER"
    );
    assert_eq!(
        result(deliver(&app, json!({"to": LANDLINE, "channel": "sms", "code": "1111"})).await),
        "INVALID_PHONE_NUMBER"
    );
    assert_eq!(
        result(deliver(&app, json!({"to": "+4915123456789", "channel": "sms", "code": "1111"})).await),
        "COUNTRY_BLOCK"
    );
    assert_eq!(result(deliver(&app, json!({"to": MOBILE, "channel": "sms", "code": "1111"})).await), "SUCCESS");
    assert_eq!(result(deliver(&app, json!({"to": MOBILE, "channel": "sms", "code": "2222"})).await), "SUCCESS");
    let limited = deliver(&app, json!({"to": MOBILE, "channel": "sms", "code": "3333"})).await;
    assert_eq!(result(limited), "MESSAGE_LIMIT_EXCEEDED");
    assert_eq!(fake.seen().len(), 2, "refused deliveries reach no provider");
    fake.set_mode("http/gateway", Mode::Fail(500));
    let failed = deliver(&app, json!({"to": "+447400123457", "channel": "sms", "code": "4444"})).await;
    assert_eq!(failed.body["result"], "PROVIDER_ERROR");
    assert_eq!(failed.body["error"], "gateway: the provider answered 500");
    // Malformed requests are errors, not results.
    let bad = deliver(&app, json!({"to": MOBILE, "channel": "pigeon", "code": "1111"})).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("channel")));
    for code in ["", "123", "1234567890123", "12 34"] {
        let bad = deliver(&app, json!({"to": MOBILE, "channel": "sms", "code": code})).await;
        assert_eq!(bad.body["error"]["field"], "code", "{code:?}");
    }
    // Issue 16, item 8: a message of the CRM's own must carry the code.
    let sent_before = fake.seen().len();
    let bad = deliver(&app, json!({"to": "+447400123458", "channel": "sms", "code": "5555", "message": "Hello"})).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("message")));
    assert_eq!(fake.seen().len(), sent_before, "nothing was sent");
}

/// `X-Twilio-Signature` as Twilio's own library computes it.
fn twilio_signature(token: &str, url: &str, params: &Value) -> String {
    let script = "import json, sys\nfrom twilio.request_validator import RequestValidator\n\
        a = json.loads(sys.argv[1])\nprint(RequestValidator(a['token']).compute_signature(a['url'], a['params']))";
    let arg = json!({"token": token, "url": url, "params": params}).to_string();
    python("twilio", script, &[&arg])
}

async fn callback(app: &TestApp, url: &str, params: &Value, signature: &str, key: Option<&str>) -> StatusCode {
    let form: Vec<(String, String)> =
        params.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
    let mut request = app.client.post(url).header("x-twilio-signature", signature).form(&form);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn twilio_receipts_settle_deliveries_once_and_failures_emit_events() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let ok = deliver(&app, json!({"to": MOBILE, "channel": "sms", "code": "111111"})).await;
    let lost = deliver(&app, json!({"to": "+447400123457", "channel": "sms", "code": "222222"})).await;
    let sent = fake.wait_for("twilio_sms", 2).await;
    let (ok_url, lost_url) = (&sent[0].form["StatusCallback"], &sent[1].form["StatusCallback"]);
    assert!(ok_url.starts_with(&app.base), "{ok_url}");
    let sid = ok.body["provider_message_id"].as_str().unwrap();
    assert!(sid.starts_with("SM"));

    let delivered = json!({"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": crate::fake_providers::TWILIO_SID, "To": MOBILE});
    let signature = twilio_signature(TWILIO_TOKEN, ok_url, &delivered);
    assert_eq!(callback(&app, ok_url, &delivered, "bm90IGl0", None).await, StatusCode::FORBIDDEN, "a bad signature");
    // Issue 16, item 13: it says the signature is wrong, not a key's role.
    let form: Vec<(String, String)> =
        delivered.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect();
    let said = app.client.post(ok_url).header("x-twilio-signature", "bm90IGl0").form(&form).send().await.unwrap();
    let said = crate::helpers::read(said).await;
    assert!(said.body["error"]["message"].as_str().unwrap().contains("X-Twilio-Signature"), "{}", said.text);
    assert_eq!(
        callback(&app, lost_url, &delivered, &signature, None).await,
        StatusCode::FORBIDDEN,
        "signed for another URL"
    );
    let agent = app.key(vouchsafe_core::role::Role::Agent).await;
    assert_eq!(callback(&app, ok_url, &delivered, &signature, Some(&agent)).await, StatusCode::FORBIDDEN);
    let webhook = app.key(vouchsafe_core::role::Role::Webhook).await;
    assert_eq!(callback(&app, ok_url, &delivered, &signature, Some(&webhook)).await, StatusCode::NO_CONTENT);
    let id = ok.body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/deliveries/{id}"), &app.admin).await.body["status"], "delivered");

    let undelivered = json!({"MessageSid": "SMx", "MessageStatus": "undelivered", "ErrorCode": "30003"});
    let signature = twilio_signature(TWILIO_TOKEN, lost_url, &undelivered);
    assert_eq!(callback(&app, lost_url, &undelivered, &signature, None).await, StatusCode::NO_CONTENT);
    assert_eq!(callback(&app, lost_url, &undelivered, &signature, None).await, StatusCode::NO_CONTENT, "a replay");
    let id = lost.body["id"].as_str().unwrap();
    let detail = app.get(&format!("/v1/deliveries/{id}"), &app.admin).await;
    assert_eq!(
        (detail.body["status"].as_str(), detail.body["error"].as_str()),
        (Some("undelivered"), Some("twilio: undelivered (error 30003)"))
    );
    let events = app
        .count_rows(&format!("SELECT COUNT(*) FROM events WHERE type = 'delivery.failed' AND body LIKE '%{id}%'"))
        .await;
    assert_eq!(events, 1, "one event, however often Twilio repeats itself");
    // Interim statuses change nothing.
    let queued = json!({"MessageSid": sid, "MessageStatus": "sent"});
    let signature = twilio_signature(TWILIO_TOKEN, ok_url, &queued);
    assert_eq!(callback(&app, ok_url, &queued, &signature, None).await, StatusCode::NO_CONTENT);
}
