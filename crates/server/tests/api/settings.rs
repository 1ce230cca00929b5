//! Tenant settings: defaults, merge patches, the bounds of API.md, and no
//! lost update when admins patch at the same time.

use reqwest::StatusCode;
use serde_json::json;
use vouchsafe_core::role::Role;

use crate::helpers::spawn_app;

#[tokio::test]
async fn defaults_are_those_of_api_md() {
    let app = spawn_app().await;
    let agent = app.key(Role::Agent).await;
    let reply = app.get("/v1/settings", &agent).await;
    assert_eq!(reply.status, StatusCode::OK);
    let s = reply.body;
    assert_eq!(
        s["otp"],
        json!({"code_length": 6, "ttl_s": 600, "max_check_attempts": 5, "max_sends": 5, "send_window_s": 600, "resend_cooldown_s": 30})
    );
    assert_eq!(s["lockout"], json!({"threshold": 10, "duration_s": 900}));
    assert_eq!(s["geo"], json!({"allowed_countries": ["*"], "default_country": null}));
    assert_eq!(s["caller_verification"], json!({"time_allowed_s": 60, "channel": "sms"}));
    assert_eq!(s["templates"]["sms"], "Your {service} verification code is: {code}");
    for member in ["voice", "email_subject", "email_body", "caller"] {
        assert!(s["templates"][member].is_string(), "templates.{member}");
    }
    assert!(s["branding"]["name"].is_string());
}

#[tokio::test]
async fn a_patch_merges_and_null_restores_the_default() {
    let app = spawn_app().await;
    let reply = app
        .patch(
            "/v1/settings",
            &app.admin,
            json!({"otp": {"code_length": 8}, "branding": {"name": "Acme", "logo_url": "https://acme.test/logo.png"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["otp"]["code_length"], 8);
    assert_eq!(reply.body["otp"]["ttl_s"], 600, "members not named stay");
    assert_eq!(reply.body["branding"]["name"], "Acme");
    let reply = app.patch("/v1/settings", &app.admin, json!({"branding": {"logo_url": null}, "otp": null})).await;
    assert_eq!(reply.body["branding"]["logo_url"], serde_json::Value::Null);
    assert_eq!(reply.body["branding"]["name"], "Acme");
    assert_eq!(reply.body["otp"]["code_length"], 6);
    assert_eq!(app.get("/v1/settings", &app.admin).await.body, reply.body);
}

#[tokio::test]
async fn bounds_of_api_md_at_and_past_each_edge() {
    let app = spawn_app().await;
    for (member, low, high) in [("code_length", 4, 10), ("ttl_s", 30, 86_400), ("max_check_attempts", 1, 20)] {
        for ok in [low, high] {
            let reply = app.patch("/v1/settings", &app.admin, json!({"otp": {member: ok}})).await;
            assert_eq!(reply.status, StatusCode::OK, "{member} = {ok}");
            assert_eq!(reply.body["otp"][member], ok);
        }
        for bad in [low - 1, high + 1] {
            let before = app.get("/v1/settings", &app.admin).await.body;
            let reply =
                app.patch("/v1/settings", &app.admin, json!({"otp": {member: bad}, "lockout": {"threshold": 3}})).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{member} = {bad}");
            assert_eq!(reply.code(), "invalid_request");
            assert_eq!(reply.body["error"]["field"], format!("otp.{member}"));
            assert_eq!(app.get("/v1/settings", &app.admin).await.body, before, "a refused patch changes nothing");
        }
    }
}

#[tokio::test]
async fn wrong_types_and_unknown_members_are_422() {
    let app = spawn_app().await;
    for (patch, field) in [
        (json!({"otp": {"code_length": "six"}}), "otp.code_length"),
        (json!({"otp": {"codelength": 6}}), "otp.codelength"),
        (json!({"geo": {"allowed_countries": ["usa"]}}), "geo.allowed_countries"),
        (json!({"templates": {"sms": "no code"}}), "templates.sms"),
    ] {
        let reply = app.patch("/v1/settings", &app.admin, patch.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{patch}");
        assert_eq!(reply.body["error"]["field"], field, "{patch}");
    }
    let not_object = app.patch("/v1/settings", &app.admin, json!([1, 2])).await;
    assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn concurrent_patches_of_different_members_all_land() {
    let app = spawn_app().await;
    let patches = [
        json!({"otp": {"max_sends": 7}}),
        json!({"otp": {"resend_cooldown_s": 45}}),
        json!({"lockout": {"threshold": 3}}),
        json!({"lockout": {"duration_s": 60}}),
        json!({"caller_verification": {"time_allowed_s": 120}}),
        json!({"branding": {"name": "Parallel"}}),
    ];
    let replies =
        futures::future::join_all(patches.iter().map(|p| app.patch("/v1/settings", &app.admin, p.clone()))).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let s = app.get("/v1/settings", &app.admin).await.body;
    assert_eq!(s["otp"]["max_sends"], 7);
    assert_eq!(s["otp"]["resend_cooldown_s"], 45);
    assert_eq!(s["lockout"]["threshold"], 3);
    assert_eq!(s["lockout"]["duration_s"], 60);
    assert_eq!(s["caller_verification"]["time_allowed_s"], 120);
    assert_eq!(s["branding"]["name"], "Parallel");
}
