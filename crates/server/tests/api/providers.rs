//! Providers and credentials through the API, each provider type's wire
//! format against fakes on loopback (and a real SMTP server), failover,
//! and the circuit breaker.

use reqwest::StatusCode;
use serde_json::json;
use time::Duration;

use crate::fake_providers::{FakeProviders, Mode, TELESIGN_CUSTOMER, TELESIGN_KEY, TWILIO_SID, TWILIO_TOKEN, code_in};
use crate::helpers::{TestApp, metric, spawn_app, spawn_app_with, spawn_second_node};
use crate::smtp_sink::SmtpSink;
use crate::verifications::{LANDLINE, MOBILE, use_twilio};

async fn start(app: &TestApp, to: &str, channel: &str) -> crate::helpers::Reply {
    app.post("/v1/verifications", &app.admin, json!({"to": to, "channel": channel})).await
}

async fn http_provider(app: &TestApp, fake: &FakeProviders, name: &str, priority: i32, timeout_ms: u64) {
    let provider = json!({"type": "http", "channels": ["sms", "voice"], "priority": priority, "credential": "hook",
        "settings": {"url": format!("{}/http/{name}", fake.base), "timeout_ms": timeout_ms,
            "headers": {"X-Tenant-Tag": "acme"},
            "body_template": "{\"to\":\"{to}\",\"text\":\"{message}\",\"code\":\"{code}\",\"channel\":\"{channel}\"}"}});
    let reply = app.put(&format!("/v1/providers/{name}"), &app.admin, provider).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

async fn bearer_credential(app: &TestApp) {
    let reply =
        app.put("/v1/credentials/hook", &app.admin, json!({"type": "bearer", "token": "hook-token-secret"})).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_fresh_tenant_has_the_console_provider_and_it_sends() {
    let app = spawn_app().await;
    let listed = app.get("/v1/providers", &app.admin).await;
    assert_eq!(listed.body["providers"][0]["name"], "console");
    assert_eq!(listed.body["providers"][0]["priority"], 1000);
    assert_eq!(listed.body["providers"][0]["channels"], json!(["sms", "voice", "email"]));
    for (to, channel) in [(MOBILE, "sms"), (LANDLINE, "voice"), ("jane@example.com", "email")] {
        assert_eq!(start(&app, to, channel).await.status, StatusCode::CREATED, "{channel}");
    }
}

/// Issue 16, item 4: once a real provider carries a channel, the console
/// provider is no fallback; a failed real provider fails the send.
#[tokio::test]
async fn the_console_provider_is_never_a_fallback_for_a_real_one() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    bearer_credential(&app).await;
    http_provider(&app, &fake, "primary", 1, 2_000).await;
    fake.set_mode("http/primary", Mode::Fail(503));
    let started = start(&app, MOBILE, "sms").await;
    assert_eq!(started.status, StatusCode::BAD_GATEWAY, "{}", started.text);
    assert_eq!(started.code(), "provider_unavailable");
    let delivery =
        app.post("/v1/deliveries", &app.admin, json!({"to": MOBILE, "channel": "sms", "code": "482913"})).await;
    assert_eq!(delivery.body["result"], "PROVIDER_ERROR", "{}", delivery.text);
    assert_ne!(delivery.body["provider"], "console", "{}", delivery.text);
    // Email has no real provider: the console provider still carries it, and says so.
    let email = app
        .post("/v1/deliveries", &app.admin, json!({"to": "jane@example.com", "channel": "email", "code": "482913"}))
        .await;
    assert_eq!(
        (email.body["result"].as_str(), email.body["provider"].as_str()),
        (Some("SUCCESS"), Some("console")),
        "{}",
        email.text
    );
    // With the real provider disabled, the console provider is the only one again.
    let disabled = json!({"type": "http", "channels": ["sms", "voice"], "priority": 1, "credential": "hook", "enabled": false,
        "settings": {"url": format!("{}/http/primary", fake.base), "body_template": "{}"}});
    assert_eq!(app.put("/v1/providers/primary", &app.admin, disabled).await.status, StatusCode::OK);
    assert_eq!(start(&app, "+447400123499", "sms").await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn credentials_are_write_only() {
    let app = spawn_app().await;
    let secret = "pw-that-must-never-come-back";
    let put = app
        .put("/v1/credentials/twilio", &app.admin, json!({"type": "basic", "username": TWILIO_SID, "password": secret}))
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!((put.body["name"].as_str(), put.body["type"].as_str()), (Some("twilio"), Some("basic")));
    let list = app.get("/v1/credentials", &app.admin).await;
    assert_eq!(list.body["credentials"].as_array().unwrap().len(), 1);
    let audit = app.get("/v1/audit-events", &app.admin).await;
    assert!(audit.text.contains("credential.put"));
    for text in [&put.text, &list.text, &audit.text] {
        assert!(!text.contains(secret) && !text.contains(TWILIO_SID), "a credential came back: {text}");
    }
    let contents = crate::secrets::database_contents(&app).await;
    assert!(!contents.contains(secret), "the credential is stored in clear");
    let bad = app.put("/v1/credentials/x", &app.admin, json!({"type": "basic", "username": "u"})).await;
    assert_eq!(bad.code(), "invalid_request", "a member is missing");
    let bad =
        app.put("/v1/credentials/x", &app.admin, json!({"type": "header", "header": "X-K", "value": "a\nb"})).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("value")));
    let bad = app.put("/v1/credentials/bad%20name", &app.admin, json!({"type": "bearer", "token": "t"})).await;
    assert_eq!(bad.body["error"]["field"], "name");
    // In use by a provider, a credential cannot be deleted.
    app.put(
        "/v1/providers/twilio",
        &app.admin,
        json!({"type": "twilio", "credential": "twilio", "settings": {"from": "+15005550006"}}),
    )
    .await;
    assert_eq!(app.delete("/v1/credentials/twilio", &app.admin).await.status, StatusCode::CONFLICT);
    assert_eq!(app.delete("/v1/providers/twilio", &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete("/v1/credentials/twilio", &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete("/v1/credentials/twilio", &app.admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn provider_settings_are_checked_when_saved() {
    let app = spawn_app().await;
    let cases = [
        (json!({"type": "sms-magic"}), "type"),
        (json!({"type": "twilio", "settings": {}}), "settings.from"),
        (json!({"type": "twilio", "settings": {"from": "+1", "form": 1}}), "settings.form"),
        (json!({"type": "smtp", "channels": ["sms"], "settings": {"host": "h.test", "from": "a@b.test"}}), "channels"),
        (json!({"type": "http", "settings": {"url": "ftp://x.test/", "body_template": "{}"}}), "settings.url"),
        (json!({"type": "twilio", "credential": "nope", "settings": {"from": "+1"}}), "credential"),
        (json!({"type": "console", "priority": -1}), "priority"),
    ];
    for (body, field) in cases {
        let reply = app.put("/v1/providers/p", &app.admin, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field, "{body}");
    }
    assert_eq!(app.get("/v1/providers", &app.admin).await.body["providers"].as_array().unwrap().len(), 1);
    // With the outbound-address rule on, loopback targets are refused.
    let strict = spawn_app_with(false).await;
    for (body, field) in [
        (json!({"type": "http", "settings": {"url": "http://127.0.0.1:9/x", "body_template": "{}"}}), "settings.url"),
        (json!({"type": "twilio", "settings": {"from": "+1", "base_url": "http://localhost:9"}}), "settings.base_url"),
        (json!({"type": "smtp", "settings": {"host": "127.0.0.1", "from": "a@b.test"}}), "settings.host"),
    ] {
        let reply = strict.put("/v1/providers/p", &strict.admin, body).await;
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
    }
}

#[tokio::test]
async fn telesign_carries_sms_and_voice_in_its_wire_format() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    app.put(
        "/v1/credentials/ts",
        &app.admin,
        json!({"type": "basic", "username": TELESIGN_CUSTOMER, "password": TELESIGN_KEY}),
    )
    .await;
    let reply = app
        .put(
            "/v1/providers/telesign",
            &app.admin,
            json!({"type": "telesign", "priority": 5, "credential": "ts", "settings": {"base_url": fake.base}}),
        )
        .await;
    assert_eq!(reply.body["channels"], json!(["sms", "voice"]));
    app.delete("/v1/providers/console", &app.admin).await;
    assert_eq!(start(&app, MOBILE, "sms").await.status, StatusCode::CREATED);
    let sms = &fake.wait_for("telesign_sms", 1).await[0];
    assert_eq!(sms.form["phone_number"], "447400123456");
    assert_eq!(sms.form["message_type"], "OTP");
    let code = code_in(&sms.form["message"], 6);
    let check = app.post("/v1/verifications/check", &app.admin, json!({"to": MOBILE, "code": code})).await;
    assert_eq!(check.body["valid"], true);
    app.post("/v1/verifications", &app.admin, json!({"to": LANDLINE, "channel": "voice", "locale": "de"})).await;
    let voice = &fake.wait_for("telesign_voice", 1).await[0];
    assert_eq!((voice.form["phone_number"].as_str(), voice.form["voice"].as_str()), ("442079460018", "f-de-DE"));
    assert!(voice.form["message"].starts_with("Ihr vouchsafe-Bestätigungscode lautet "), "{}", voice.form["message"]);
}

#[tokio::test]
async fn the_http_provider_fills_its_template_and_authenticates() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    bearer_credential(&app).await;
    http_provider(&app, &fake, "gateway", 5, 2_000).await;
    app.delete("/v1/providers/console", &app.admin).await;
    assert_eq!(start(&app, MOBILE, "sms").await.status, StatusCode::CREATED);
    let seen = &fake.wait_for("http/gateway", 1).await[0];
    assert_eq!(seen.authorization.as_deref(), Some("Bearer hook-token-secret"));
    assert_eq!(seen.headers["x-tenant-tag"], "acme");
    assert_eq!((seen.json["to"].as_str(), seen.json["channel"].as_str()), (Some(MOBILE), Some("sms")));
    let code = seen.json["code"].as_str().unwrap();
    assert_eq!(seen.json["text"], format!("Your vouchsafe verification code is: {code}"));
}

/// Sends keep a tenant's providers in memory by version: a credential
/// rotated or a provider changed, through this node or another, is used by
/// the very next send on every node (a start, a delivery of a code the
/// CRM made, a caller verification's message).
#[tokio::test]
async fn the_next_send_on_any_node_uses_a_rotated_credential_and_a_changed_provider() {
    let app = spawn_app().await;
    let second = spawn_second_node(&app).await;
    let fake = FakeProviders::start().await;
    bearer_credential(&app).await;
    http_provider(&app, &fake, "gateway", 5, 2_000).await;
    app.delete("/v1/providers/console", &app.admin).await;
    let start_on = async |base: &str, to: &str| {
        let reply = app
            .client
            .post(format!("{base}/v1/verifications"))
            .bearer_auth(&app.admin)
            .json(&json!({"to": to, "channel": "sms"}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::CREATED);
    };
    let authorization = |seen: &[crate::fake_providers::Seen]| seen.last().unwrap().authorization.clone().unwrap();
    // Both nodes send once, so both keep the providers.
    start_on(&app.base, "+447400123401").await;
    start_on(&second, "+447400123402").await;
    assert_eq!(authorization(&fake.wait_for("http/gateway", 2).await), "Bearer hook-token-secret");

    let rotated =
        app.put("/v1/credentials/hook", &app.admin, json!({"type": "bearer", "token": "hook-token-new"})).await;
    assert_eq!(rotated.status, StatusCode::OK);
    start_on(&second, "+447400123403").await;
    assert_eq!(authorization(&fake.wait_for("http/gateway", 3).await), "Bearer hook-token-new", "the other node");
    start_on(&app.base, "+447400123404").await;
    assert_eq!(authorization(&fake.wait_for("http/gateway", 4).await), "Bearer hook-token-new", "this node");

    // Another provider ahead of it: the other node tries it first.
    http_provider(&app, &fake, "ahead", 1, 2_000).await;
    start_on(&second, "+447400123405").await;
    assert_eq!(fake.wait_for("http/ahead", 1).await.len(), 1);
    let delivery = app
        .post("/v1/deliveries", &app.admin, json!({"to": "+447400123406", "channel": "sms", "code": "482913"}))
        .await;
    assert_eq!(
        (delivery.body["provider"].as_str(), delivery.body["result"].as_str()),
        (Some("ahead"), Some("SUCCESS"))
    );
    assert_eq!(app.delete("/v1/providers/ahead", &app.admin).await.status, StatusCode::NO_CONTENT);
    start_on(&second, "+447400123407").await;
    assert_eq!(fake.wait_for("http/gateway", 5).await.len(), 5, "a deleted provider is no longer tried");
    assert_eq!(fake.seen_of("http/ahead").len(), 2);

    // A caller verification's message, too, on the node that did not rotate.
    let rotated =
        app.put("/v1/credentials/hook", &app.admin, json!({"type": "bearer", "token": "hook-token-third"})).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let caller = app
        .client
        .post(format!("{second}/v1/caller-verifications"))
        .bearer_auth(&app.admin)
        .json(&json!({"record_id": "500xx01", "phone": "+447400123408"}))
        .send()
        .await
        .unwrap();
    assert_eq!(caller.status(), StatusCode::CREATED);
    assert_eq!(authorization(&fake.wait_for("http/gateway", 6).await), "Bearer hook-token-third", "a caller's message");
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server_as_plain_text_and_html() {
    let app = spawn_app().await;
    let sink = SmtpSink::start(Some(("mailer", "smtp-password")));
    app.put(
        "/v1/credentials/smtp",
        &app.admin,
        json!({"type": "basic", "username": "mailer", "password": "smtp-password"}),
    )
    .await;
    let reply = app
        .put(
            "/v1/providers/mail",
            &app.admin,
            json!({"type": "smtp", "priority": 5, "credential": "smtp",
        "settings": {"host": "127.0.0.1", "port": sink.port, "tls": "none", "from": "Acme <codes@acme.test>"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["channels"], json!(["email"]));
    app.delete("/v1/providers/console", &app.admin).await;
    let started = start(&app, "Jane.Doe@Example.COM", "email").await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    assert_eq!(started.body["to"], "Jane.Doe@example.com");
    let mail = &sink.wait_for(1).await[0];
    assert_eq!(mail["rcpt_tos"], json!(["Jane.Doe@example.com"]));
    assert_eq!(mail["mail_from"], "codes@acme.test");
    assert_eq!(mail["auth_user"], "mailer");
    let data = mail["data"].as_str().unwrap();
    assert!(data.contains("Subject: Your vouchsafe verification code"), "{data}");
    let message_id = data.lines().find_map(|l| l.strip_prefix("Message-ID: ")).expect("a Message-ID header");
    assert!(message_id.starts_with('<') && message_id.ends_with("@acme.test>"), "{message_id}");
    assert!(
        data.contains("multipart/alternative") && data.contains("text/plain") && data.contains("text/html"),
        "{data}"
    );
    let code = code_in(data.split("code is: ").nth(1).unwrap(), 6);
    // Issue 16, item 7: the same address in another case is the same
    // destination: inside the cooldown, no second verification and no mail.
    let shouted = start(&app, "JANE.DOE@EXAMPLE.COM", "email").await;
    assert_eq!(shouted.status, StatusCode::TOO_MANY_REQUESTS, "{}", shouted.text);
    assert!(shouted.headers.get("retry-after").is_some());
    assert_eq!(sink.received().len(), 1, "no second mail inside the cooldown");
    let check =
        app.post("/v1/verifications/check", &app.admin, json!({"to": "jane.doe@EXAMPLE.com", "code": code})).await;
    assert_eq!(check.body["valid"], true, "any case finds the verification: {}", check.text);
    assert_eq!(check.body["sid"], started.body["sid"]);
}

#[tokio::test]
async fn a_failing_or_hanging_provider_fails_over_to_the_next() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    bearer_credential(&app).await;
    http_provider(&app, &fake, "primary", 1, 300).await;
    fake.set_mode("http/primary", Mode::Fail(500));
    assert_eq!(start(&app, MOBILE, "sms").await.status, StatusCode::CREATED);
    assert_eq!(fake.seen_of("http/primary").len(), 1);
    assert_eq!(fake.wait_for("twilio_sms", 1).await.len(), 1, "the next provider sent it");
    fake.set_mode("http/primary", Mode::Hang);
    let started = std::time::Instant::now();
    assert_eq!(start(&app, "+4915123456789", "sms").await.status, StatusCode::CREATED);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the hang was cut off by the provider timeout");
    assert_eq!(fake.wait_for("twilio_sms", 2).await.len(), 2);
}

#[tokio::test]
async fn a_provider_that_keeps_failing_is_skipped_until_it_recovers() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    bearer_credential(&app).await;
    http_provider(&app, &fake, "primary", 1, 2_000).await;
    fake.set_mode("http/primary", Mode::Fail(503));
    let numbers = ["+447400123401", "+447400123402", "+447400123403", "+447400123404", "+447400123405"];
    let opened = "vouchsafe_provider_circuit_opened_total{provider_type=\"http\"}";
    let failed = "vouchsafe_provider_sends_total{channel=\"sms\",provider_type=\"http\",outcome=\"failed\"}";
    let before = app.metrics().await;
    for to in &numbers[..3] {
        assert_eq!(start(&app, to, "sms").await.status, StatusCode::CREATED);
    }
    assert_eq!(fake.seen_of("http/primary").len(), 3);
    let metrics = app.metrics().await;
    assert!(metric(&metrics, opened) - metric(&before, opened) >= 1.0, "the breaker opened: {metrics}");
    assert!(metric(&metrics, failed) - metric(&before, failed) >= 3.0, "three failed sends: {metrics}");
    assert!(!metrics.contains("primary"), "a tenant's provider name is no label: {metrics}");
    // Open: the fourth send does not wait on the primary at all.
    assert_eq!(start(&app, numbers[3], "sms").await.status, StatusCode::CREATED);
    assert_eq!(fake.seen_of("http/primary").len(), 3);
    assert_eq!(fake.seen_of("twilio_sms").len(), 4);
    // After a while it gets a trial send; it has recovered, so it is used again.
    fake.set_mode("http/primary", Mode::Accept);
    app.clock.advance(Duration::seconds(31));
    assert_eq!(start(&app, numbers[4], "sms").await.status, StatusCode::CREATED);
    assert_eq!(fake.seen_of("http/primary").len(), 4);
    assert_eq!(fake.seen_of("twilio_sms").len(), 4);
}

#[tokio::test]
async fn when_every_provider_fails_the_start_says_so_and_may_be_retried_at_once() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    fake.set_mode("twilio_sms", Mode::Fail(500));
    let failed = start(&app, MOBILE, "sms").await;
    assert_eq!((failed.status, failed.code()), (StatusCode::BAD_GATEWAY, "provider_unavailable"));
    let events = app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'delivery.failed'").await;
    assert_eq!(events, 1);
    fake.set_mode("twilio_sms", Mode::Accept);
    let retried = start(&app, MOBILE, "sms").await;
    assert_eq!(retried.status, StatusCode::CREATED, "no cooldown after a send nobody got: {}", retried.text);
    assert_eq!(retried.body["send_count"], 2, "but the failed send still counts");
}

#[tokio::test]
async fn the_twilio_credential_must_be_right() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    app.put(
        "/v1/credentials/twilio",
        &app.admin,
        json!({"type": "basic", "username": TWILIO_SID, "password": "wrong"}),
    )
    .await;
    let failed = start(&app, MOBILE, "sms").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
    let _ = TWILIO_TOKEN;
}

#[tokio::test]
async fn required_tls_is_never_downgraded_to_plain_text() {
    let app = spawn_app().await;
    let sink = SmtpSink::start(None);
    let reply = app.put("/v1/providers/mail", &app.admin, json!({"type": "smtp", "priority": 5,
        "settings": {"host": "127.0.0.1", "port": sink.port, "tls": "starttls", "from": "codes@acme.test", "timeout_ms": 3000}})).await;
    assert_eq!(reply.status, StatusCode::OK);
    app.delete("/v1/providers/console", &app.admin).await;
    // The sink offers no STARTTLS: the send fails rather than going out in clear.
    let failed = start(&app, "jane@example.com", "email").await;
    assert_eq!((failed.status, failed.code()), (StatusCode::BAD_GATEWAY, "provider_unavailable"));
}

/// A provider whose credential does not open (here its row holds another
/// credential's sealed bytes, which are bound to that other name) is
/// passed over without failing the send, and is named with the reason
/// when no provider takes the message.
#[tokio::test]
async fn a_provider_whose_credential_does_not_open_is_passed_over_and_named() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    bearer_credential(&app).await;
    let put = app.put("/v1/credentials/broken", &app.admin, json!({"type": "bearer", "token": "other-token"})).await;
    assert_eq!(put.status, StatusCode::OK);
    let swapped = app
        .execute_sql(
            "UPDATE credentials SET sealed = (SELECT c.sealed FROM credentials c WHERE c.name = 'hook') \
             WHERE name = 'broken'",
        )
        .await;
    assert_eq!(swapped, 1);
    let first = json!({"type": "http", "priority": 1, "credential": "broken",
        "settings": {"url": format!("{}/http/first", fake.base), "body_template": "{\"text\":\"{message}\"}"}});
    let put = app.put("/v1/providers/first", &app.admin, first).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    http_provider(&app, &fake, "second", 2, 2_000).await;
    app.delete("/v1/providers/console", &app.admin).await;

    let reply = app.post("/v1/deliveries", &app.admin, json!({"to": MOBILE, "channel": "sms", "code": "1111"})).await;
    assert_eq!((reply.body["result"].as_str(), reply.body["provider"].as_str()), (Some("SUCCESS"), Some("second")));
    assert!(fake.seen_of("http/first").is_empty(), "nothing went out without its credential");
    assert_eq!(fake.seen_of("http/second").len(), 1);

    fake.set_mode("http/second", Mode::Fail(500));
    let failed = app.post("/v1/deliveries", &app.admin, json!({"to": MOBILE, "channel": "sms", "code": "2222"})).await;
    assert_eq!(failed.body["result"], "PROVIDER_ERROR");
    assert_eq!(
        failed.body["error"],
        "first: credential broken: the credential does not open with this master key; \
         second: the provider answered 500"
    );
    assert!(!failed.text.contains("other-token") && !failed.text.contains("hook-token-secret"));
}

/// Issue 16, item 16: a provider's answer is read only up to a few KiB.
/// A loopback "provider" answers 200 and then streams a 2 GB body; the
/// send ends, and the fake could write only what the sockets buffer.
#[tokio::test]
async fn a_provider_answer_is_read_only_up_to_a_limit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut request).await;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2000000000\r\n\r\n{\"id\":\"";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'a'; 64 * 1024];
                while socket.write_all(&chunk).await.is_ok() {
                    if counter.fetch_add(chunk.len() as u64, Ordering::SeqCst) > 2_000_000_000 {
                        return;
                    }
                }
            });
        }
    });
    let provider = json!({"type": "http", "channels": ["sms"], "priority": 1,
        "settings": {"url": format!("http://127.0.0.1:{port}/send"), "body_template": "{\"to\":\"{to}\"}"}});
    assert_eq!(app.put("/v1/providers/big", &app.admin, provider).await.status, StatusCode::OK);
    let sent = start(&app, MOBILE, "sms").await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.text);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let streamed = written.load(Ordering::SeqCst);
    assert!(streamed < 64 * 1024 * 1024, "the server read {streamed} bytes of the answer");
}

