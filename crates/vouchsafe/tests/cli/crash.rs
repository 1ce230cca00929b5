//! Crash safety (issue 8's fault suite): the server is killed with SIGKILL
//! twenty times in the middle of mixed load (starts and resends, right and
//! wrong codes, TOTP challenges) and restarted each time. The load keeps a
//! ledger of every answer it got; afterwards the database must agree with
//! it: no approval lost or doubled, no attempt counter gone back, no TOTP
//! step accepted twice, and every event recorded reaches the webhook
//! receiver.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use vouchsafe_otp::{Algorithm, Secret, Totp};

use crate::dice::Dice;
use crate::helpers::{Server, Workspace, workspace};
use crate::receiver::Receiver;
use crate::sms_receiver;

const CYCLES: usize = 20;
const DESTINATIONS: usize = 30;

const ENV: &[(&str, &str)] = &[
    ("VOUCHSAFE_ALLOW_PRIVATE_TARGETS", "true"),
    ("VOUCHSAFE_WEBHOOK_RETRY_SCHEDULE_S", "0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1"),
    ("VOUCHSAFE_WEBHOOK_POLL_INTERVAL_MS", "20"),
];

/// What the load was told, answer by answer.
#[derive(Default)]
struct Ledger {
    /// Verification id → its destination.
    started: HashMap<String, String>,
    /// Verification id → how many checks answered `valid: true`.
    approvals: HashMap<String, u32>,
    /// Verification id → the fewest attempts remaining any answer gave.
    fewest_remaining: HashMap<String, i64>,
    /// TOTP step → how many challenge answers accepted a code of it.
    totp_steps: HashMap<u64, u32>,
    /// TOTP answers the server replied to, by status (diagnostic).
    totp_answers: HashMap<String, u32>,
    wrong_checks: usize,
}

fn destination(n: usize) -> String {
    format!("+4915123450{n:03}")
}

/// A request whose answer is `None` when the server died under it.
async fn call(client: &reqwest::Client, base: &str, secret: &str, path: &str, body: Value) -> Option<(u16, Value)> {
    let reply = client.post(format!("{base}{path}")).bearer_auth(secret).json(&body).send().await.ok()?;
    let status = reply.status().as_u16();
    Some((status, reply.json().await.ok()?))
}

/// Set when the load should stop: a little after the kill, so requests are
/// in flight when it lands.
type Stop = Arc<AtomicBool>;

/// The longest a cycle waits for its first approval before the kill: on a
/// starved machine a cycle that approved nothing would prove nothing.
const PROGRESS_WAIT: Duration = Duration::from_secs(10);

async fn starter(base: String, secret: String, ledger: Arc<Mutex<Ledger>>, stop: Stop) {
    let (client, mut dice) = (reqwest::Client::new(), Dice::from_clock());
    while !stop.load(Ordering::Relaxed) {
        let to = destination(dice.below(DESTINATIONS));
        if let Some((200 | 201, v)) =
            call(&client, &base, &secret, "/v1/verifications", json!({"to": to, "channel": "sms"})).await
        {
            ledger.lock().unwrap().started.insert(v["id"].as_str().unwrap().to_owned(), to);
        }
    }
}

async fn checker(
    base: String,
    secret: String,
    ledger: Arc<Mutex<Ledger>>,
    codes: Arc<sms_receiver::Received>,
    right: bool,
    stop: Stop,
) {
    let (client, mut dice) = (reqwest::Client::new(), Dice::from_clock());
    while !stop.load(Ordering::Relaxed) {
        let picked = {
            let ledger = ledger.lock().unwrap();
            let n = ledger.started.len();
            (n > 0).then(|| ledger.started.iter().nth(dice.below(n)).map(|(id, to)| (id.clone(), to.clone()))).flatten()
        };
        let Some((id, to)) = picked else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let code = if right { codes.code_for(&to).unwrap_or_default() } else { "0000000000".to_owned() };
        let body = json!({"verification_id": id, "code": code});
        if let Some((200, v)) = call(&client, &base, &secret, "/v1/verifications/check", body).await {
            let mut ledger = ledger.lock().unwrap();
            if v["valid"] == true {
                *ledger.approvals.entry(id.clone()).or_default() += 1;
            }
            if !right {
                ledger.wrong_checks += 1;
            }
            let remaining = v["attempts_remaining"].as_i64().unwrap();
            let fewest = ledger.fewest_remaining.entry(id).or_insert(remaining);
            *fewest = (*fewest).min(remaining);
        }
    }
}

