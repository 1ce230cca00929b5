//! API keys: the secret is shown once, works as Bearer and as Basic, and
//! stops working the moment the key is revoked.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{read, spawn_app};

#[tokio::test]
async fn a_created_key_works_at_once_and_is_listed_without_its_secret() {
    let app = spawn_app().await;
    app.clock.set(time::macros::datetime!(2030-01-02 03:04:05 UTC));
    let created = app.post("/v1/api-keys", &app.admin, json!({"role": "agent", "name": "crm"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("vsk_") && secret.len() >= 36, "{secret}");
    assert!(created.body["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(created.body["role"], "agent");
    assert_eq!(created.body["name"], "crm");
    assert_eq!(created.body["tenant_id"], app.tenant.id.as_str());
    assert_eq!(created.body["created_at"], "2030-01-02T03:04:05Z", "time comes from the server's clock");

    let tenant = app.get("/v1/tenant", &secret).await;
    assert_eq!(tenant.status, StatusCode::OK);
    assert_eq!(tenant.body["id"], app.tenant.id.as_str());

    let list = app.get("/v1/api-keys", &app.admin).await;
    assert!(!list.text.contains(&secret), "a list must never show a secret");
    let listed = list.body["api_keys"].as_array().unwrap().iter().find(|k| k["id"] == created.body["id"]).unwrap();
    assert_eq!(listed["hint"], &secret[secret.len() - 4..]);
    assert_eq!(listed["role"], "agent");
}

#[tokio::test]
async fn basic_auth_takes_the_key_id_as_user() {
    let app = spawn_app().await;
    let basic = |user: &str, secret: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
    };
    let ok = app.client.get(app.url("/v1/tenant")).header("authorization", basic(&app.admin_key_id, &app.admin));
    assert_eq!(read(ok.send().await.unwrap()).await.status, StatusCode::OK);

    let other_id = vouchsafe_core::ids::ApiKeyId::generate().to_string();
    let wrong_user = app.client.get(app.url("/v1/tenant")).header("authorization", basic(&other_id, &app.admin));
    let reply = read(wrong_user.send().await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "unauthorized");
}

#[tokio::test]
async fn malformed_and_unknown_secrets_are_401() {
    let app = spawn_app().await;
    for header in [
        "Bearer nope".to_owned(),
        format!("Bearer {}x", app.admin),
        format!("Bearer vsk_{}", "A".repeat(40)),
        "Token abc".to_owned(),
        "Basic !!!".to_owned(),
    ] {
        let req = app.client.get(app.url("/v1/tenant")).header("authorization", header.clone());
        let reply = read(req.send().await.unwrap()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn a_revoked_key_fails_on_its_next_request() {
    let app = spawn_app().await;
    let created = app.post("/v1/api-keys", &app.admin, json!({"role": "admin"})).await;
    let secret = created.body["secret"].as_str().unwrap();
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(app.get("/v1/tenant", secret).await.status, StatusCode::OK);

    let revoked = app.delete(&format!("/v1/api-keys/{id}"), &app.admin).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = app.get("/v1/tenant", secret).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);

    let list = app.get("/v1/api-keys", &app.admin).await;
    let listed = list.body["api_keys"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap();
    assert!(listed["revoked_at"].is_string());
    // Revoking again is harmless; an unknown id is 404.
    assert_eq!(app.delete(&format!("/v1/api-keys/{id}"), &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete("/v1/api-keys/key_nope", &app.admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_key_requests_name_the_field_and_create_nothing() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"role": "root"}), "role"),
        (json!({}), "role"),
        (json!({"role": 3}), "role"),
        (json!({"role": "agent", "name": "x".repeat(101)}), "name"),
        (json!({"role": "agent", "colour": "red"}), "colour"),
    ] {
        let reply = app.post("/v1/api-keys", &app.admin, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.code(), "invalid_request");
        assert_eq!(reply.body["error"]["field"], field, "{body}");
    }
    let list = app.get("/v1/api-keys", &app.admin).await;
    assert_eq!(list.body["api_keys"].as_array().unwrap().len(), 1);
}

/// Keys are listed whole, revoked ones too, so a tenant holds at most
/// 1,000, revoked ones counted until they are dropped 30 days after their
/// revocation: creating and revoking cannot grow the list without end.
#[tokio::test]
async fn a_tenant_holding_its_limit_of_keys_is_refused_with_409_revoked_ones_counting() {
    let app = spawn_app().await;
    let held = app.count_rows("SELECT COUNT(*) FROM api_keys").await;
    let limit = i64::from(vouchsafe_core::api_key::API_KEYS_PER_TENANT);
    // All but one place filled behind the server's back, as many requests would.
    let filled = app
        .execute_sql(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
             INSERT INTO api_keys (id, tenant_id, name, role, secret_hash, hint, created_at, revoked_at) \
             SELECT 'key_filler' || i, '{}', 'filler', 'agent', 'hash-' || i, 'abcd', 0, NULL FROM n",
            limit - held - 1,
            app.tenant.id.as_str()
        ))
        .await;
    assert_eq!(i64::try_from(filled).unwrap(), limit - held - 1);
    let last = app.post("/v1/api-keys", &app.admin, json!({"role": "agent"})).await;
    assert_eq!(last.status, StatusCode::CREATED, "{}", last.text);
    let refused = app.post("/v1/api-keys", &app.admin, json!({"role": "agent"})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "conflict");
    assert!(!refused.text.contains("vsk_"), "no secret in the refusal");
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM api_keys").await, limit, "nothing stored");
    let id = last.body["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/v1/api-keys/{id}"), &app.admin).await.status, StatusCode::NO_CONTENT);
    let still = app.post("/v1/api-keys", &app.admin, json!({"role": "agent"})).await;
    assert_eq!(still.status, StatusCode::CONFLICT, "a revoked key still counts: {}", still.text);
}
