//! The Twilio-compatible surface driven by the official `twilio` Python
//! SDK with its Verify domain pointed at the test server: what a team on
//! Twilio Verify changes is the host, nothing else.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use crate::fake_providers::{FakeProviders, code_in};
use crate::helpers::{TestApp, spawn_app, wrong};
use crate::twilio_driver::TwilioSdk;
use crate::verifications::{LANDLINE, MOBILE, use_twilio};

async fn sdk(app: &TestApp) -> TwilioSdk {
    TwilioSdk::start(&app.base, app.tenant.account_sid.as_str(), &app.admin)
}

fn error_code(e: &Value) -> (u64, u64) {
    (e["status"].as_u64().unwrap(), e["code"].as_u64().unwrap())
}

#[tokio::test]
async fn the_sdk_runs_the_whole_flow() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let mut twilio = sdk(&app).await;

    let service =
        twilio.run(json!({"op": "service_create", "friendly_name": "Acme Login", "code_length": 8})).await.unwrap();
    let sid = service["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("VA") && sid.len() == 34);
    assert_eq!(service["account_sid"], app.tenant.account_sid.as_str());
    assert_eq!((service["friendly_name"].as_str(), service["code_length"].as_u64()), (Some("Acme Login"), Some(8)));
    assert_eq!(service["url"], format!("{}/v2/Services/{sid}", app.base));
    assert!(service["date_created"].as_str().unwrap().starts_with("20"), "the SDK parsed the date: {service}");

    let v = twilio
        .run(json!({"op": "verification_create", "service": sid, "to": "+44 7400 123456", "channel": "sms"}))
        .await
        .unwrap();
    let vsid = v["sid"].as_str().unwrap().to_owned();
    assert!(vsid.starts_with("VE") && vsid.len() == 34);
    assert_eq!(
        (v["status"].as_str(), v["to"].as_str(), v["channel"].as_str()),
        (Some("pending"), Some(MOBILE), Some("sms"))
    );
    assert_eq!(v["valid"], false);
    assert_eq!(v["send_code_attempts"].as_array().unwrap().len(), 1);
    assert!(v["send_code_attempts"][0]["attempt_sid"].as_str().unwrap().starts_with("VL"));
    let body = &fake.wait_for("twilio_sms", 1).await[0].form["Body"];
    assert!(body.starts_with("Your Acme Login verification code is: "), "{body}");
    let code = code_in(body, 8);

    let miss = twilio.run(json!({"op": "check", "service": sid, "to": MOBILE, "code": wrong(&code)})).await.unwrap();
    assert_eq!((miss["status"].as_str(), miss["valid"].as_bool()), (Some("pending"), Some(false)));
    let fetched = twilio.run(json!({"op": "verification_fetch", "service": sid, "sid": vsid})).await.unwrap();
    assert_eq!(fetched["status"], "pending");
    let hit = twilio.run(json!({"op": "check", "service": sid, "verification_sid": vsid, "code": code})).await.unwrap();
    assert_eq!(
        (hit["status"].as_str(), hit["valid"].as_bool(), hit["sid"].as_str()),
        (Some("approved"), Some(true), Some(vsid.as_str()))
    );
    let again = twilio.run(json!({"op": "check", "service": sid, "to": MOBILE, "code": code})).await.unwrap_err();
    assert_eq!(error_code(&again), (404, 20404), "an approved verification is gone for checks");
    // The same approval shows on the native API and in the event outbox.
    let native = app.get(&format!("/v1/verifications/ver_{}", &vsid[2..]), &app.admin).await;
    assert_eq!(native.body["status"], "approved");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'verification.approved'").await, 1);

    // Cancel.
    let v = twilio
        .run(json!({"op": "verification_create", "service": sid, "to": LANDLINE, "channel": "call"}))
        .await
        .unwrap();
    assert_eq!(v["channel"], "call");
    assert!(fake.wait_for("twilio_call", 1).await[0].form["Twiml"].contains("<Say"));
    let canceled = twilio
        .run(json!({"op": "verification_update", "service": sid, "sid": v["sid"], "status": "canceled"}))
        .await
        .unwrap();
    assert_eq!(canceled["status"], "canceled");
    let after =
        twilio.run(json!({"op": "check", "service": sid, "to": LANDLINE, "code": "12345678"})).await.unwrap_err();
    assert_eq!(error_code(&after), (404, 20404));

    // Services list, fetch, update, delete.
    let list = twilio.run(json!({"op": "service_list", "page_size": 1})).await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "the SDK followed next_page_url: {list}");
    let renamed = twilio.run(json!({"op": "service_update", "sid": sid, "friendly_name": "Acme"})).await.unwrap();
    assert_eq!(renamed["friendly_name"], "Acme");
    assert_eq!(twilio.run(json!({"op": "service_fetch", "sid": sid})).await.unwrap()["friendly_name"], "Acme");
    assert_eq!(twilio.run(json!({"op": "service_delete", "sid": sid})).await.unwrap(), true);
    let gone = twilio.run(json!({"op": "service_fetch", "sid": sid})).await.unwrap_err();
    assert_eq!(error_code(&gone), (404, 20404));
}

