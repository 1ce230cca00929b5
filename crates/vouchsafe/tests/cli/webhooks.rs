//! The outbox across processes: events pending when the server is killed
//! (SIGKILL) all arrive after a restart, and two server processes sharing
//! one database deliver each event exactly once.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Server, Workspace, workspace};
use crate::receiver::Receiver;

const FAST_RETRIES: &[(&str, &str)] = &[
    ("VOUCHSAFE_ALLOW_PRIVATE_TARGETS", "true"),
    ("VOUCHSAFE_WEBHOOK_RETRY_SCHEDULE_S", "0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1"),
    ("VOUCHSAFE_WEBHOOK_POLL_INTERVAL_MS", "20"),
];

async fn call(server: &Server, secret: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", server.base)).bearer_auth(secret);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let reply = req.send().await.unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap_or(Value::Null)
}

async fn send_test_events(server: &Server, secret: &str, endpoint: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let reply =
            call(server, secret, reqwest::Method::POST, &format!("/v1/webhook-endpoints/{endpoint}/test"), None).await;
        ids.push(reply["event_id"].as_str().unwrap().to_owned());
    }
    ids
}

fn admin(ws: &Workspace) -> String {
    ws.run_json(&["init", "--json"])["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn events_pending_at_sigkill_all_arrive_after_restart() {
    let ws = workspace().await;
    let secret = admin(&ws);
    // A port with nobody listening yet: every attempt fails until the receiver starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut first = Server::start_with(&ws, &[], FAST_RETRIES);
    let url = format!("http://127.0.0.1:{port}/hook");
    let created =
        call(&first, &secret, reqwest::Method::POST, "/v1/webhook-endpoints", Some(json!({"url": url}))).await;
    let endpoint = created["id"].as_str().unwrap().to_owned();
    let sent = send_test_events(&first, &secret, &endpoint, 5).await;

    // Wait until every event has failed at least once, so all are mid-schedule.
    let log_path = format!("/v1/webhook-endpoints/{endpoint}/deliveries?limit=200");
    for _ in 0..200 {
        let log = call(&first, &secret, reqwest::Method::GET, &log_path, None).await;
        let tried: HashSet<_> = log["deliveries"].as_array().unwrap().iter().map(|a| a["event_id"].clone()).collect();
        if tried.len() == sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).expect("SIGKILL ends the process");

    let receiver = Receiver::start_on(port);
    receiver.configure(json!({"secret": created["secret"]})).await;
    let _second = Server::start_with(&ws, &[], FAST_RETRIES);
    let mut arrived = HashSet::new();
    for _ in 0..400 {
        arrived = receiver
            .received()
            .await
            .iter()
            .filter(|r| r["verified"] == true)
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        if arrived.len() == sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sent: HashSet<_> = sent.into_iter().collect();
    assert_eq!(arrived, sent, "every event pending at the crash must arrive, signed, after the restart");
}

fn delivered_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("vouchsafe_webhook_deliveries_total{outcome=\"delivered\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_processes_on_one_database_deliver_each_event_once() {
    let ws = workspace().await;
    let secret = admin(&ws);
    // Both dispatchers poll every 10 ms, so they often claim at the same moment.
    let eager: Vec<(&str, &str)> = FAST_RETRIES
        .iter()
        .copied()
        .filter(|(k, _)| !k.ends_with("POLL_INTERVAL_MS"))
        .chain([("VOUCHSAFE_WEBHOOK_POLL_INTERVAL_MS", "10")])
        .collect();
    let a = Server::start_with(&ws, &[], &eager);
    let b = Server::start_with(&ws, &[], &eager);
    let receiver = Receiver::start();
    // A slow receiver widens the window in which both dispatchers look at the same rows.
    let created =
        call(&a, &secret, reqwest::Method::POST, "/v1/webhook-endpoints", Some(json!({"url": receiver.url}))).await;
    receiver.configure(json!({"secret": created["secret"], "delay_ms": 30})).await;
    let endpoint = created["id"].as_str().unwrap();
    // Bursts from both processes at once.
    let mut sent = Vec::new();
    for _ in 0..6 {
        let (x, y) =
            tokio::join!(send_test_events(&a, &secret, endpoint, 5), send_test_events(&b, &secret, endpoint, 5));
        sent.extend(x);
        sent.extend(y);
    }
    let got = receiver.wait_for(sent.len(), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if got.len() >= sent.len() { receiver.received().await } else { got };

    assert_eq!(got.len(), sent.len(), "each event exactly once, never twice");
    let ids: HashSet<_> = got.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, sent.iter().cloned().collect::<HashSet<_>>());
    assert!(got.iter().all(|r| r["verified"] == true));
    let metrics = |s: &Server| {
        let url = format!("{}/metrics", s.base);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let (ma, mb) = (delivered_count(&metrics(&a).await), delivered_count(&metrics(&b).await));
    eprintln!("deliveries by process: {ma} + {mb}");
    assert_eq!(ma + mb, sent.len() as u64, "deliveries by process: {ma} + {mb}");
}

/// Issue 17: `vouchsafe webhooks create` registers an endpoint as the API
/// does — the outbound-address rule, the event filter, an audited, sealed
/// secret shown once — and that secret signs what the server delivers.
#[tokio::test]
async fn the_cli_registers_an_endpoint_whose_secret_signs_deliveries() {
    let ws = workspace().await;
    let secret = admin(&ws);
    let receiver = Receiver::start();
    let refused = ws.run(&["webhooks", "create", "--url", &receiver.url, "--json"]);
    assert!(!refused.status.success(), "loopback is refused without the development switch");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--url"), "{refused:?}");
    let bad_event = ws.run(&["webhooks", "create", "--url", "https://crm.example.test/h", "--events", "nope"]);
    assert!(!bad_event.status.success() && String::from_utf8_lossy(&bad_event.stderr).contains("--events"));

    let mut command = ws.command(&[
        "webhooks",
        "create",
        "--url",
        &receiver.url,
        "--events",
        "caller_verification.completed,ping",
        "--json",
    ]);
    let out = command.env("VOUCHSAFE_ALLOW_PRIVATE_TARGETS", "true").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hook_secret = created["secret"].as_str().unwrap();
    assert!(hook_secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["events"], json!(["caller_verification.completed", "ping"]));
    receiver.configure(json!({"secret": hook_secret})).await;

    let server = Server::start_with(&ws, &[], FAST_RETRIES);
    let endpoint = created["id"].as_str().unwrap();
    let listed = call(&server, &secret, reqwest::Method::GET, &format!("/v1/webhook-endpoints/{endpoint}"), None).await;
    assert_eq!(listed["url"], receiver.url.as_str());
    send_test_events(&server, &secret, endpoint, 1).await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["verified"], true, "standardwebhooks verified it with the CLI's secret: {got:?}");
    let audit = call(&server, &secret, reqwest::Method::GET, "/v1/audit-events", None).await;
    let created_by_cli = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "webhook_endpoint.created" && e["actor"] == "cli" && e["target"] == endpoint);
    assert!(created_by_cli, "{audit}");
}
