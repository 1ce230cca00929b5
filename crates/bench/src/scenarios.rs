//! The HTTP scenarios, against one running server: seeding through the
//! public API, then each scenario at each concurrency.
//!
//! Codes go out through an `http` provider to a loopback receiver that
//! answers at once (the no-op provider of the run), which also lets the
//! load know the right codes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::load::{self, MakeRequest, Measurement};
use crate::receiver::{self, Received};
use crate::server::Server;

/// Verifications seeded per concurrency for wrong-code checks.
const WRONG_POOL: usize = 20_000;
/// Wrong codes each of them takes: the most the settings allow, set in
/// `configure`. Never more, or later checks would meet a verification
/// that is already over and measure an answer without a write.
const WRONG_ATTEMPTS: usize = 20;
/// Verifications seeded per concurrency for right-code checks (one each):
/// enough for three seconds at 15,000 approvals/s (15,000 ran out in one
/// second), at the cost of seeding them through the API first.
const RIGHT_POOL: usize = 45_000;

/// The same `GET` every time.
fn get(path: &str, secret: Option<&str>) -> MakeRequest {
    let request = load::get(path, secret);
    Arc::new(move |_| Some(request.clone()))
}

/// The body that starts an SMS verification to German mobile number `n`.
fn start_body(n: usize) -> serde_json::Value {
    serde_json::json!({"to": format!("+49151{n:08}"), "channel": "sms"})
}

/// Starts verifications by SMS to distinct German mobile numbers from `first`.
fn starts(server: &Server, first: usize) -> MakeRequest {
    let secret = server.secret.clone();
    Arc::new(move |n| Some(load::post_json("/v1/verifications", Some(&secret), &start_body(first + n))))
}

/// What a check answers, as far as the load looks.
#[derive(serde::Deserialize)]
struct Checked {
    valid: bool,
}

/// Checks the right code against each verification of `ids` once, or a
/// wrong code against each `WRONG_ATTEMPTS` times, round the pool, until
/// they run out (see [`load::rounds`]).
fn checks(server: &Server, ids: &[(String, String)], wrong: bool) -> MakeRequest {
    let requests = ids
        .iter()
        .map(|(id, code)| {
            let code = if wrong { "0000000000" } else { code.as_str() };
            let body = serde_json::json!({"verification_id": id, "code": code});
            load::post_json("/v1/verifications/check", Some(&server.secret), &body)
        })
        .collect();
    load::rounds(requests, if wrong { WRONG_ATTEMPTS } else { 1 })
}

/// Lifts the send limits (the benchmark sends to many numbers from one
/// tenant) and routes SMS through an `http` provider to the receiver.
pub(crate) async fn configure(server: &Server, receiver_port: u16) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let limits = serde_json::json!({"otp": {"max_check_attempts": WRONG_ATTEMPTS, "resend_cooldown_s": 0},
        "fraud": {"max_sends_per_destination_per_hour": 10000, "max_sends_per_prefix_per_hour": 1000000,
                  "max_sends_per_tenant_per_hour": 100000000}});
    let patched =
        client.patch(format!("{}/v1/settings", server.base)).bearer_auth(&server.secret).json(&limits).send().await?;
    if !patched.status().is_success() {
        bail!("could not lift the send limits: {}", patched.text().await?);
    }
    let provider = receiver::sms_provider(receiver_port);
    let put = client
        .put(format!("{}/v1/providers/loopback", server.base))
        .bearer_auth(&server.secret)
        .json(&provider)
        .send()
        .await?;
    if !put.status().is_success() {
        bail!("could not add the loopback provider: {}", put.text().await?);
    }
    Ok(())
}

