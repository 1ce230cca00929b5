//! Second factor end to end: users, TOTP (codes made by `pyotp`), HOTP
//! (RFC 4226 vectors), YubiKey OTP (Yubico's published vector), recovery
//! codes, the factor policy, code factors through the providers, lockout,
//! denial, and single-use result tokens.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use crate::fake_providers::{FakeProviders, code_in};
use crate::helpers::{Reply, TestApp, pyotp, python, spawn_app, spawn_second_node};
use crate::verifications::{LANDLINE, MOBILE, use_twilio};

fn now(app: &TestApp) -> i64 {
    use vouchsafe_core::clock::Clock;
    app.clock.now().unix_timestamp()
}

async fn user(app: &TestApp, id: &str, body: Value) -> Reply {
    let reply = app.put(&format!("/v1/users/{id}"), &app.admin, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply
}

async fn enroll(app: &TestApp, id: &str, body: Value) -> Reply {
    app.post(&format!("/v1/users/{id}/authenticators"), &app.admin, body).await
}

async fn challenge(app: &TestApp, id: &str, body: Value) -> Reply {
    app.post(&format!("/v1/users/{id}/challenges"), &app.admin, body).await
}

async fn answer(app: &TestApp, challenge: &str, code: &str) -> Reply {
    app.post(&format!("/v1/challenges/{challenge}/verify"), &app.admin, json!({"code": code})).await
}

/// A user with a confirmed TOTP app; its base32 secret.
async fn totp_user(app: &TestApp, id: &str) -> String {
    user(app, id, json!({"display_name": "Jane Doe", "email": "jane@example.com"})).await;
    let enrolled = enroll(app, id, json!({"type": "totp"})).await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.text);
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    let auth = enrolled.body["id"].as_str().unwrap();
    let confirm = app
        .post(
            &format!("/v1/users/{id}/authenticators/{auth}/confirm"),
            &app.admin,
            json!({"code": pyotp(&secret, now(app))}),
        )
        .await;
    assert_eq!(confirm.body["status"], "active", "{}", confirm.text);
    secret
}

#[tokio::test]
async fn totp_enrollment_login_and_a_single_use_token() {
    let app = spawn_app().await;
    user(&app, "005xx01", json!({"display_name": "Jane Doe"})).await;
    let enrolled = enroll(&app, "005xx01", json!({"type": "totp"})).await;
    assert_eq!(enrolled.status, StatusCode::CREATED);
    assert_eq!(enrolled.headers["cache-control"], "no-store");
    assert_eq!((enrolled.body["type"].as_str(), enrolled.body["status"].as_str()), (Some("totp"), Some("unconfirmed")));
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let uri = enrolled.body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/vouchsafe:Jane%20Doe?secret=") && uri.contains(&secret), "{uri}");
    assert!(enrolled.body["qr_svg"].as_str().unwrap().contains("<svg"));
    let auth = enrolled.body["id"].as_str().unwrap().to_owned();
    let confirm_path = format!("/v1/users/005xx01/authenticators/{auth}/confirm");
    let bad = app.post(&confirm_path, &app.admin, json!({"code": "000000"})).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("code")));
    let first = pyotp(&secret, now(&app));
    assert_eq!(app.post(&confirm_path, &app.admin, json!({"code": first})).await.body["status"], "active");
    let listed = app.get("/v1/users/005xx01/authenticators", &app.admin).await;
    assert!(!listed.text.contains(&secret), "the secret is shown once");

    let c = challenge(&app, "005xx01", json!({"redirect_url": "https://app.example.com/done"})).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    assert_eq!((c.body["factor"].as_str(), c.body["status"].as_str()), (Some("totp"), Some("pending")));
    let id = c.body["id"].as_str().unwrap().to_owned();
    assert_eq!(c.body["url"], format!("{}/challenge/{id}", app.base));
    // The confirming code's step is used up: replaying it fails.
    let replay = answer(&app, &id, &first).await;
    assert_eq!(
        (replay.body["status"].as_str(), replay.body["attempts_remaining"].as_u64()),
        (Some("pending"), Some(4))
    );
    app.clock.advance(Duration::seconds(30));
    let ok = answer(&app, &id, &pyotp(&secret, now(&app))).await;
    assert_eq!(ok.body["status"], "approved", "{}", ok.text);
    let token = ok.body["token"].as_str().unwrap().to_owned();
    let valid = app.post("/v1/challenges/validate", &app.admin, json!({"token": token})).await;
    assert_eq!(valid.body["valid"], true);
    assert_eq!(
        (valid.body["user_id"].as_str(), valid.body["challenge_id"].as_str()),
        (Some("005xx01"), Some(id.as_str()))
    );
    assert_eq!((valid.body["factor"].as_str(), valid.body["action"].as_str()), (Some("totp"), Some("login")));
    assert!(valid.body["verified_at"].is_string());
    let again = app.post("/v1/challenges/validate", &app.admin, json!({"token": token})).await;
    assert_eq!(again.body["valid"], false, "a token validates once");
    let forged = app.post("/v1/challenges/validate", &app.admin, json!({"token": format!("{token}x")})).await;
    assert_eq!(forged.body["valid"], false);
    // Events and audit.
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'challenge.approved'").await, 1);
    let audit = app.get("/v1/audit-events", &app.admin).await.text;
    assert!(audit.contains("authenticator.created") && audit.contains("challenge.approved"));
    let contents = crate::secrets::database_contents(&app).await;
    assert!(!contents.contains(&secret), "the TOTP secret is stored sealed");
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_even_across_nodes() {
    let app = spawn_app().await;
    let secret = totp_user(&app, "u1").await;
    app.clock.advance(Duration::seconds(30));
    let code = pyotp(&secret, now(&app));
    let c1 = challenge(&app, "u1", json!({})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &c1, &code).await.body["status"], "approved");
    // The same code on another node, for a new challenge: refused.
    let second = spawn_second_node(&app).await;
    let c2 = challenge(&app, "u1", json!({})).await.body["id"].as_str().unwrap().to_owned();
    let replay: Value = app
        .client
        .post(format!("{second}/v1/challenges/{c2}/verify"))
        .bearer_auth(&app.admin)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["status"], "pending");
    // The drift window: the previous step's code still works once.
    app.clock.advance(Duration::seconds(30));
    let late = pyotp(&secret, now(&app) - 30);
    let late_ok = answer(&app, &c2, &late).await;
    assert_eq!(late_ok.body["status"], "pending", "that step was the one already used");
    app.clock.advance(Duration::seconds(30));
    let previous = pyotp(&secret, now(&app) - 30);
    assert_eq!(answer(&app, &c2, &previous).await.body["status"], "approved", "one step of drift is allowed");
}

