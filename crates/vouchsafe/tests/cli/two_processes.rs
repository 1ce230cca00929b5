//! Two `vouchsafe serve` processes on one database (PostgreSQL under
//! `TEST_DB=postgres`, one SQLite file otherwise): 100 concurrent checks of
//! the same right code, split across both, approve it exactly once and
//! record exactly one event.

use serde_json::{Value, json};

use crate::helpers::{Server, workspace};
use crate::sms_receiver;

const ENV: &[(&str, &str)] = &[("VOUCHSAFE_ALLOW_PRIVATE_TARGETS", "true")];

async fn post(base: &str, secret: &str, path: &str, body: Value) -> Value {
    let reply =
        reqwest::Client::new().post(format!("{base}{path}")).bearer_auth(secret).json(&body).send().await.unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_right_code_checked_100_times_on_two_processes_approves_once() {
    let ws = workspace().await;
    let secret = ws.run_json(&["init", "--json"])["secret"].as_str().unwrap().to_owned();
    let (sms_port, codes) = sms_receiver::start().await.unwrap();
    let (a, b) = (Server::start_with(&ws, &[], ENV), Server::start_with(&ws, &[], ENV));
    let provider = sms_receiver::sms_provider(sms_port);
    let put = reqwest::Client::new()
        .put(format!("{}/v1/providers/loopback", a.base))
        .bearer_auth(&secret)
        .json(&provider)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());

    let mut approvals = 0;
    for round in 0..3 {
        let to = format!("+49151555000{round:02}");
        let started = post(&b.base, &secret, "/v1/verifications", json!({"to": to, "channel": "sms"})).await;
        let id = started["id"].as_str().unwrap().to_owned();
        let code = codes.code_for(&to).expect("the code reached the loopback gateway");
        let checks: Vec<_> = (0..100)
            .map(|n| {
                let base = if n % 2 == 0 { a.base.clone() } else { b.base.clone() };
                let (secret, body) = (secret.clone(), json!({"verification_id": id, "code": code}));
                tokio::spawn(async move { post(&base, &secret, "/v1/verifications/check", body).await })
            })
            .collect();
        let mut valid = 0;
        for check in checks {
            let answer = check.await.unwrap();
            assert_eq!(answer["status"], "approved", "every check sees it approved: {answer}");
            valid += usize::from(answer["valid"] == true);
        }
        assert_eq!(valid, 1, "exactly one of 100 checks across two processes is the approving one");
        approvals += valid;
    }
    let events = count_approved_events(&ws.db.url_text).await;
    assert_eq!(events, approvals as i64, "one verification.approved event per approval");
}

async fn count_approved_events(url: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM events WHERE type = 'verification.approved'";
    let (n,): (i64,) = if url.starts_with("postgres") {
        sqlx::query_as(sql).fetch_one(&sqlx::PgPool::connect(url).await.unwrap()).await.unwrap()
    } else {
        sqlx::query_as(sql).fetch_one(&sqlx::SqlitePool::connect(url).await.unwrap()).await.unwrap()
    };
    n
}
