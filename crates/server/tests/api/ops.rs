//! Health, readiness, metrics and the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{metric, spawn_app};

#[tokio::test]
async fn readyz_answers_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ok");
    app.store.close().await;
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.code(), "unavailable");
    // The process itself is still alive.
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    let service = app.tenant.default_service_id.to_string();
    let series = "vouchsafe_http_requests_total{method=\"GET\",route=\"/v1/services/{id}\",status=\"200\"}";
    let before = metric(&app.metrics().await, series);
    // More than once: after the first, a series is counted through the
    // handles the server keeps.
    for _ in 0..5 {
        app.get(&format!("/v1/services/{service}"), &app.admin).await;
    }
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert!(metrics.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(metric(&metrics.text, series) - before >= 5.0, "counted under the route template: {}", metrics.text);
    assert!(metrics.text.contains("vouchsafe_http_request_duration_seconds_bucket"));
    assert!(!metrics.text.contains(&service), "ids must never become label values");
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let app = spawn_app().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"]),
        ("/v1/tenant", &["get"]),
        ("/v1/api-keys", &["get", "post"]),
        ("/v1/api-keys/{id}", &["delete"]),
        ("/v1/settings", &["get", "patch"]),
        ("/v1/services", &["get", "post"]),
        ("/v1/services/{id}", &["get", "patch", "delete"]),
        ("/v1/webhook-endpoints", &["get", "post"]),
        ("/v1/webhook-endpoints/{id}", &["get", "patch", "delete"]),
        ("/v1/webhook-endpoints/{id}/ping", &["post"]),
        ("/v1/webhook-endpoints/{id}/test", &["post"]),
        ("/v1/webhook-endpoints/{id}/rotate-secret", &["post"]),
        ("/v1/webhook-endpoints/{id}/deliveries", &["get"]),
        ("/v1/audit-events", &["get"]),
        ("/v1/audit-events/verify", &["get"]),
        ("/v1/credentials", &["get"]),
        ("/v1/credentials/{name}", &["put", "delete"]),
        ("/v1/providers", &["get"]),
        ("/v1/providers/{name}", &["put", "delete"]),
        ("/v1/verifications", &["post"]),
        ("/v1/verifications/check", &["post"]),
        ("/v1/verifications/{id}", &["get"]),
        ("/v1/verifications/{id}/cancel", &["post"]),
        ("/v1/deliveries", &["post"]),
        ("/v1/deliveries/{id}", &["get"]),
        ("/v1/provider-callbacks/twilio", &["post"]),
        ("/v1/users/{user_id}", &["put", "get", "delete"]),
        ("/v1/users/{user_id}/authenticators", &["get", "post"]),
        ("/v1/users/{user_id}/authenticators/{id}", &["delete"]),
        ("/v1/users/{user_id}/authenticators/{id}/confirm", &["post"]),
        ("/v1/users/{user_id}/authenticators/{id}/resync", &["post"]),
        ("/v1/users/{user_id}/challenges", &["post"]),
        ("/v1/challenges/{id}", &["get"]),
        ("/v1/challenges/{id}/verify", &["post"]),
        ("/v1/challenges/validate", &["post"]),
        ("/v1/caller-verifications", &["post"]),
        ("/v1/caller-verifications/{id}", &["get"]),
        ("/v1/caller-verifications/{id}/cancel", &["post"]),
        ("/v1/caller-verifications/{id}/check", &["post"]),
        ("/v1/records/{record_id}/transactions", &["get"]),
        ("/v2/Services", &["get", "post"]),
        ("/v2/Services/{Sid}", &["get", "post", "delete"]),
        ("/v2/Services/{ServiceSid}/Verifications", &["post"]),
        ("/v2/Services/{ServiceSid}/Verifications/{Sid}", &["get", "post"]),
        ("/v2/Services/{ServiceSid}/VerificationCheck", &["post"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} missing from /openapi.json"
            );
        }
    }
    let schemes = &doc.body["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    let error_codes = doc.body["components"]["schemas"]["ErrorCode"].to_string();
    for code in ["unauthorized", "forbidden", "not_found", "invalid_request", "payload_too_large"] {
        assert!(error_codes.contains(code), "{code} missing from ErrorCode");
    }
}

/// `docs/API.md` is the contract: its endpoint index lists exactly the
/// operations `/openapi.json` publishes, so neither can gain or lose an
/// endpoint without the other.
#[tokio::test]
async fn the_contract_page_and_openapi_list_the_same_operations() {
    let app = spawn_app().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    let mut published: Vec<String> = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            published.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md")).unwrap();
    let index = page.split("## Endpoint index").nth(1).expect("docs/API.md has an endpoint index");
    let mut documented: Vec<String> = index
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells.as_slice() {
                ["", method, path, ""] if path.starts_with('`') => Some(format!("{method} {}", path.trim_matches('`'))),
                _ => None,
            }
        })
        .collect();
    published.sort();
    documented.sort();
    assert!(published.len() > 50, "{published:?}");
    assert_eq!(documented, published, "docs/API.md's endpoint index and /openapi.json disagree");
}