#[tokio::test]
async fn hotp_tokens_follow_rfc_4226_and_never_go_back() {
    let app = spawn_app().await;
    user(&app, "u2", json!({})).await;
    // RFC 4226 appendix D: secret "12345678901234567890".
    let import =
        enroll(&app, "u2", json!({"type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "counter": 0})).await;
    assert_eq!((import.status, import.body["status"].as_str()), (StatusCode::CREATED, Some("active")));
    assert!(import.body.get("secret").is_none(), "an imported secret is not echoed");
    let c = challenge(&app, "u2", json!({})).await;
    assert_eq!(c.body["factor"], "hotp");
    let id = c.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, "287082").await.body["status"], "approved", "counter 1, within the look-ahead");
    let id = challenge(&app, "u2", json!({})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, "755224").await.body["status"], "pending", "counter 0 is behind");
    assert_eq!(answer(&app, &id, "287082").await.body["status"], "pending", "counter 1 is used");
    assert_eq!(answer(&app, &id, "162583").await.body["status"], "approved", "counter 7");
    let id = challenge(&app, "u2", json!({})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, "359152").await.body["status"], "pending", "counter 2 fell behind 7");
    assert_eq!(answer(&app, &id, "399871").await.body["status"], "approved", "counter 8");
}

#[tokio::test]
async fn a_drifted_hotp_token_is_resynchronised_by_two_consecutive_codes() {
    let app = spawn_app().await;
    user(&app, "u8", json!({})).await;
    let import =
        enroll(&app, "u8", json!({"type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "counter": 0})).await;
    let auth = import.body["id"].as_str().unwrap().to_owned();
    // Make codes of counters far past the look-ahead of 10 (RFC 4226 key).
    let code_at = |counter: u64| {
        let script = format!("import pyotp; print(pyotp.HOTP('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ').at({counter}))");
        python("pyotp", &script, &[])
    };
    let id = challenge(&app, "u8", json!({})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, &code_at(50)).await.body["status"], "pending", "beyond the look-ahead");
    let path = format!("/v1/users/u8/authenticators/{auth}/resync");
    let bad = app.post(&path, &app.admin, json!({"code": code_at(50), "next_code": code_at(52)})).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("code")));
    let ok = app.post(&path, &app.admin, json!({"code": code_at(50), "next_code": code_at(51)})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(answer(&app, &id, &code_at(51)).await.body["status"], "pending", "the resync codes are used up");
    assert_eq!(answer(&app, &id, &code_at(52)).await.body["status"], "approved");
    let again = app.post(&path, &app.admin, json!({"code": code_at(50), "next_code": code_at(51)})).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "never backwards");
}