/// Starts `count` verifications from number `first` at concurrency 64 and
/// returns their ids with the codes the receiver got.
async fn seed(
    server: &Server,
    received: &Received,
    first: usize,
    count: usize,
) -> anyhow::Result<Arc<Vec<(String, String)>>> {
    let client = reqwest::Client::new();
    let url = format!("{}/v1/verifications", server.base);
    let mut seeded = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&n| {
                let req = client.post(&url).bearer_auth(&server.secret).json(&start_body(first + n));
                tokio::spawn(async move { req.send().await?.json::<serde_json::Value>().await })
            })
            .collect();
        for task in tasks {
            let v = task.await??;
            if let (Some(id), Some(to)) = (v["id"].as_str(), v["to"].as_str()) {
                let code = received.code_for(to).context("the receiver got no code")?;
                seeded.push((id.to_owned(), code));
            }
        }
    }
    if seeded.len() < count {
        bail!("only {} of {count} verifications could be started", seeded.len());
    }
    Ok(Arc::new(seeded))
}

/// The scenarios `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Healthz,
    Tenant,
    WrongCode,
    RightCode,
    Start,
    Webhooks,
    Mixed,
    Totp,
}

/// The scenarios asked for; none named means all of them.
pub struct Wanted(pub Vec<Scenario>);

impl Wanted {
    pub fn has(&self, scenario: Scenario) -> bool {
        self.0.is_empty() || self.0.contains(&scenario)
    }
}

/// Every HTTP scenario wanted at every concurrency, on one server.
pub async fn run(
    server: &Server,
    concurrencies: &[usize],
    seconds: u64,
    wanted: &Wanted,
) -> anyhow::Result<Vec<Measurement>> {
    let (receiver_port, received) = receiver::start().await?;
    configure(server, receiver_port).await?;
    let mut out = Vec::new();
    let target = server.target();
    let top = concurrencies.iter().copied().max().unwrap_or(64);
    if wanted.has(Scenario::Healthz) {
        out.push(
            load::run("GET /healthz (no auth, no database)", &target, get("/healthz", None), None, top, seconds).await,
        );
    }
    if wanted.has(Scenario::Tenant) {
        out.push(
            load::run(
                "GET /v1/tenant (API-key auth + 2 reads)",
                &target,
                get("/v1/tenant", Some(&server.secret)),
                None,
                top,
                seconds,
            )
            .await,
        );
    }
    let mut next_number = 0;
    for &c in concurrencies {
        if wanted.has(Scenario::WrongCode) {
            eprintln!("  seeding {WRONG_POOL} verifications for wrong codes");
            let wrong_pool = seed(server, &received, next_number, WRONG_POOL).await?;
            next_number += WRONG_POOL;
            // A wrong code must be refused: an answer of `valid: true` is an error.
            let refused = load::accept_json(|checked: Checked| !checked.valid);
            let wrong = checks(server, &wrong_pool, true);
            out.push(load::run("POST /v1/verifications/check, wrong code", &target, wrong, refused, c, seconds).await);
        }
        if wanted.has(Scenario::RightCode) {
            eprintln!("  seeding {RIGHT_POOL} verifications for right codes");
            let right_pool = seed(server, &received, next_number, RIGHT_POOL).await?;
            next_number += RIGHT_POOL;
            out.push(
                load::run(
                    "POST /v1/verifications/check, right code (approves)",
                    &target,
                    checks(server, &right_pool, false),
                    load::accept_json(|checked: Checked| checked.valid),
                    c,
                    seconds,
                )
                .await,
            );
        }
        if wanted.has(Scenario::Start) {
            out.push(
                load::run(
                    "POST /v1/verifications (sms via loopback http provider)",
                    &target,
                    starts(server, 20_000_000 + 1_000_000 * c),
                    None,
                    c,
                    seconds,
                )
                .await,
            );
        }
    }
    Ok(out)
}

