//! Services: create, read, change, delete, with bounds and unique names.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_tenant_has_a_default_service() {
    let app = spawn_app().await;
    let list = app.get("/v1/services", &app.admin).await;
    let services = list.body["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["name"], "default");
    assert_eq!(services[0]["is_default"], true);
    assert_eq!(services[0]["channels"], json!(["sms", "voice", "email"]));
    assert!(services[0]["id"].as_str().unwrap().starts_with("VA"));
}

#[tokio::test]
async fn create_read_change_delete() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v1/services",
            &app.admin,
            json!({"name": "Acme Login", "code_length": 8, "ttl_s": 300, "channels": ["sms"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["is_default"], false);
    let path = format!("/v1/services/{id}");

    let read = app.get(&path, &app.admin).await;
    assert_eq!(read.body["name"], "Acme Login");
    assert_eq!(read.body["code_length"], 8);
    assert_eq!(read.body["ttl_s"], 300);
    assert_eq!(read.body["channels"], json!(["sms"]));

    // Absent members stay; null returns a member to the tenant setting.
    let changed = app.patch(&path, &app.admin, json!({"ttl_s": null, "channels": ["sms", "email"]})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["code_length"], 8);
    assert_eq!(changed.body["ttl_s"], serde_json::Value::Null);
    assert_eq!(app.get(&path, &app.admin).await.body["channels"], json!(["sms", "email"]));

    assert_eq!(app.delete(&path, &app.admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &app.admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn names_are_unique_per_tenant() {
    let app = spawn_app().await;
    assert_eq!(app.post("/v1/services", &app.admin, json!({"name": "Login"})).await.status, StatusCode::CREATED);
    let dup = app.post("/v1/services", &app.admin, json!({"name": "Login"})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.code(), "conflict");
    let other = app.post("/v1/services", &app.admin, json!({"name": "Other"})).await;
    let rename = app
        .patch(&format!("/v1/services/{}", other.body["id"].as_str().unwrap()), &app.admin, json!({"name": "Login"}))
        .await;
    assert_eq!(rename.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn bounds_are_422_with_the_field_and_change_nothing() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "code_length": 3}), "code_length"),
        (json!({"name": "x", "code_length": 11}), "code_length"),
        (json!({"name": "x", "ttl_s": 29}), "ttl_s"),
        (json!({"name": "x", "ttl_s": 86401}), "ttl_s"),
        (json!({"name": "x", "channels": ["fax"]}), "channels"),
        (json!({"name": "x", "channels": []}), "channels"),
        (json!({"code_length": 6}), "name"),
    ] {
        let reply = app.post("/v1/services", &app.admin, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.body["error"]["field"], field, "{body}");
    }
    assert_eq!(app.get("/v1/services", &app.admin).await.body["services"].as_array().unwrap().len(), 1);

    let default = format!("/v1/services/{}", app.tenant.default_service_id);
    let reply = app.patch(&default, &app.admin, json!({"code_length": 12})).await;
    assert_eq!(reply.body["error"]["field"], "code_length");
    assert_eq!(app.get(&default, &app.admin).await.body["code_length"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_default_service_can_be_renamed_but_not_deleted() {
    let app = spawn_app().await;
    let default = format!("/v1/services/{}", app.tenant.default_service_id);
    let renamed = app.patch(&default, &app.admin, json!({"name": "Acme"})).await;
    assert_eq!(renamed.body["name"], "Acme");
    assert_eq!(renamed.body["is_default"], true);
    let deleted = app.delete(&default, &app.admin).await;
    assert_eq!(deleted.status, StatusCode::CONFLICT);
    assert_eq!(app.get(&default, &app.admin).await.status, StatusCode::OK);
}

/// Services are listed whole, so a tenant has at most 100 (its default
/// among them): one more answers 409 on /v1 and on the Twilio-compatible
/// /v2, and stores nothing; a deleted one frees its place.
#[tokio::test]
async fn a_tenant_at_its_service_limit_is_refused_with_409() {
    let app = spawn_app().await;
    let limit = vouchsafe_core::service::SERVICES_PER_TENANT;
    let mut last = String::new();
    for n in 1..limit {
        let created = app.post("/v1/services", &app.admin, json!({"name": format!("svc-{n}")})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{n}: {}", created.text);
        last = created.body["id"].as_str().unwrap().to_owned();
    }
    let refused = app.post("/v1/services", &app.admin, json!({"name": "one-more"})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "conflict");
    assert!(refused.text.contains("as many services as it may"), "{}", refused.text);
    let twilio = app
        .client
        .post(app.url("/v2/Services"))
        .basic_auth(app.tenant.account_sid.as_str(), Some(&app.admin))
        .form(&[("FriendlyName", "one-more")])
        .send()
        .await
        .unwrap();
    assert_eq!(twilio.status(), StatusCode::CONFLICT);
    assert_eq!(twilio.json::<serde_json::Value>().await.unwrap()["code"], 20409);
    assert_eq!(app.count_rows("SELECT COUNT(*) FROM services").await, i64::from(limit), "nothing stored");
    assert_eq!(app.delete(&format!("/v1/services/{last}"), &app.admin).await.status, StatusCode::NO_CONTENT);
    let created = app.post("/v1/services", &app.admin, json!({"name": "one-more"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
}