#[tokio::test]
async fn yubikey_otps_are_checked_locally_and_never_replayed() {
    let app = spawn_app().await;
    user(&app, "u3", json!({})).await;
    let bad = enroll(
        &app,
        "u3",
        json!({"type": "yubikey", "public_id": "dteffuje", "private_id": "8792eb", "aes_key": "00"}),
    )
    .await;
    assert_eq!(bad.body["error"]["field"], "private_id");
    let import = enroll(
        &app,
        "u3",
        json!({"type": "yubikey", "public_id": "dteffuje",
        "private_id": "8792ebfe26cc", "aes_key": "ecde18dbe76fbd0c33330f1c354871db"}),
    )
    .await;
    assert_eq!(import.status, StatusCode::CREATED, "{}", import.text);
    let id = challenge(&app, "u3", json!({})).await;
    assert_eq!(id.body["factor"], "yubikey");
    let id = id.body["id"].as_str().unwrap().to_owned();
    // Yubico's published test OTP (usage counter 19, session 17).
    let otp = "dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh";
    assert_eq!(answer(&app, &id, otp).await.body["status"], "approved");
    let id = challenge(&app, "u3", json!({})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, otp).await.body["status"], "pending", "a captured OTP never works twice");
    // The token's next touches: higher counters pass, lower ones do not.
    let key: [u8; 16] =
        [0xec, 0xde, 0x18, 0xdb, 0xe7, 0x6f, 0xbd, 0x0c, 0x33, 0x33, 0x0f, 0x1c, 0x35, 0x48, 0x71, 0xdb];
    let fields = |usage, session| vouchsafe_core::yubikey::Decrypted {
        private_id: [0x87, 0x92, 0xeb, 0xfe, 0x26, 0xcc],
        usage_counter: usage,
        session_counter: session,
    };
    let older = vouchsafe_core::yubikey::generate("dteffuje", &fields(0x13, 0x10), 1, 2, &key);
    assert_eq!(answer(&app, &id, &older).await.body["status"], "pending");
    let next = vouchsafe_core::yubikey::generate("dteffuje", &fields(0x13, 0x12), 1, 2, &key);
    assert_eq!(answer(&app, &id, &next).await.body["status"], "approved");
}