#[tokio::test]
async fn limits_and_errors_come_back_with_twilios_codes() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let mut twilio = sdk(&app).await;
    let sid = app.tenant.default_service_id.to_string();
    let create =
        |to: &str, channel: &str| json!({"op": "verification_create", "service": sid, "to": to, "channel": channel});

    // Max check attempts: five wrong codes, then 60202 even for the right one.
    twilio.run(create(MOBILE, "sms")).await.unwrap();
    let code = code_in(&fake.wait_for("twilio_sms", 1).await[0].form["Body"], 6);
    for _ in 0..4 {
        let miss =
            twilio.run(json!({"op": "check", "service": sid, "to": MOBILE, "code": wrong(&code)})).await.unwrap();
        assert_eq!(miss["status"], "pending");
    }
    let last = twilio.run(json!({"op": "check", "service": sid, "to": MOBILE, "code": wrong(&code)})).await.unwrap();
    assert_eq!((last["status"].as_str(), last["valid"].as_bool()), (Some("max_attempts_reached"), Some(false)));
    let blocked = twilio.run(json!({"op": "check", "service": sid, "to": MOBILE, "code": code})).await.unwrap_err();
    assert_eq!(error_code(&blocked), (429, 60202));

    // Max sends: 60203.
    app.patch("/v1/settings", &app.admin, json!({"otp": {"max_sends": 2, "resend_cooldown_s": 0}})).await;
    let other = "+4915123456789";
    twilio.run(create(other, "sms")).await.unwrap();
    twilio.run(create(other, "sms")).await.unwrap();
    assert_eq!(error_code(&twilio.run(create(other, "sms")).await.unwrap_err()), (429, 60203));

    // Bad parameters: 60200; SMS to a landline: 60205; geo: 60605.
    assert_eq!(error_code(&twilio.run(create("12345", "sms")).await.unwrap_err()), (400, 60200));
    assert_eq!(error_code(&twilio.run(create(MOBILE, "pigeon")).await.unwrap_err()), (400, 60200));
    assert_eq!(error_code(&twilio.run(create(LANDLINE, "sms")).await.unwrap_err()), (400, 60205));
    app.patch("/v1/settings", &app.admin, json!({"geo": {"allowed_countries": ["US"]}})).await;
    assert_eq!(error_code(&twilio.run(create("+447400123499", "sms")).await.unwrap_err()), (403, 60605));

    // Expired: 20404.
    app.patch("/v1/settings", &app.admin, json!({"geo": {"allowed_countries": ["*"]}})).await;
    twilio.run(create("+447400123498", "sms")).await.unwrap();
    app.clock.advance(Duration::seconds(601));
    let late =
        twilio.run(json!({"op": "check", "service": sid, "to": "+447400123498", "code": "123456"})).await.unwrap_err();
    assert_eq!(error_code(&late), (404, 20404));
    // Unknown service: 20404.
    let missing = json!({"op": "verification_create", "service": "VA00000000000000000000000000000000", "to": MOBILE, "channel": "sms"});
    assert_eq!(error_code(&twilio.run(missing).await.unwrap_err()), (404, 20404));
}