/// Opens a TOTP challenge and answers it, over and over: with the next
/// step (the newest the drift window allows) while no answer has told the
/// load it was accepted, so every cycle tries to get a step through, and
/// otherwise with the current step or a neighbour, so steps already
/// accepted are replayed across challenges and across crashes, and must
/// never be accepted twice.
async fn totp_user(base: String, secret: String, ledger: Arc<Mutex<Ledger>>, totp: Arc<Totp>, stop: Stop) {
    let (client, mut dice) = (reqwest::Client::new(), Dice::from_clock());
    while !stop.load(Ordering::Relaxed) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let next = totp.step(now) + 1;
        let step = if ledger.lock().unwrap().totp_steps.contains_key(&next) {
            totp.step(now) + dice.below(3) as u64 - 1
        } else {
            next
        };
        let Some((201, challenge)) =
            call(&client, &base, &secret, "/v1/users/crash-user/challenges", json!({"factor": "totp"})).await
        else {
            continue;
        };
        let path = format!("/v1/challenges/{}/verify", challenge["id"].as_str().unwrap());
        if let Some((status, v)) = call(&client, &base, &secret, &path, json!({"code": totp.generate_step(step)})).await
        {
            let mut ledger = ledger.lock().unwrap();
            let outcome = format!("{status} {}", v["status"].as_str().or(v["code"].as_str()).unwrap_or("?"));
            *ledger.totp_answers.entry(outcome).or_default() += 1;
            if status == 200 && v["status"] == "approved" {
                *ledger.totp_steps.entry(step).or_default() += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn admin_call(server: &Server, secret: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap()
}

/// Settings, the loopback SMS provider, the webhook endpoint and the TOTP
/// user; returns the TOTP generator and the step its confirmation spent.
async fn set_up(server: &Server, secret: &str, sms_port: u16, hooks: &Receiver) -> (Totp, i64) {
    use reqwest::Method;
    let settings = json!({"otp": {"resend_cooldown_s": 0, "max_sends": 100},
        "lockout": {"threshold": 1000},
        "fraud": {"max_sends_per_destination_per_hour": 10000, "max_sends_per_prefix_per_hour": 1000000}});
    admin_call(server, secret, Method::PATCH, "/v1/settings", settings).await;
    let provider = sms_receiver::sms_provider(sms_port);
    admin_call(server, secret, Method::PUT, "/v1/providers/loopback", provider).await;
    let endpoint = admin_call(server, secret, Method::POST, "/v1/webhook-endpoints", json!({"url": hooks.url})).await;
    hooks.configure(json!({"secret": endpoint["secret"]})).await;

    admin_call(server, secret, Method::PUT, "/v1/users/crash-user", json!({})).await;
    let enrolled =
        admin_call(server, secret, Method::POST, "/v1/users/crash-user/authenticators", json!({"type": "totp"})).await;
    let secret_b32 = enrolled["secret"].as_str().unwrap();
    let totp = Totp::new(&Secret::parse_base32(secret_b32).unwrap(), 6, 30, Algorithm::Sha1).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    // Confirming spends a step; the load's first acceptances come later.
    let confirm = format!("/v1/users/crash-user/authenticators/{}/confirm", enrolled["id"].as_str().unwrap());
    admin_call(server, secret, Method::POST, &confirm, json!({"code": totp.generate(now)})).await;
    (totp, totp_step_of(now))
}

/// The TOTP step of Unix time `now` (30 s steps, as the test's token).
fn totp_step_of(now: u64) -> i64 {
    i64::try_from(now / 30).unwrap_or(i64::MAX)
}

/// The crash user's TOTP counter as stored: the last step the server accepted.
async fn stored_totp_counter(ws: &Workspace) -> i64 {
    let sql = "SELECT counter FROM authenticators WHERE user_id = 'crash-user'";
    let url = &ws.db.url_text;
    let (counter,): (i64,) = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_one(&pool).await.unwrap()
    };
    counter
}

/// The rows the server wrote, read from the database itself.
async fn stored(ws: &Workspace) -> (Vec<String>, Vec<String>) {
    let messages = "SELECT event_id FROM webhook_messages";
    let approved_events = "SELECT body FROM events WHERE type = 'verification.approved'";
    let url = &ws.db.url_text;
    let (ids, bodies): (Vec<(String,)>, Vec<(String,)>) = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        (
            sqlx::query_as(messages).fetch_all(&pool).await.unwrap(),
            sqlx::query_as(approved_events).fetch_all(&pool).await.unwrap(),
        )
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        (
            sqlx::query_as(messages).fetch_all(&pool).await.unwrap(),
            sqlx::query_as(approved_events).fetch_all(&pool).await.unwrap(),
        )
    };
    (ids.into_iter().map(|(i,)| i).collect(), bodies.into_iter().map(|(b,)| b).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_mixed_load_twenty_times_loses_and_doubles_nothing() {
    let ws = workspace().await;
    let secret = ws.run_json(&["init", "--json"])["secret"].as_str().unwrap().to_owned();
    let (sms_port, codes) = sms_receiver::start().await.unwrap();
    let hooks = Receiver::start();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut dice = Dice::from_clock();
    let mut totp = None;
    let mut confirmed_step = i64::MAX;

    for cycle in 0..CYCLES {
        let mut server = Server::start_with(&ws, &[], ENV);
        if cycle == 0 {
            let (generator, step) = set_up(&server, &secret, sms_port, &hooks).await;
            totp = Some(Arc::new(generator));
            confirmed_step = step;
        }
        let totp = totp.clone().unwrap();
        let kill_after = Duration::from_millis(150 + dice.below(350) as u64);
        let stop = Stop::default();
        let approved_before = ledger.lock().unwrap().approvals.len();
        let base = server.base.clone();
        let mut load = Vec::new();
        for _ in 0..2 {
            load.push(tokio::spawn(starter(base.clone(), secret.clone(), ledger.clone(), stop.clone())));
        }
        for right in [true, true, false, false] {
            load.push(tokio::spawn(checker(
                base.clone(),
                secret.clone(),
                ledger.clone(),
                codes.clone(),
                right,
                stop.clone(),
            )));
        }
        load.push(tokio::spawn(totp_user(base.clone(), secret.clone(), ledger.clone(), totp, stop.clone())));
        tokio::time::sleep(kill_after).await;
        let waiting = Instant::now();
        while ledger.lock().unwrap().approvals.len() == approved_before && waiting.elapsed() < PROGRESS_WAIT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.signal("KILL");
        server.wait_exit(Duration::from_secs(10)).expect("SIGKILL ends the process");
        // Load runs past the kill, so requests are in flight when it lands.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.store(true, Ordering::Relaxed);
        for task in load {
            task.await.unwrap();
        }
    }

    // The last restart: let the outbox drain, then compare.
    let server = Server::start_with(&ws, &[], ENV);
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let mut mismatches = Vec::new();
    for (id, answers) in &ledger.approvals {
        if *answers != 1 {
            mismatches.push(format!("{id}: approved by {answers} checks"));
        }
    }
    for (id, fewest) in &ledger.fewest_remaining {
        let v = server.get_json(&secret, &format!("/v1/verifications/{id}")).await;
        if ledger.approvals.contains_key(id) && v["status"] != "approved" {
            mismatches.push(format!("{id}: answered approved, stored {}", v["status"]));
        }
        if v["attempts_remaining"].as_i64().unwrap() > *fewest {
            mismatches.push(format!("{id}: {fewest} attempts remaining answered, {} stored", v["attempts_remaining"]));
        }
    }
    for (step, accepted) in &ledger.totp_steps {
        if *accepted > 1 {
            mismatches.push(format!("TOTP step {step} accepted {accepted} times"));
        }
    }

    let (messages, approved_events) = stored(&ws).await;
    let mut approved_by_event = HashMap::<String, u32>::new();
    for body in &approved_events {
        let body: Value = serde_json::from_str(body).unwrap();
        *approved_by_event.entry(body["data"]["verification_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    for id in ledger.approvals.keys() {
        if approved_by_event.get(id) != Some(&1) {
            mismatches.push(format!("{id}: {:?} verification.approved events", approved_by_event.get(id)));
        }
    }
    if let Some((id, n)) = approved_by_event.iter().find(|(_, n)| **n > 1) {
        mismatches.push(format!("{id}: {n} verification.approved events"));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let received: HashSet<String> = loop {
        let got = hooks.received().await;
        let verified: HashSet<String> =
            got.iter().filter(|r| r["verified"] == true).filter_map(|r| r["id"].as_str().map(str::to_owned)).collect();
        if messages.iter().all(|m| verified.contains(m)) || Instant::now() > deadline {
            break verified;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let undelivered = messages.iter().filter(|m| !received.contains(*m)).count();
    if undelivered > 0 {
        mismatches.push(format!("{undelivered} of {} recorded events never reached the receiver", messages.len()));
    }

    eprintln!(
        "crash suite: {CYCLES} SIGKILL cycles; {} verifications started, {} approvals answered, {} wrong codes \
         answered, {} TOTP steps accepted (answers: {:?}); {} events recorded, all delivered: {}; mismatches: {}",
        ledger.started.len(),
        ledger.approvals.len(),
        ledger.wrong_checks,
        ledger.totp_steps.len(),
        ledger.totp_answers,
        messages.len(),
        undelivered == 0,
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "the database disagrees with the answers given:\n{}", mismatches.join("\n"));
    assert!(ledger.approvals.len() >= CYCLES, "the load approved too little to prove anything");
    assert!(ledger.wrong_checks >= CYCLES, "the load counted too few wrong codes to prove anything");
    // An acceptance whose answer a SIGKILL cut off is not in the ledger (and
    // the load then replays that step until the clock moves on); the stored
    // counter past the confirmation's step shows the server accepted one.
    let counter = stored_totp_counter(&ws).await;
    assert!(
        !ledger.totp_steps.is_empty() || counter > confirmed_step,
        "no TOTP code was accepted at all (stored counter {counter}, confirmation step {confirmed_step})"
    );
    drop(server);
}