/// Every send reads all of its tenant's providers, so a tenant has at most
/// 20 (the console provider among them): a new name beyond that answers
/// 409 and stores nothing, an existing one may still be saved again, and a
/// deleted one frees its place.
#[tokio::test]
async fn a_tenant_at_its_provider_limit_is_refused_with_409() {
    let app = spawn_app().await;
    let console = |priority: i32| json!({"type": "console", "channels": ["sms"], "priority": priority});
    for n in 1..20 {
        let saved = app.put(&format!("/v1/providers/extra-{n}"), &app.admin, console(n)).await;
        assert_eq!(saved.status, StatusCode::OK, "{n}: {}", saved.text);
    }
    let refused = app.put("/v1/providers/one-more", &app.admin, console(50)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "conflict");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM providers").await, 20, "nothing stored");
    assert_eq!(app.put("/v1/providers/extra-1", &app.admin, console(2)).await.status, StatusCode::OK);
    assert_eq!(app.delete("/v1/providers/extra-1", &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.put("/v1/providers/one-more", &app.admin, console(50)).await.status, StatusCode::OK);
}

/// Credentials are listed whole, so a tenant has at most 50: a new name
/// beyond that answers 409 and stores nothing, a rotation of one it has
/// still saves, and a deleted one frees its place.
#[tokio::test]
async fn a_tenant_at_its_credential_limit_is_refused_with_409() {
    let app = spawn_app().await;
    let limit = vouchsafe_core::provider::CREDENTIALS_PER_TENANT;
    let token = |t: &str| json!({"type": "bearer", "token": t});
    for n in 0..limit {
        let saved = app.put(&format!("/v1/credentials/cred-{n}"), &app.admin, token("t")).await;
        assert_eq!(saved.status, StatusCode::OK, "{n}: {}", saved.text);
    }
    let refused = app.put("/v1/credentials/one-more", &app.admin, token("t")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "conflict");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM credentials").await, i64::from(limit), "nothing stored");
    assert_eq!(app.put("/v1/credentials/cred-0", &app.admin, token("rotated")).await.status, StatusCode::OK);
    assert_eq!(app.delete("/v1/credentials/cred-0", &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.put("/v1/credentials/one-more", &app.admin, token("t")).await.status, StatusCode::OK);
}