/// Times the webhook dispatcher twice. Live: events are queued through the
/// API by the load generator at concurrency 64 while they are delivered to
/// a loopback receiver (outbox write, claim, sign, POST, record); when
/// delivery keeps pace with queueing, that rate is a floor of what the
/// dispatcher can do. Backlog: the receiver holds every delivery while
/// events are queued, so all but the attempts held in flight wait in the
/// outbox; then it answers, and the drain of that backlog is the
/// dispatcher's own rate, with nothing else running.
pub async fn webhook_throughput(server: &Server) -> anyhow::Result<WebhookThroughput> {
    const EVENTS: usize = 10_000;
    const BACKLOG: usize = 6_000;
    let (port, received) = receiver::start().await?;
    let endpoints = webhook_endpoints(server, port, EVENTS).await?;
    let started = Instant::now();
    let queueing = queue_test_events(server, &endpoints, EVENTS).await;
    let enqueue_s = started.elapsed().as_secs_f64();
    let queued = queueing.requests;
    wait_for_hooks(&received, queued, started).await;
    let total_s = started.elapsed().as_secs_f64();
    let delivered = received.hooks();
    delete_webhook_endpoints(server, &endpoints).await?;

    let endpoints = webhook_endpoints(server, port, BACKLOG).await?;
    let before = received.hooks();
    received.set_gate(false);
    let backlog = queue_test_events(server, &endpoints, BACKLOG).await.requests;
    let held = received.hooks() - before;
    eprintln!("  webhook dispatch: {backlog} queued while {held} deliveries were held; draining");
    let released = Instant::now();
    received.set_gate(true);
    wait_for_hooks(&received, before + backlog, released).await;
    let drain_s = released.elapsed().as_secs_f64();
    let drained = received.hooks() - before - held;
    delete_webhook_endpoints(server, &endpoints).await?;
    Ok(WebhookThroughput {
        queued,
        enqueue_s,
        delivered,
        total_s,
        per_second: delivered as f64 / total_s,
        queueing,
        backlog: drained,
        held,
        drain_s,
        drain_per_second: drained as f64 / drain_s,
    })
}

/// Endpoints of one tenant, all pointing at the receiver on `port`,
/// enough for `events` test events: those are limited to 60 per endpoint
/// per hour, so 50 go to each.
async fn webhook_endpoints(server: &Server, port: u16, events: usize) -> anyhow::Result<Arc<Vec<String>>> {
    const PER_ENDPOINT: usize = 50;
    let mut endpoints = Vec::new();
    for n in 0..events.div_ceil(PER_ENDPOINT) {
        endpoints.push(server.create_webhook_endpoint(&format!("http://127.0.0.1:{port}/hook/{n}")).await?);
    }
    eprintln!("  webhook dispatch: {events} events over {} endpoints", endpoints.len());
    Ok(Arc::new(endpoints))
}

/// Queues `events` test events over `endpoints` at concurrency 64.
async fn queue_test_events(server: &Server, endpoints: &Arc<Vec<String>>, events: usize) -> Measurement {
    let (secret, targets) = (server.secret.clone(), endpoints.clone());
    let make: MakeRequest = Arc::new(move |n| {
        let id = targets.get(n % targets.len())?;
        (n < events).then(|| load::request("POST", &format!("/v1/webhook-endpoints/{id}/test"), Some(&secret), None))
    });
    let label = "POST /v1/webhook-endpoints/{id}/test (queues a test event)";
    load::run(label, &server.target(), make, None, 64, 120).await
}

/// Waits until the receiver has seen `count` webhook deliveries, or two
/// minutes after `since`.
async fn wait_for_hooks(received: &Received, count: usize, since: Instant) {
    while received.hooks() < count && since.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Deletes `endpoints`, so later rows do not fan their events out to them.
async fn delete_webhook_endpoints(server: &Server, endpoints: &[String]) -> anyhow::Result<()> {
    for id in endpoints {
        server.delete_webhook_endpoint(id).await?;
    }
    Ok(())
}

#[derive(Debug, serde::Serialize)]
pub struct WebhookThroughput {
    /// The load that queued the events.
    pub queueing: Measurement,
    pub queued: usize,
    pub enqueue_s: f64,
    pub delivered: usize,
    pub total_s: f64,
    pub per_second: f64,
    /// Backlog: deliveries that waited in the outbox while the receiver
    /// held the first ones, and how fast they drained once it answered.
    pub backlog: usize,
    /// Attempts that were in flight, held at the receiver, at the release.
    pub held: usize,
    pub drain_s: f64,
    pub drain_per_second: f64,
}
