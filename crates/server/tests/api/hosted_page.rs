//! The hosted challenge page and passkeys, in headless Chromium driven by
//! Playwright: a passkey registered and used with Chrome's virtual
//! authenticator, the code form without JavaScript, and the page's
//! defences (CSP, CSRF, no open redirect) over plain HTTP.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use crate::browser::Browser;
use crate::helpers::{TestApp, pyotp, spawn_app_at_localhost};

fn public(app: &TestApp) -> String {
    app.config.public_url.clone().unwrap()
}

fn token_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_passkey_registers_and_signs_a_privileged_user_in_on_the_hosted_page() {
    let app = spawn_app_at_localhost().await;
    let base = public(&app);
    app.put("/v1/users/root", &app.admin, json!({"display_name": "Root Admin", "privileged": true})).await;
    let refused = app.post("/v1/users/root/challenges", &app.admin, json!({})).await;
    assert_eq!(refused.code(), "phishing_resistant_factor_required");
    let enrolled = app.post("/v1/users/root/authenticators", &app.admin, json!({"type": "passkey"})).await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.text);
    assert_eq!(enrolled.body["status"], "unconfirmed");
    let options = enrolled.body["options"].clone();
    assert_eq!(options["rp"]["id"], "localhost");
    let auth_id = enrolled.body["id"].as_str().unwrap().to_owned();

    let mut browser = Browser::start(true).await;
    browser.run(json!({"op": "goto", "url": format!("{base}/healthz")})).await;
    let credential = browser.run(json!({"op": "create_passkey", "options": options})).await;
    assert_eq!(credential["type"], "public-key");
    let confirm_path = format!("/v1/users/root/authenticators/{auth_id}/confirm");
    let bogus = app
        .post(
            &confirm_path,
            &app.admin,
            json!({"credential": {"id": "x", "rawId": "eA", "type": "public-key", "response": {}}}),
        )
        .await;
    assert_eq!((bogus.status, bogus.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("credential")));
    let confirmed = app.post(&confirm_path, &app.admin, json!({"credential": credential})).await;
    assert_eq!(confirmed.body["status"], "active", "{}", confirmed.text);

    let redirect = format!("{base}/healthz?from=login");
    let c = app.post("/v1/users/root/challenges", &app.admin, json!({"redirect_url": redirect})).await;
    assert_eq!(c.body["factor"], "passkey", "{}", c.text);
    assert!(c.body["options"]["challenge"].is_string());
    let page = browser.run(json!({"op": "goto", "url": c.body["url"]})).await;
    assert_eq!(page["status"], 200);
    let seen = browser.run(json!({"op": "inspect"})).await;
    assert_eq!(seen["passkey_button"], "Use your passkey");
    let done = browser.run(json!({"op": "click_passkey"})).await;
    let landed = done["url"].as_str().unwrap();
    assert!(landed.starts_with(&format!("{base}/healthz?from=login&token=vct_")), "{done}");
    let valid = app.post("/v1/challenges/validate", &app.admin, json!({"token": token_of(landed)})).await;
    assert_eq!((valid.body["valid"].as_bool(), valid.body["factor"].as_str()), (Some(true), Some("passkey")));
    assert_eq!(valid.body["user_id"], "root");

    // The same ceremony cannot be answered again, and a second sign-in works.
    let c2 = app.post("/v1/users/root/challenges", &app.admin, json!({"redirect_url": redirect})).await;
    browser.run(json!({"op": "goto", "url": c2.body["url"]})).await;
    let again = browser.run(json!({"op": "click_passkey"})).await;
    assert!(again["url"].as_str().unwrap().contains("token=vct_"), "{again}");
    let listed = app.get("/v1/users/root/authenticators", &app.admin).await;
    assert_eq!(listed.body["authenticators"][0]["type"], "passkey");
    assert!(
        listed.body["authenticators"][0]["last_used_at"].is_string()
            || listed.body["authenticators"][0]["status"] == "active"
    );
    assert_eq!(
        app.delete(&format!("/v1/users/root/authenticators/{auth_id}"), &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn the_code_form_works_without_javascript_and_is_accessible() {
    let app = spawn_app_at_localhost().await;
    let base = public(&app);
    app.patch(
        "/v1/settings",
        &app.admin,
        json!({"branding": {"name": "Acme Bank", "message": "We will never ask for this code by phone."}}),
    )
    .await;
    app.put("/v1/users/u1", &app.admin, json!({"display_name": "Jane"})).await;
    let enrolled = app.post("/v1/users/u1/authenticators", &app.admin, json!({"type": "totp"})).await;
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    let id = enrolled.body["id"].as_str().unwrap();
    let now = || {
        use vouchsafe_core::clock::Clock;
        app.clock.now().unix_timestamp()
    };
    app.post(&format!("/v1/users/u1/authenticators/{id}/confirm"), &app.admin, json!({"code": pyotp(&secret, now())}))
        .await;
    app.clock.advance(Duration::seconds(30));
    let redirect = format!("{base}/healthz");
    let c = app.post("/v1/users/u1/challenges", &app.admin, json!({"redirect_url": redirect})).await;

    let mut browser = Browser::start(false).await;
    let page = browser.run(json!({"op": "goto", "url": c.body["url"]})).await;
    assert_eq!(page["status"], 200);
    let csp = page["headers"]["content-security-policy"].as_str().unwrap();
    for part in
        ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self' http://localhost"]
    {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(page["headers"]["cache-control"], "no-store");
    let seen = browser.run(json!({"op": "inspect"})).await;
    assert_eq!(seen["brand"], "Acme Bank");
    assert_eq!(seen["label"], "Verification code");
    assert_eq!(seen["focused"], "code", "the code box has the focus");
    assert_eq!(seen["described_by"], "help error");

    let wrong = browser.run(json!({"op": "submit_code", "code": "000000"})).await;
    assert_eq!(wrong["status"], 422);
    assert_eq!(wrong["error"], "That code is not right. 4 attempts left.");
    let right = browser.run(json!({"op": "submit_code", "code": pyotp(&secret, now())})).await;
    let landed = right["url"].as_str().unwrap();
    assert!(landed.starts_with(&format!("{redirect}?token=vct_")), "{right}");
    let valid = app.post("/v1/challenges/validate", &app.admin, json!({"token": token_of(landed)})).await;
    assert_eq!(valid.body["valid"], true);
    // Back on the page, the challenge is done.
    browser.run(json!({"op": "goto", "url": c.body["url"]})).await;
    assert_eq!(browser.run(json!({"op": "inspect"})).await["heading"], "You're verified");
}

#[tokio::test]
async fn posts_need_the_csrf_token_and_never_redirect_elsewhere() {
    let app = spawn_app_at_localhost().await;
    app.put("/v1/users/u2", &app.admin, json!({"email": "u2@example.com"})).await;
    let c =
        app.post("/v1/users/u2/challenges", &app.admin, json!({"redirect_url": "https://app.example.com/back"})).await;
    let id = c.body["id"].as_str().unwrap().to_owned();
    let url = app.url(&format!("/challenge/{id}"));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(&url).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let cookie_pair = cookie.split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    // Without the cookie, or with another token: refused, nothing counted.
    let no_cookie = client.post(&url).form(&[("csrf", csrf.as_str()), ("code", "123456")]).send().await.unwrap();
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    let forged = client
        .post(&url)
        .header("cookie", &cookie_pair)
        .form(&[("csrf", "0".repeat(64).as_str()), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let fetched: Value = app.get(&format!("/v1/challenges/{id}"), &app.admin).await.body;
    assert_eq!(fetched["attempts_remaining"], 5);
    // A redirect target smuggled into the request is ignored.
    let wrong = client
        .post(format!("{url}?redirect_url=https://evil.example/steal"))
        .header("cookie", &cookie_pair)
        .form(&[("csrf", csrf.as_str()), ("code", "123456"), ("redirect_url", "https://evil.example/steal")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.headers().get("location").is_none());
    // Unknown challenges are a plain 404 page.
    let missing = client.get(app.url("/challenge/chl_00000000000000000000000000000000")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let script = client.get(app.url("/assets/challenge.js")).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");

    // Issue 16, item 13: the passkey post answers errors in the API's shape.
    let passkey = format!("{url}/passkey");
    let error_of = |status: u16, body: &Value, code: &str| {
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["status"], status, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    };
    let unknown = client
        .post(app.url("/challenge/chl_00000000000000000000000000000000/passkey"))
        .json(&json!({"credential": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    error_of(404, &unknown.json().await.unwrap(), "not_found");
    let no_csrf = client.post(&passkey).json(&json!({"credential": {}})).send().await.unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    error_of(403, &no_csrf.json().await.unwrap(), "forbidden");
    let not_json = client
        .post(&passkey)
        .header("cookie", &cookie_pair)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    error_of(400, &not_json.json().await.unwrap(), "invalid_request");
    let no_credential =
        client.post(&passkey).header("cookie", &cookie_pair).header("x-csrf-token", &csrf).json(&json!({})).send();
    let no_credential = no_credential.await.unwrap();
    assert_eq!(no_credential.status(), StatusCode::BAD_REQUEST);
    error_of(400, &no_credential.json().await.unwrap(), "invalid_request");
}

#[tokio::test]
async fn a_passkey_customer_approves_a_caller_verification_with_the_passkey() {
    let app = spawn_app_at_localhost().await;
    let fake = crate::fake_providers::FakeProviders::start().await;
    crate::verifications::use_twilio(&app, &fake).await;
    let base = public(&app);
    app.put("/v1/users/cust", &app.admin, json!({"phone": crate::verifications::MOBILE})).await;
    let mut browser = Browser::start(true).await;
    browser.run(json!({"op": "goto", "url": format!("{base}/healthz")})).await;
    // Issue 16, item 20: a registration left past its ceremony's 300 s
    // timeout cannot be confirmed, even with a credential that verifies.
    let late = app.post("/v1/users/cust/authenticators", &app.admin, json!({"type": "passkey"})).await;
    let late_id = late.body["id"].as_str().unwrap().to_owned();
    let late_credential = browser.run(json!({"op": "create_passkey", "options": late.body["options"]})).await;
    app.clock.advance(time::Duration::seconds(301));
    let refused = app
        .post(
            &format!("/v1/users/cust/authenticators/{late_id}/confirm"),
            &app.admin,
            json!({"credential": late_credential}),
        )
        .await;
    assert_ne!(refused.body["status"], "active", "{}", refused.text);
    app.delete(&format!("/v1/users/cust/authenticators/{late_id}"), &app.admin).await;
    let enrolled = app.post("/v1/users/cust/authenticators", &app.admin, json!({"type": "passkey"})).await;
    let auth_id = enrolled.body["id"].as_str().unwrap().to_owned();
    let credential = browser.run(json!({"op": "create_passkey", "options": enrolled.body["options"]})).await;
    let confirmed = app
        .post(
            &format!("/v1/users/cust/authenticators/{auth_id}/confirm"),
            &app.admin,
            json!({"credential": credential}),
        )
        .await;
    assert_eq!(confirmed.body["status"], "active");

    let started = app
        .post(
            "/v1/caller-verifications",
            &app.admin,
            json!({"record_id": "500xx10", "phone": crate::verifications::MOBILE, "user_id": "cust"}),
        )
        .await;
    let id = started.body["id"].as_str().unwrap().to_owned();
    let body = fake.wait_for("twilio_sms", 1).await[0].form["Body"].clone();
    let link = body.split_whitespace().find(|w| w.contains("/caller/")).unwrap().to_owned();
    assert!(link.starts_with(&base), "{link}");

    // Without the passkey, approving is refused (fail closed).
    let client = reqwest::Client::new();
    let page = client.get(&link).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains("Yes, approve with my passkey"));
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let refused = client
        .post(&link)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.get(&format!("/v1/caller-verifications/{id}"), &app.admin).await.body["status"], "pending");
    // Issue 16, item 21: more visits reuse the one passkey challenge.
    for _ in 0..5 {
        assert!(client.get(&link).send().await.unwrap().status().is_success());
    }
    let challenges = app.count_rows("SELECT COUNT(*) FROM challenges WHERE user_id = 'cust'").await;
    assert_eq!(challenges, 1, "one passkey challenge per caller verification");

    browser.run(json!({"op": "goto", "url": link})).await;
    browser.run(json!({"op": "click", "selector": "#use-passkey"})).await;
    let done = browser
        .run(json!({"op": "wait_for_text", "selector": "h2", "text": "you're verified", "timeout_ms": 15000}))
        .await;
    assert!(done["text"].as_str().unwrap().contains("you're verified"), "{done}");
    assert_eq!(app.get(&format!("/v1/caller-verifications/{id}"), &app.admin).await.body["status"], "verified");
}