#[tokio::test]
async fn docs_are_served_from_embedded_assets() {
    let app = spawn_app().await;
    let page = app.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("swagger-ui-bundle.js"));
    assert!(!page.text.contains("https://"), "the page must load nothing from the internet");
    let bundle = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let init = app.call(Method::GET, "/docs/swagger-initializer.js", None, None).await;
    assert!(init.text.contains("/openapi.json"));
    // Issue 16, item 13: the docs are not framed or sniffed either.
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self';"), "{csp}");
}

/// Issue 16, item 13: under the pages' strict policy, Swagger UI still
/// renders in Chromium, with no script or style refused.
#[tokio::test]
async fn the_docs_render_under_the_strict_policy() {
    let app = spawn_app().await;
    let mut browser = Browser::start(true).await;
    let loaded = browser
        .run(json!({"op": "load_watching_errors", "url": app.url("/docs/"), "selector": ".swagger-ui .info .title"}))
        .await;
    assert_eq!(loaded["status"], 200, "{loaded}");
    assert!(loaded["text"].as_str().unwrap().contains("vouchsafe"), "{loaded}");
    assert_eq!(loaded["errors"], json!([]), "nothing refused or failing: {loaded}");
}

/// Issue 16, item 6: an invented HTTP method is a valid token, but never a
/// label value: `/metrics` cannot be grown by a client.
#[tokio::test]
async fn invented_methods_do_not_become_metric_labels() {
    let app = spawn_app().await;
    for n in 0..50 {
        let method = Method::from_bytes(format!("ZZZ{n}{}", "Q".repeat(2_000)).as_bytes()).unwrap();
        app.call(method, "/healthz", None, None).await;
    }
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(!metrics.contains("ZZZ"), "an invented method became a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

/// Issue 16, items 10 and 22: answers are never for a cache, and a client's
/// request id is kept only when it cannot forge log fields.
#[tokio::test]
async fn answers_say_no_store_and_request_ids_have_a_safe_shape() {
    let app = spawn_app().await;
    let key = app.post("/v1/api-keys", &app.admin, serde_json::json!({"role": "agent", "name": "crm"})).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    assert_eq!(key.headers["cache-control"], "no-store");
    assert_eq!(app.get("/v1/tenant", &app.admin).await.headers["cache-control"], "no-store");
    let send = |id: &'static str| {
        let client = app.client.clone();
        let url = app.url("/healthz");
        async move { client.get(url).header("x-request-id", id).send().await.unwrap() }
    };
    assert_eq!(send("crm-42.abc_D").await.headers()["x-request-id"], "crm-42.abc_D");
    let too_long: &'static str = "a".repeat(65).leak();
    for forged in ["x method=DELETE tenant_id=ten_FAKE", "a\"b", too_long] {
        let got = send(forged).await;
        let id = got.headers()["x-request-id"].to_str().unwrap_or("").to_owned();
        assert!(!id.is_empty() && id != forged && !id.contains(' '), "{forged:?} came back as {id:?}");
    }
}

/// Issue 16, item 15: connections that send half a request line, nothing,
/// or a byte every so often are closed when the header-read time is up;
/// past the cap new connections are closed at once; healthy clients are
/// answered throughout.
#[tokio::test]
async fn idle_and_slow_connections_are_closed_and_capped() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vouchsafe_server::ConnectionLimits;

    let limits = ConnectionLimits { header_read: Duration::from_secs(2), max_connections: 20 };
    let app = crate::helpers::spawn_app_with_connections(limits).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // One whole request, then nothing: a kept-alive connection left idle.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 1024];
    assert!(kept.read(&mut answer).await.unwrap() > 0);
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HT").await.unwrap();
    let mut drip = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let dripping = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nX: " {
            if drip.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Duration::MAX
    });
    // Healthy clients are answered meanwhile.
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    for (name, mut stream) in [("silent", silent), ("half", half), ("kept-alive idle", kept)] {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the {name} connection was still open after 8 s");
    }
    let dripped = dripping.await.unwrap();
    assert!(dripped < Duration::from_secs(8), "a byte every 500 ms kept the connection open for {dripped:?}");
    // The cap: 20 idle connections fill it; the next is closed at once.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "past the cap a connection is closed unanswered");
    drop(held);
    // Slots come back when connections close.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
}
