//! Floods of answers against the real binary (issue 16, items 2 and 3):
//! recovery-code answers, whose Argon2id hashes are slow and large on
//! purpose, cannot exhaust memory or stall the server, and parallel wrong
//! answers cannot outrun the lockout.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Server, workspace};

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Api {
    client: reqwest::Client,
    base: String,
    secret: String,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.secret)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = reply.status();
        (status, reply.json().await.unwrap_or(Value::Null))
    }
}

async fn setup(threshold: u32) -> (Server, Api, crate::helpers::Workspace) {
    let ws = workspace().await;
    let out = ws.run_json(&["init", "--json"]);
    let server = Server::start(&ws, "info");
    let api = Api {
        client: reqwest::Client::new(),
        base: server.base.clone(),
        secret: out["secret"].as_str().unwrap().to_owned(),
    };
    let (status, body) = api
        .send(reqwest::Method::PATCH, "/v1/settings", json!({"lockout": {"threshold": threshold, "duration_s": 900}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (server, api, ws)
}

async fn recovery_user(api: &Api, user: &str) -> Vec<String> {
    let (status, body) = api.send(reqwest::Method::PUT, &format!("/v1/users/{user}"), json!({})).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = api
        .send(reqwest::Method::POST, &format!("/v1/users/{user}/authenticators"), json!({"type": "recovery_codes"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
}

async fn challenge(api: &Api, user: &str) -> String {
    let (status, body) = api
        .send(reqwest::Method::POST, &format!("/v1/users/{user}/challenges"), json!({"factor": "recovery_code"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// 200 concurrent wrong recovery answers over 40 challenges: peak memory
/// stays under 150 MiB, `/healthz` keeps answering, each challenge
/// evaluates no more answers than its attempts, and the surplus is refused
/// quickly with `429` and `Retry-After`.
#[tokio::test]
async fn a_flood_of_recovery_answers_is_bounded() {
    let (server, api, _ws) = setup(1000).await;
    eprintln!("peak RSS at start {} MiB", peak_rss_kib(server.child.id()) / 1024);
    recovery_user(&api, "u1").await;
    eprintln!("peak RSS after enrollment {} MiB", peak_rss_kib(server.child.id()) / 1024);
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(challenge(&api, "u1").await);
    }
    let api = std::sync::Arc::new(api);
    let mut answers = Vec::new();
    for n in 0..200 {
        let (api, id) = (api.clone(), ids[n % ids.len()].clone());
        answers.push(tokio::spawn(async move {
            api.send(reqwest::Method::POST, &format!("/v1/challenges/{id}/verify"), json!({"code": "zzzz-zzzz"})).await
        }));
    }
    // /healthz answers throughout.
    let mut slowest = Duration::ZERO;
    while answers.iter().any(|a| !a.is_finished()) {
        let started = Instant::now();
        let health = api.client.get(format!("{}/healthz", api.base)).timeout(Duration::from_secs(5)).send().await;
        assert!(health.is_ok_and(|h| h.status().is_success()), "/healthz stopped answering");
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut by_status = std::collections::BTreeMap::new();
    for answer in answers {
        let (status, body) = answer.await.unwrap();
        assert!(matches!(status.as_u16(), 200 | 429), "{status} {body}");
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["error"]["code"], "rate_limited");
        }
        *by_status.entry(status.as_u16()).or_insert(0) += 1;
    }
    let peak = peak_rss_kib(server.child.id());
    eprintln!("answers by status {by_status:?}; peak RSS {} MiB; slowest /healthz {slowest:?}", peak / 1024);
    assert!(peak < 150 * 1024, "peak RSS {} MiB", peak / 1024);
    // Every evaluated answer was counted, and no refused one.
    let mut used = 0;
    for id in &ids {
        let (_, c) = api.send(reqwest::Method::GET, &format!("/v1/challenges/{id}"), Value::Null).await;
        used += 5 - c["attempts_remaining"].as_u64().unwrap();
    }
    assert_eq!(used, by_status.get(&200).copied().unwrap_or(0), "attempts counted vs answers evaluated");
}

/// Parallel wrong answers over many challenges of one user: no more are
/// evaluated than the lockout threshold, the user is locked, and the lock
/// emits one `user.locked` however many answers raced.
#[tokio::test]
async fn parallel_wrong_answers_cannot_outrun_the_lockout() {
    let (_server, api, _ws) = setup(5).await;
    let codes = recovery_user(&api, "u2").await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(challenge(&api, "u2").await);
    }
    let api = std::sync::Arc::new(api);
    let mut answers = Vec::new();
    for n in 0..200 {
        let (api, id) = (api.clone(), ids[n % ids.len()].clone());
        // One right code among the wrong ones: it may win only before the lock.
        let code = if n == 150 { codes[0].clone() } else { "zzzz-zzzz".to_owned() };
        answers.push(tokio::spawn(async move {
            loop {
                let (status, body) = api
                    .send(reqwest::Method::POST, &format!("/v1/challenges/{id}/verify"), json!({"code": code}))
                    .await;
                if status != StatusCode::TOO_MANY_REQUESTS {
                    return (status, body);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    let mut evaluated = 0;
    let mut locked = 0;
    let mut approved = 0;
    for answer in answers {
        let (status, body) = answer.await.unwrap();
        match status.as_u16() {
            200 if body["status"] == "approved" => approved += 1,
            200 => evaluated += 1,
            423 => locked += 1,
            other => panic!("{other} {body}"),
        }
    }
    eprintln!("wrong answers evaluated {evaluated}, approved {approved}, refused as locked {locked}");
    // A right answer clears the failures counted so far, so it may open one
    // more window of five.
    assert!(evaluated <= 5 * (1 + approved), "{evaluated} wrong answers were evaluated ({approved} approved)");
    assert!(locked >= 189, "{locked}");
    let (_, user) = api.send(reqwest::Method::GET, "/v1/users/u2", Value::Null).await;
    assert!(user["locked_until"].is_string(), "{user}");
    let (_, audit) = api.send(reqwest::Method::GET, "/v1/audit-events?limit=1000", Value::Null).await;
    let locks = audit["events"].as_array().unwrap().iter().filter(|e| e["action"] == "user.locked").count();
    assert_eq!(locks, 1, "one lock, one user.locked: {audit}");
}
