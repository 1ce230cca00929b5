//! `vouchsafe serve` as a process: graceful shutdown on SIGTERM and SIGINT
//! with requests in flight finishing, and logs free of secrets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::helpers::{Server, workspace};

/// Starts a request, sends the signal while it is still arriving, then
/// completes it: the response must still come, and the process must exit 0.
fn request_in_flight_survives(signal: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(workspace());
    let mut server = Server::start(&ws, "info");
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: vouchsafe\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.signal(signal);
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(b"Connection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "the request in flight must finish: {response:?}");
    assert!(response.contains("\"ok\""));

    let status = server.wait_exit(Duration::from_secs(10)).expect("the server must exit after the signal");
    assert!(status.success(), "exit status {status:?}");
    // New connections are refused once it has stopped.
    assert!(TcpStream::connect(&addr).is_err());
    let log = server.log();
    assert!(log.contains(&format!("{signal} received")), "{log}");
    assert!(log.contains("database closed"), "{log}");
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    request_in_flight_survives("TERM");
}

#[test]
fn sigint_lets_requests_in_flight_finish() {
    request_in_flight_survives("INT");
}

#[tokio::test]
async fn logs_never_contain_secrets_even_at_trace_level() {
    let ws = workspace().await;
    let init = ws.run_json(&["init", "--json"]);
    let admin = init["secret"].as_str().unwrap().to_owned();
    let key_id = init["key_id"].as_str().unwrap().to_owned();
    let server = Server::start(&ws, "trace");
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);

    client.get(url("/v1/tenant")).bearer_auth(&admin).send().await.unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key_id}:{admin}"));
    client.get(url("/v1/settings")).header("authorization", format!("Basic {basic}")).send().await.unwrap();
    let created: serde_json::Value = client
        .post(url("/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"role": "agent"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = created["secret"].as_str().unwrap().to_owned();
    client.get(url("/v1/tenant")).bearer_auth(&new_secret).send().await.unwrap();
    // A wrong secret, one character off, is not logged either.
    let wrong = format!("{}x", &admin[..admin.len() - 1]);
    client.get(url("/v1/tenant")).bearer_auth(&wrong).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = server.log();
    assert!(log.contains("API key created"), "the log must show the requests at all:\n{log}");
    for secret in [&admin, &new_secret, &wrong] {
        assert!(!log.contains(&secret[4..]), "a secret reached the log");
    }
    assert!(!log.contains(&basic), "an Authorization header reached the log");
}