#[tokio::test]
async fn basic_auth_needs_the_tenants_account_sid_and_a_key_of_it() {
    let app = spawn_app().await;
    let (other, other_secret, _) = app.new_tenant("other", vouchsafe_core::role::Role::Admin).await;
    let call = |user: String, secret: String| {
        let client = app.client.clone();
        let url = app.url("/v2/Services");
        async move { client.get(url).basic_auth(user, Some(secret)).send().await.unwrap() }
    };
    let ok = call(app.tenant.account_sid.as_str().to_owned(), app.admin.clone()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["meta"]["key"], "services");
    // Another tenant's key with this tenant's account SID, and the reverse.
    let crossed = call(app.tenant.account_sid.as_str().to_owned(), other_secret.clone()).await;
    assert_eq!(crossed.status(), StatusCode::UNAUTHORIZED);
    let err: Value = crossed.json().await.unwrap();
    assert_eq!(err["code"], 20003);
    assert_eq!(call(other.account_sid.as_str().to_owned(), app.admin.clone()).await.status(), StatusCode::UNAUTHORIZED);
    // A service of another tenant is not found.
    let theirs = app
        .client
        .get(app.url(&format!("/v2/Services/{}", other.default_service_id)))
        .basic_auth(app.tenant.account_sid.as_str(), Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    // An agent key may verify but not create services.
    let agent = app.key(vouchsafe_core::role::Role::Agent).await;
    let denied = app
        .client
        .post(app.url("/v2/Services"))
        .basic_auth(app.tenant.account_sid.as_str(), Some(&agent))
        .form(&[("FriendlyName", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
}

/// Found by schemathesis: a bad query string got axum's plain-text 400.
#[tokio::test]
async fn a_bad_page_size_is_a_twilio_error_in_json() {
    let app = spawn_app().await;
    let reply = app
        .client
        .get(app.url("/v2/Services?PageSize=-1"))
        .basic_auth(app.tenant.account_sid.as_str(), Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let err: Value = reply.json().await.unwrap();
    assert_eq!(err["code"], 60200, "{err}");
}

#[tokio::test]
async fn the_node_sdk_runs_the_flow_too() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let mut twilio = TwilioSdk::node(&app.base, app.tenant.account_sid.as_str(), &app.admin);
    let service = twilio.run(json!({"op": "service_create", "friendly_name": "Acme Node"})).await.unwrap();
    let sid = service["sid"].as_str().unwrap().to_owned();
    assert_eq!(service["code_length"], 6);
    let v = twilio
        .run(json!({"op": "verification_create", "service": sid, "to": MOBILE, "channel": "sms", "locale": "fr"}))
        .await
        .unwrap();
    assert_eq!((v["status"].as_str(), v["channel"].as_str()), (Some("pending"), Some("sms")));
    let body = &fake.wait_for("twilio_sms", 1).await[0].form["Body"];
    assert!(body.starts_with("Votre code de vérification Acme Node est : "), "{body}");
    let code = code_in(body, 6);
    let miss = twilio.run(json!({"op": "check", "service": sid, "to": MOBILE, "code": wrong(&code)})).await.unwrap();
    assert_eq!(miss["status"], "pending");
    let hit =
        twilio.run(json!({"op": "check", "service": sid, "verification_sid": v["sid"], "code": code})).await.unwrap();
    assert_eq!((hit["status"].as_str(), hit["valid"].as_bool()), (Some("approved"), Some(true)));
    let again = twilio.run(json!({"op": "check", "service": sid, "to": MOBILE, "code": code})).await.unwrap_err();
    assert_eq!(error_code(&again), (404, 20404));
    let fetched = twilio.run(json!({"op": "verification_fetch", "service": sid, "sid": v["sid"]})).await.unwrap();
    assert_eq!(fetched["status"], "approved");
    assert_eq!(twilio.run(json!({"op": "service_delete", "sid": sid})).await.unwrap(), true);
}

/// `POST /v2/Services/{Sid}` changes the name and code length through the
/// same conditional update as `/v1`, and refuses bad values Twilio's way.
#[tokio::test]
async fn a_service_is_updated_the_twilio_way() {
    let app = spawn_app().await;
    let post = |path: String, form: Vec<(&'static str, &'static str)>| {
        app.client.post(app.url(&path)).basic_auth(app.tenant.account_sid.as_str(), Some(&app.admin)).form(&form).send()
    };
    let created: Value =
        post("/v2/Services".into(), vec![("FriendlyName", "Login")]).await.unwrap().json().await.unwrap();
    let sid = created["sid"].as_str().unwrap().to_owned();
    let changed =
        post(format!("/v2/Services/{sid}"), vec![("FriendlyName", "Sign in"), ("CodeLength", "8")]).await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!((changed["friendly_name"].as_str(), changed["code_length"].as_u64()), (Some("Sign in"), Some(8)));
    let renamed_only: Value =
        post(format!("/v2/Services/{sid}"), vec![("FriendlyName", "Login")]).await.unwrap().json().await.unwrap();
    assert_eq!(renamed_only["code_length"], 8, "a rename keeps the code length");
    let v1 = app.get(&format!("/v1/services/{sid}"), &app.admin).await;
    assert_eq!((v1.body["name"].as_str(), v1.body["code_length"].as_u64()), (Some("Login"), Some(8)));
    let bad = post(format!("/v2/Services/{sid}"), vec![("CodeLength", "99")]).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["code"], 60200);
}
