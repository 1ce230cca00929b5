//! Tenants are isolated: another tenant's ids answer 404, never 403, and
//! lists show only the caller's own objects.

use reqwest::StatusCode;
use serde_json::json;
use vouchsafe_core::role::Role;

use crate::helpers::spawn_app;

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let app = spawn_app().await;
    let (other, other_admin, other_key_id) = app.new_tenant("other", Role::Admin).await;
    let created = app.post("/v1/services", &other_admin, json!({"name": "Theirs"})).await;
    let their_service = created.body["id"].as_str().unwrap().to_owned();
    let their_default = other.default_service_id.to_string();

    for path in [format!("/v1/services/{their_service}"), format!("/v1/services/{their_default}")] {
        let reply = app.get(&path, &app.admin).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "GET {path}");
        assert_eq!(reply.code(), "not_found");
        assert_eq!(app.patch(&path, &app.admin, json!({"name": "Mine"})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&path, &app.admin).await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.delete(&format!("/v1/api-keys/{other_key_id}"), &app.admin).await.status, StatusCode::NOT_FOUND);

    // Nothing of theirs changed, and their key still works.
    let theirs = app.get(&format!("/v1/services/{their_service}"), &other_admin).await;
    assert_eq!(theirs.body["name"], "Theirs");
    assert_eq!(app.get("/v1/tenant", &other_admin).await.body["name"], "other");

    // Lists and the tenant are the caller's own.
    let mine = app.get("/v1/services", &app.admin).await;
    assert!(!mine.text.contains(&their_service));
    let keys = app.get("/v1/api-keys", &app.admin).await;
    assert!(!keys.text.contains(&other_key_id));
    assert_eq!(app.get("/v1/tenant", &app.admin).await.body["id"], app.tenant.id.as_str());
}

#[tokio::test]
async fn settings_are_per_tenant() {
    let app = spawn_app().await;
    let (_, other_admin, _) = app.new_tenant("other", Role::Admin).await;
    let reply = app.patch("/v1/settings", &other_admin, json!({"otp": {"code_length": 9}})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.get("/v1/settings", &app.admin).await.body["otp"]["code_length"], 6);
    assert_eq!(app.get("/v1/settings", &other_admin).await.body["otp"]["code_length"], 9);
}
