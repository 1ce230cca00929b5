//! The audit log over the API: every change is there with its actor, no
//! secret is, and an edited row makes `verify` name it.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn changes_are_audited_with_their_actor_and_no_secret() {
    let app = spawn_app().await;
    let key = app.post("/v1/api-keys", &app.admin, json!({"role": "agent"})).await;
    let secret = key.body["secret"].as_str().unwrap().to_owned();
    app.patch("/v1/settings", &app.admin, json!({"otp": {"code_length": 8}})).await;
    app.patch("/v1/settings", &app.admin, json!({"otp": {"code_length": 99}})).await; // refused: not audited
    let service = app.post("/v1/services", &app.admin, json!({"name": "Login"})).await;
    let hook = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": "https://crm.example.test/h"})).await;
    let hook_secret = hook.body["secret"].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/api-keys/{}", key.body["id"].as_str().unwrap()), &app.admin).await;

    let log = app.get("/v1/audit-events", &app.admin).await;
    assert_eq!(log.status, StatusCode::OK);
    let events = log.body["events"].as_array().unwrap();
    let actions: Vec<_> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        vec![
            "tenant.created",
            "api_key.created",
            "api_key.created",
            "settings.updated",
            "service.created",
            "webhook_endpoint.created",
            "api_key.revoked"
        ]
    );
    assert_eq!(events[3]["actor"], app.admin_key_id.as_str());
    assert_eq!(events[4]["target"], service.body["id"]);
    assert_eq!(events[0]["prev_hash"], "0".repeat(64));
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    assert!(!log.text.contains(&secret[4..]) && !log.text.contains(&hook_secret[6..]), "no secret in the audit log");

    let page = app.get("/v1/audit-events?after=2&limit=2", &app.admin).await;
    let seqs: Vec<_> = page.body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4]);
    assert_eq!(page.body["next_cursor"], 4);
    let verify = app.get("/v1/audit-events/verify", &app.admin).await;
    let head = events[6]["hash"].as_str().unwrap();
    assert!(head.starts_with("hmac-sha256:"), "the chain is keyed: {head}");
    assert_eq!(verify.body, json!({"valid": true, "count": 7, "first_bad_seq": null, "head_hash": head}));
}

#[tokio::test]
async fn an_edited_row_is_detected_and_named() {
    let app = spawn_app().await;
    for n in 4..=8 {
        app.patch("/v1/settings", &app.admin, json!({"otp": {"code_length": n}})).await;
    }
    assert_eq!(app.get("/v1/audit-events/verify", &app.admin).await.body["valid"], true);
    let tenant = app.tenant.id.as_str();
    let changed = app
        .execute_sql(&format!(
            "UPDATE audit_events SET actor = 'key_innocent' WHERE tenant_id = '{tenant}' AND seq = 3"
        ))
        .await;
    assert_eq!(changed, 1);
    let verify = app.get("/v1/audit-events/verify", &app.admin).await;
    assert_eq!(verify.body["valid"], false);
    assert_eq!(verify.body["first_bad_seq"], 3);

    // Deleting the last event is noticed too.
    let app = spawn_app().await;
    app.patch("/v1/settings", &app.admin, json!({"otp": {"code_length": 7}})).await;
    // Read once, so the entry is chained (entries wait for their HMAC in
    // `audit_pending` for a moment; a read chains them first).
    assert_eq!(app.get("/v1/audit-events/verify", &app.admin).await.body["count"], 3);
    let tenant = app.tenant.id.as_str();
    let deleted = app.execute_sql(&format!("DELETE FROM audit_events WHERE tenant_id = '{tenant}' AND seq = 2")).await;
    assert_eq!(deleted, 1);
    let verify = app.get("/v1/audit-events/verify", &app.admin).await;
    assert_eq!(verify.body["valid"], false);
    assert_eq!(verify.body["first_bad_seq"], 2);
}

#[tokio::test]
async fn the_audit_log_is_for_admins() {
    let app = spawn_app().await;
    let agent = app.key(vouchsafe_core::role::Role::Agent).await;
    assert_eq!(app.get("/v1/audit-events", &agent).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/v1/audit-events/verify", &agent).await.status, StatusCode::FORBIDDEN);
}
