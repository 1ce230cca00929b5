//! The error shape everywhere: bodies over 64 KiB, malformed JSON, unknown
//! paths and methods, and the request id on every response.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{read, spawn_app};

#[tokio::test]
async fn bodies_over_64_kib_are_413_in_the_error_shape() {
    let app = spawn_app().await;
    let big = json!({"role": "agent", "name": "x".repeat(70 * 1024)});
    let reply = app.post("/v1/api-keys", &app.admin, big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "payload_too_large");
    assert_eq!(reply.body["error"]["status"], 413);
    // Just under the limit is read (and then refused for its content).
    let near = json!({"role": "agent", "name": "x".repeat(60 * 1024)});
    let reply = app.post("/v1/api-keys", &app.admin, near).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_400() {
    let app = spawn_app().await;
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/v1/services"))
            .bearer_auth(&app.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (body, content_type) in [
        ("{\"name\": ", "application/json"),
        ("{\"name\": \"a\"} trailing", "application/json"),
        ("name=a", "application/x-www-form-urlencoded"),
        ("{\"name\": \"a\"}", "text/plain"),
    ] {
        let reply = read(send(body, content_type).await.unwrap()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body} as {content_type}");
        assert_eq!(reply.code(), "invalid_request");
        assert_eq!(reply.body["error"]["field"], "body");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let reply = app.get("/v1/nothing-here", &app.admin).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
    let reply = app.call(Method::PUT, "/v1/tenant", Some(&app.admin), None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "method_not_allowed");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for (method, path, secret) in [
        (Method::GET, "/healthz", None),
        (Method::GET, "/v1/tenant", Some(app.admin.as_str())),
        (Method::GET, "/v1/tenant", None),
        (Method::GET, "/v1/nothing", None),
    ] {
        let reply = app.call(method, path, secret, None).await;
        let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty());
        assert!(seen.insert(id), "request ids must differ");
    }
    // A request id the caller sends is kept, so logs can be joined up.
    let req = app.client.get(app.url("/healthz")).header("x-request-id", "crm-trace-42");
    let reply = read(req.send().await.unwrap()).await;
    assert_eq!(reply.headers["x-request-id"], "crm-trace-42");
}
