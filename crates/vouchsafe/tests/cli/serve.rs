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
    let mut server = Server::start(&ws, "trace");
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
    let log = server.stop();
    assert!(log.contains("API key created"), "the log must show the requests at all:\n{log}");
    for secret in [&admin, &new_secret, &wrong] {
        assert!(!log.contains(&secret[4..]), "a secret reached the log");
    }
    assert!(!log.contains(&basic), "an Authorization header reached the log");
}

/// A one-route HTTP sink on loopback standing in for an SMS gateway: it
/// answers 200 and hands each request body to the test.
async fn gateway_sink() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            let _ = tx.send(body.to_owned());
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn codes_credentials_and_numbers_stay_out_of_the_logs() {
    let ws = workspace().await;
    let init = ws.run_json(&["init", "--json"]);
    let admin = init["secret"].as_str().unwrap().to_owned();
    let mut server =
        Server::start_with(&ws, &[], &[("VOUCHSAFE_LOG", "trace"), ("VOUCHSAFE_ALLOW_PRIVATE_TARGETS", "true")]);
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);
    let (gateway, mut bodies) = gateway_sink().await;
    let token = "gateway-token-that-must-stay-secret";
    let put = |path: &str, body: serde_json::Value| client.put(url(path)).bearer_auth(&admin).json(&body).send();
    assert!(put("/v1/credentials/gw", json!({"type": "bearer", "token": token})).await.unwrap().status().is_success());
    let provider = json!({"type": "http", "priority": 1, "credential": "gw",
        "settings": {"url": gateway, "body_template": "{\"to\":\"{to}\",\"text\":\"{message}\"}"}});
    assert!(put("/v1/providers/gateway", provider).await.unwrap().status().is_success());
    let number = "+447400123456";
    let started = client
        .post(url("/v1/verifications"))
        .bearer_auth(&admin)
        .json(&json!({"to": number, "channel": "sms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let body: serde_json::Value = serde_json::from_str(&bodies.recv().await.unwrap()).unwrap();
    let code = body["text"].as_str().unwrap().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    for guess in ["000000", code.as_str()] {
        client
            .post(url("/v1/verifications/check"))
            .bearer_auth(&admin)
            .json(&json!({"to": number, "code": guess}))
            .send()
            .await
            .unwrap();
    }
    let log = server.stop();
    assert!(log.contains("verification code sent") && log.contains("verification approved"), "{log}");
    assert!(log.contains("+44********56"), "numbers are logged masked");
    assert!(!log.contains(&code), "a code reached the log");
    assert!(!log.contains(token), "a credential reached the log");
    assert!(!log.contains("7400123456"), "a whole phone number reached the log");
}
