//! Each role against each endpoint: admins may do everything, agents read
//! settings and services, webhook keys nothing here; no key is 401.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vouchsafe_core::ids::{
    ApiKeyId, AuthenticatorId, CallerVerificationId, ChallengeId, DeliveryId, ServiceId, VerificationId,
    WebhookEndpointId,
};
use vouchsafe_core::role::Role;

use crate::helpers::spawn_app;

/// (method, path, body, least role allowed).
fn endpoints(default_service: &str) -> Vec<(Method, String, Option<Value>, Role)> {
    let missing_service = ServiceId::generate().to_string();
    let missing_key = ApiKeyId::generate().to_string();
    let missing_hook = WebhookEndpointId::generate().to_string();
    let missing_verification = VerificationId::generate().to_string();
    let missing_delivery = DeliveryId::generate().to_string();
    let missing_authenticator = AuthenticatorId::generate().to_string();
    let missing_challenge = ChallengeId::generate().to_string();
    let missing_caller = CallerVerificationId::generate().to_string();
    vec![
        (Method::GET, "/v1/tenant".into(), None, Role::Agent),
        (Method::GET, "/v1/settings".into(), None, Role::Agent),
        (Method::PATCH, "/v1/settings".into(), Some(json!({})), Role::Admin),
        (Method::GET, "/v1/services".into(), None, Role::Agent),
        (Method::POST, "/v1/services".into(), Some(json!({"name": "role-matrix"})), Role::Admin),
        (Method::GET, format!("/v1/services/{default_service}"), None, Role::Agent),
        (Method::PATCH, format!("/v1/services/{default_service}"), Some(json!({})), Role::Admin),
        (Method::DELETE, format!("/v1/services/{missing_service}"), None, Role::Admin),
        (Method::GET, "/v1/api-keys".into(), None, Role::Admin),
        (Method::POST, "/v1/api-keys".into(), Some(json!({"role": "agent"})), Role::Admin),
        (Method::DELETE, format!("/v1/api-keys/{missing_key}"), None, Role::Admin),
        (Method::GET, "/v1/webhook-endpoints".into(), None, Role::Admin),
        (Method::POST, "/v1/webhook-endpoints".into(), Some(json!({"url": "https://crm.example.test/h"})), Role::Admin),
        (Method::GET, format!("/v1/webhook-endpoints/{missing_hook}"), None, Role::Admin),
        (Method::PATCH, format!("/v1/webhook-endpoints/{missing_hook}"), Some(json!({})), Role::Admin),
        (Method::DELETE, format!("/v1/webhook-endpoints/{missing_hook}"), None, Role::Admin),
        (Method::POST, format!("/v1/webhook-endpoints/{missing_hook}/ping"), None, Role::Admin),
        (Method::POST, format!("/v1/webhook-endpoints/{missing_hook}/test"), None, Role::Admin),
        (Method::POST, format!("/v1/webhook-endpoints/{missing_hook}/rotate-secret"), Some(json!({})), Role::Admin),
        (Method::GET, format!("/v1/webhook-endpoints/{missing_hook}/deliveries"), None, Role::Admin),
        (Method::GET, "/v1/credentials".into(), None, Role::Admin),
        (Method::PUT, "/v1/credentials/role-matrix".into(), Some(json!({"type": "bearer", "token": "t"})), Role::Admin),
        (Method::DELETE, "/v1/credentials/missing".into(), None, Role::Admin),
        (Method::GET, "/v1/providers".into(), None, Role::Admin),
        (
            Method::PUT,
            "/v1/providers/role-matrix".into(),
            Some(json!({"type": "console", "priority": 2000})),
            Role::Admin,
        ),
        (Method::DELETE, "/v1/providers/missing".into(), None, Role::Admin),
        (
            Method::POST,
            "/v1/verifications".into(),
            Some(json!({"to": "+447400123456", "channel": "sms", "service_id": missing_service})),
            Role::Agent,
        ),
        (
            Method::POST,
            "/v1/verifications/check".into(),
            Some(json!({"to": "+447400123456", "code": "1234"})),
            Role::Agent,
        ),
        (Method::GET, format!("/v1/verifications/{missing_verification}"), None, Role::Agent),
        (Method::POST, format!("/v1/verifications/{missing_verification}/cancel"), None, Role::Agent),
        (
            Method::POST,
            "/v1/deliveries".into(),
            Some(json!({"to": "+447400123456", "channel": "sms", "code": "1234"})),
            Role::Agent,
        ),
        (Method::GET, format!("/v1/deliveries/{missing_delivery}"), None, Role::Agent),
        (Method::PUT, "/v1/users/role-matrix".into(), Some(json!({"email": "a@example.com"})), Role::Agent),
        (Method::GET, "/v1/users/missing".into(), None, Role::Agent),
        (Method::DELETE, "/v1/users/missing".into(), None, Role::Agent),
        (Method::GET, "/v1/users/missing/authenticators".into(), None, Role::Agent),
        (Method::POST, "/v1/users/missing/authenticators".into(), Some(json!({"type": "totp"})), Role::Agent),
        (Method::DELETE, format!("/v1/users/missing/authenticators/{missing_authenticator}"), None, Role::Agent),
        (
            Method::POST,
            format!("/v1/users/missing/authenticators/{missing_authenticator}/confirm"),
            Some(json!({"code": "123456"})),
            Role::Agent,
        ),
        (Method::POST, "/v1/users/missing/challenges".into(), Some(json!({})), Role::Agent),
        (Method::GET, format!("/v1/challenges/{missing_challenge}"), None, Role::Agent),
        (Method::POST, format!("/v1/challenges/{missing_challenge}/verify"), Some(json!({"code": "1"})), Role::Agent),
        (Method::POST, "/v1/challenges/validate".into(), Some(json!({"token": "vct_x.y"})), Role::Agent),
        (Method::GET, format!("/v1/caller-verifications/{missing_caller}"), None, Role::Agent),
        (Method::POST, format!("/v1/caller-verifications/{missing_caller}/cancel"), None, Role::Agent),
        (
            Method::POST,
            format!("/v1/caller-verifications/{missing_caller}/check"),
            Some(json!({"code": "1"})),
            Role::Agent,
        ),
        (Method::GET, "/v1/records/500xx/transactions".into(), None, Role::Agent),
        (Method::GET, "/v1/audit-events".into(), None, Role::Admin),
        (Method::GET, "/v1/audit-events/verify".into(), None, Role::Admin),
    ]
}

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let app = spawn_app().await;
    let agent = app.key(Role::Agent).await;
    let webhook = app.key(Role::Webhook).await;
    let default_service = app.tenant.default_service_id.to_string();
    for (method, path, body, least) in endpoints(&default_service) {
        let anonymous = app.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {path} without a key");
        assert_eq!(anonymous.code(), "unauthorized");

        for (role, secret) in [(Role::Admin, &app.admin), (Role::Agent, &agent), (Role::Webhook, &webhook)] {
            let reply = app.call(method.clone(), &path, Some(secret), body.clone()).await;
            if role.grants(least) {
                assert!(
                    reply.status != StatusCode::UNAUTHORIZED && reply.status != StatusCode::FORBIDDEN,
                    "{} may {method} {path}, got {}",
                    role.as_str(),
                    reply.status
                );
                assert!(
                    reply.status.is_success() || reply.status == StatusCode::NOT_FOUND,
                    "{method} {path}: {}",
                    reply.text
                );
            } else {
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{} must not {method} {path}", role.as_str());
                assert_eq!(reply.code(), "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn a_forbidden_request_changes_nothing() {
    let app = spawn_app().await;
    let agent = app.key(Role::Agent).await;
    let reply = app.patch("/v1/settings", &agent, json!({"otp": {"code_length": 8}})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let settings = app.get("/v1/settings", &agent).await;
    assert_eq!(settings.body["otp"]["code_length"], 6);
    let reply = app.post("/v1/api-keys", &agent, json!({"role": "admin"})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let keys = app.get("/v1/api-keys", &app.admin).await;
    assert_eq!(keys.body["api_keys"].as_array().unwrap().len(), 2, "only the admin and agent keys exist");
}

#[tokio::test]
async fn public_endpoints_need_no_key() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        let reply = app.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
}