#[tokio::test]
async fn recovery_codes_work_once_and_a_new_set_revokes_the_old() {
    let app = spawn_app().await;
    user(&app, "u4", json!({"email": "u4@example.com"})).await;
    let set = enroll(&app, "u4", json!({"type": "recovery_codes"})).await;
    assert_eq!(set.status, StatusCode::CREATED);
    let codes: Vec<String> =
        set.body["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    let c = challenge(&app, "u4", json!({})).await;
    assert_eq!(c.body["factor"], "email", "recovery codes are not picked by the policy");
    let id = challenge(&app, "u4", json!({"factor": "recovery_code"})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, &codes[0].to_uppercase()).await.body["status"], "approved");
    let id = challenge(&app, "u4", json!({"factor": "recovery_code"})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, &codes[0]).await.body["status"], "pending", "spent");
    let listed = app.get("/v1/users/u4/authenticators", &app.admin).await;
    assert_eq!(listed.body["authenticators"][0]["remaining"], 9);
    assert!(!listed.text.contains(&codes[1]));
    let contents = crate::secrets::database_contents(&app).await;
    assert!(codes.iter().all(|c| !contents.contains(c.as_str()) && !contents.contains(&c.replace('-', ""))));
    enroll(&app, "u4", json!({"type": "recovery_codes"})).await;
    assert_eq!(answer(&app, &id, &codes[1]).await.body["status"], "pending", "the old set is revoked");
    assert_eq!(
        app.get("/v1/users/u4/authenticators", &app.admin).await.body["authenticators"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn the_policy_picks_the_factor_and_code_factors_use_the_providers() {
    let app = spawn_app().await;
    let fake = FakeProviders::start().await;
    use_twilio(&app, &fake).await;
    user(&app, "mobile", json!({"phone": MOBILE, "email": "m@example.com"})).await;
    let c = challenge(&app, "mobile", json!({})).await;
    assert_eq!(c.body["factor"], "sms", "{}", c.text);
    let code = code_in(&fake.wait_for("twilio_sms", 1).await[0].form["Body"], 6);
    let id = c.body["id"].as_str().unwrap();
    assert_eq!(answer(&app, id, &code).await.body["status"], "approved");
    user(&app, "desk", json!({"phone": LANDLINE})).await;
    assert_eq!(challenge(&app, "desk", json!({})).await.body["factor"], "voice");
    let sms = challenge(&app, "desk", json!({"factor": "sms"})).await;
    assert_eq!((sms.status, sms.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("factor")));
    user(&app, "nobody", json!({})).await;
    assert_eq!(challenge(&app, "nobody", json!({})).await.body["error"]["field"], "factor");
    // Privileged users need a passkey.
    user(&app, "admin", json!({"privileged": true, "phone": MOBILE})).await;
    let refused = challenge(&app, "admin", json!({})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "phishing_resistant_factor_required"));
    let refused = challenge(&app, "admin", json!({"factor": "sms"})).await;
    assert_eq!(refused.code(), "phishing_resistant_factor_required");
    assert_eq!(challenge(&app, "ghost", json!({})).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn consecutive_failures_lock_the_user_durably_and_success_resets() {
    let app = spawn_app().await;
    app.patch("/v1/settings", &app.admin, json!({"lockout": {"threshold": 3, "duration_s": 900}})).await;
    let secret = totp_user(&app, "u5").await;
    let c1 = challenge(&app, "u5", json!({})).await.body["id"].as_str().unwrap().to_owned();
    answer(&app, &c1, "000000").await;
    answer(&app, &c1, "000001").await;
    // Failures count across challenges.
    let c2 = challenge(&app, "u5", json!({})).await.body["id"].as_str().unwrap().to_owned();
    answer(&app, &c2, "000002").await;
    app.clock.advance(Duration::seconds(30));
    let locked = answer(&app, &c2, &pyotp(&secret, now(&app))).await;
    assert_eq!((locked.status, locked.code()), (StatusCode::LOCKED, "user_locked"), "{}", locked.text);
    let retry: i64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    assert_eq!(challenge(&app, "u5", json!({})).await.status, StatusCode::LOCKED);
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'user.locked'").await, 1);
    assert!(app.get("/v1/users/u5", &app.admin).await.body["locked_until"].is_string());
    // The lock ends on time; a success then resets the count.
    app.clock.advance(Duration::seconds(900));
    let c3 = challenge(&app, "u5", json!({})).await.body["id"].as_str().unwrap().to_owned();
    answer(&app, &c3, "000003").await;
    assert_eq!(answer(&app, &c3, &pyotp(&secret, now(&app))).await.body["status"], "approved");
    let c4 = challenge(&app, "u5", json!({})).await.body["id"].as_str().unwrap().to_owned();
    answer(&app, &c4, "000004").await;
    answer(&app, &c4, "000005").await;
    assert_eq!(answer(&app, &c4, "000006").await.status, StatusCode::OK, "three after a success, not four");
}

#[tokio::test]
async fn too_many_wrong_answers_deny_the_challenge() {
    let app = spawn_app().await;
    app.patch("/v1/settings", &app.admin, json!({"otp": {"max_check_attempts": 2}})).await;
    let secret = totp_user(&app, "u6").await;
    let id = challenge(&app, "u6", json!({"action": "wire-transfer"})).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &id, "111111").await.body["status"], "pending");
    let denied = answer(&app, &id, "222222").await;
    assert_eq!((denied.body["status"].as_str(), denied.body["attempts_remaining"].as_u64()), (Some("denied"), Some(0)));
    app.clock.advance(Duration::seconds(30));
    assert_eq!(answer(&app, &id, &pyotp(&secret, now(&app))).await.body["status"], "denied", "final");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'challenge.denied'").await, 1);
    let fetched = app.get(&format!("/v1/challenges/{id}"), &app.admin).await;
    assert_eq!(
        (fetched.body["status"].as_str(), fetched.body["action"].as_str()),
        (Some("denied"), Some("wire-transfer"))
    );
}

#[tokio::test]
async fn users_challenges_and_tokens_stay_in_their_tenant() {
    let app = spawn_app().await;
    let secret = totp_user(&app, "u7").await;
    let (_, other, _) = app.new_tenant("other", vouchsafe_core::role::Role::Admin).await;
    assert_eq!(app.get("/v1/users/u7", &other).await.status, StatusCode::NOT_FOUND);
    let id = challenge(&app, "u7", json!({})).await.body["id"].as_str().unwrap().to_owned();
    let theirs = app.post(&format!("/v1/challenges/{id}/verify"), &other, json!({"code": "123456"})).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    app.clock.advance(Duration::seconds(30));
    let token = answer(&app, &id, &pyotp(&secret, now(&app))).await.body["token"].as_str().unwrap().to_owned();
    let elsewhere = app.post("/v1/challenges/validate", &other, json!({"token": token})).await;
    assert_eq!(elsewhere.body["valid"], false);
    assert_eq!(app.post("/v1/challenges/validate", &app.admin, json!({"token": token})).await.body["valid"], true);
    assert_eq!(app.delete("/v1/users/u7", &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/users/u7/authenticators", &app.admin).await.status, StatusCode::NOT_FOUND);
}

/// Issue 16, item 24: issuer and label are limited in bytes the QR code
/// can hold; 100 four-byte characters are refused, not a 500.
#[tokio::test]
async fn long_issuers_and_labels_are_refused_not_a_server_error() {
    let app = spawn_app().await;
    app.put("/v1/users/qr", &app.admin, json!({})).await;
    let wide = "𝒜".repeat(100);
    for field in ["issuer", "label"] {
        let mut body = json!({"type": "totp"});
        body[field] = json!(wide);
        let reply = app.post("/v1/users/qr/authenticators", &app.admin, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field);
    }
    // Every kind's label keeps the limit (issue 16, item 19: an HOTP label
    // had none).
    let hotp = json!({"type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "label": "x".repeat(101)});
    let reply = app.post("/v1/users/qr/authenticators", &app.admin, hotp).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "hotp: {}", reply.text);
    assert_eq!(reply.body["error"]["field"], "label");
    let fits = "𝒜".repeat(25);
    let reply = app
        .post("/v1/users/qr/authenticators", &app.admin, json!({"type": "totp", "issuer": fits, "label": fits}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert!(
        reply.body["qr_svg"].as_str().unwrap().starts_with("<?xml")
            || reply.body["qr_svg"].as_str().unwrap().contains("<svg")
    );
}

/// Issue 16, item 13: a redirect host is letters, digits, `.` and `-`; a
/// `;` (which WHATWG hosts allow) reached the page's CSP header.
#[tokio::test]
async fn redirect_hosts_cannot_reach_the_csp_header() {
    let app = spawn_app().await;
    app.put("/v1/users/r1", &app.admin, json!({"email": "r1@example.com"})).await;
    for bad in ["https://a;b.example.com/", "https://user:pw@example.com/", "https://x.example.com\\@evil.example/"] {
        let reply = app.post("/v1/users/r1/challenges", &app.admin, json!({"redirect_url": bad})).await;
        assert!(reply.status.is_client_error(), "{bad}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], "redirect_url", "{bad}");
    }
}

/// Every answer reads all of its user's authenticators, so a user has at
/// most 20, unconfirmed ones among them: one more enrollment (whoever
/// holds an agent key could otherwise enroll, and confirm, without end)
/// answers 409 and stores nothing; a deleted one frees its place.
#[tokio::test]
async fn a_user_at_their_authenticator_limit_is_refused_with_409() {
    let app = spawn_app().await;
    user(&app, "u20", json!({})).await;
    let limit = vouchsafe_core::authenticator::AUTHENTICATORS_PER_USER;
    let mut first = String::new();
    for n in 0..limit {
        let enrolled = enroll(&app, "u20", json!({"type": "totp"})).await;
        assert_eq!(enrolled.status, StatusCode::CREATED, "{n}: {}", enrolled.text);
        if n == 0 {
            first = enrolled.body["id"].as_str().unwrap().to_owned();
        }
    }
    let refused = enroll(&app, "u20", json!({"type": "totp"})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "conflict");
    assert!(!refused.text.contains("otpauth"), "no secret in the refusal");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM authenticators").await, i64::from(limit), "nothing stored");
    let gone = app.delete(&format!("/v1/users/u20/authenticators/{first}"), &app.admin).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    assert_eq!(enroll(&app, "u20", json!({"type": "totp"})).await.status, StatusCode::CREATED);
}
