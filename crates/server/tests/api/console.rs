//! The help-desk console in headless Chromium: an agent signs in with an
//! agent key, clicks Authenticate, a second browser (the customer) opens
//! the link and approves, and the agent's page turns to verified without
//! a reload, with the record's transaction log below.

use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::fake_providers::FakeProviders;
use crate::helpers::spawn_app;
use crate::verifications::{MOBILE, use_twilio};

#[tokio::test]
async fn an_agent_sees_the_customer_approve_live() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    let agent_key = app.key(vouchsafe_core::role::Role::Agent).await;

    let mut agent = Browser::start(true).await;
    let page = agent.run(json!({"op": "goto", "url": app.url("/console/helpdesk")})).await;
    assert!(page["headers"]["content-security-policy"].as_str().unwrap().contains("script-src 'self'"));
    agent.run(json!({"op": "fill", "selector": "#key", "value": agent_key})).await;
    let signed_in = agent.run(json!({"op": "click_and_wait", "selector": "button[type=submit]"})).await;
    assert_eq!(signed_in["heading"], "Caller verification", "{signed_in}");

    agent.run(json!({"op": "fill", "selector": "#record_id", "value": "500xx09"})).await;
    agent.run(json!({"op": "fill", "selector": "#contact", "value": MOBILE})).await;
    agent.run(json!({"op": "click", "selector": "#authenticate button[type=submit]"})).await;
    agent.run(json!({"op": "wait_for_text", "selector": "#status", "text": "pending"})).await;
    let countdown = agent.run(json!({"op": "wait_for_text", "selector": "#countdown", "text": "s left"})).await;
    assert!(countdown["text"].as_str().unwrap().ends_with("s left"));

    let body = fake.wait_for("twilio_sms", 1).await[0].form["Body"].clone();
    let link = body.split_whitespace().find(|w| w.contains("/caller/")).unwrap().to_owned();
    let mut customer = Browser::start(false).await;
    customer.run(json!({"op": "goto", "url": link})).await;
    let approved = customer.run(json!({"op": "click_and_wait", "selector": "button[value=approve]"})).await;
    assert_eq!(approved["heading"], "Thank you, you're verified");

    let live =
        agent.run(json!({"op": "wait_for_text", "selector": "#status", "text": "verified", "timeout_ms": 10000})).await;
    assert!(live["url"].as_str().unwrap().ends_with("/console/helpdesk"), "no reload: {live}");
    let log = agent.run(json!({"op": "wait_for_text", "selector": "#transactions", "text": "verified"})).await;
    assert!(log["text"].as_str().unwrap().contains("sms"), "{log}");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'caller_verification.completed'").await, 1);
}

#[tokio::test]
async fn only_agent_keys_sign_in_and_requests_need_the_session_and_its_token() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(app.url("/console/helpdesk")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let webhook = app.key(vouchsafe_core::role::Role::Webhook).await;
    let refused = client
        .post(app.url("/console/login"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("key", webhook.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let agent = app.key(vouchsafe_core::role::Role::Agent).await;
    let ok = client
        .post(app.url("/console/login"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("key", agent.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let session = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    assert!(!session.contains(&agent[4..]), "the key is not in the cookie");
    let session = session.split(';').next().unwrap().to_owned();
    // Without the session's CSRF token, nothing starts.
    let no_token = client
        .post(app.url("/console/helpdesk/verifications"))
        .header("cookie", &session)
        .json(&json!({"record_id": "r1", "phone": MOBILE}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let without_session = client.get(app.url("/console/helpdesk/records/r1")).send().await.unwrap();
    assert_eq!(without_session.status(), StatusCode::UNAUTHORIZED);
    let with_session =
        client.get(app.url("/console/helpdesk/records/r1")).header("cookie", &session).send().await.unwrap();
    assert_eq!(with_session.status(), StatusCode::OK);
    // A forged session is refused.
    let forged = session.replacen("vs_console=", "vs_console=x", 1);
    let refused = client.get(app.url("/console/helpdesk/records/r1")).header("cookie", &forged).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // Issue 16, item 18: signing out ends the session on the server; the
    // old cookie no longer works, and neither does anything it starts.
    let page = client.get(app.url("/console/helpdesk")).header("cookie", &session).send().await.unwrap();
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let out = client
        .post(app.url("/console/logout"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = client.get(app.url("/console/helpdesk/records/r1")).header("cookie", &session).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "the old cookie still works after signing out");
    let start = client
        .post(app.url("/console/helpdesk/verifications"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .json(&json!({"record_id": "r1", "phone": MOBILE}))
        .send()
        .await
        .unwrap();
    assert!(
        start.status() == StatusCode::UNAUTHORIZED || start.status() == StatusCode::FORBIDDEN,
        "{}",
        start.status()
    );
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM caller_verifications").await, 0);
}
