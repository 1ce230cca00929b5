//! HTTP load against the real binary: a fresh SQLite database in a temp
//! folder, `vouchsafe init`, `vouchsafe serve` on a free port; then, from
//! this process, a fixed number of concurrent keep-alive connections each
//! sending requests back to back for a fixed time.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use anyhow::{Context, bail};

/// Kills the server when the benchmark ends, however it ends.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Peak resident memory of a process (Linux), in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct LoadResult {
    requests: usize,
    errors: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Makes request number `n` of the run.
type MakeRequest = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

fn get(url: &str, secret: Option<&str>) -> MakeRequest {
    let (url, secret) = (url.to_owned(), secret.map(str::to_owned));
    Arc::new(move |client, _| {
        let req = client.get(&url);
        match &secret {
            Some(secret) => req.bearer_auth(secret),
            None => req,
        }
    })
}

async fn load(make: MakeRequest, concurrency: usize, seconds: u64) -> LoadResult {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap_or_default();
    let sequence = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let (make, sequence) = (make.clone(), sequence.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let req = make(&client, sequence.fetch_add(1, Ordering::Relaxed));
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(sent.elapsed().as_micros() as u32);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((latencies, e)) = task.await {
            all.extend(latencies);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 - 1.0) * p) as usize).map_or(0.0, |&us| f64::from(us) / 1000.0);
    LoadResult {
        requests: all.len(),
        errors,
        per_second: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
    }
}

/// A bare HTTP/1.1 receiver that answers every request `204` and counts
/// them: the cheapest possible endpoint, so the outbox is what is measured.
async fn counting_receiver() -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending = Vec::new();
                loop {
                    let Ok(n) = conn.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    // One response per complete request (headers + content-length body).
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if pending.len() < end + 4 + len {
                            break;
                        }
                        pending.drain(..end + 4 + len);
                        counter.fetch_add(1, Ordering::Relaxed);
                        if conn.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok((port, count))
}

/// Queues events through the API and times their delivery to a local
/// receiver: outbox write, claim, sign, POST, record, on durable SQLite.
async fn webhook_throughput(base: &str, secret: &str) -> anyhow::Result<String> {
    const EVENTS: usize = 2_000;
    let (port, delivered) = counting_receiver().await?;
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{base}/v1/webhook-endpoints"))
        .bearer_auth(secret)
        .json(&serde_json::json!({"url": format!("http://127.0.0.1:{port}/hook")}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().context("no endpoint id (is VOUCHSAFE_ALLOW_PRIVATE_TARGETS set?)")?.to_owned();
    let started = Instant::now();
    let mut queued = Vec::new();
    for _ in 0..EVENTS / 100 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            let client = client.clone();
            let url = format!("{base}/v1/webhook-endpoints/{id}/test");
            let secret = secret.to_owned();
            batch.push(tokio::spawn(async move {
                client.post(url).bearer_auth(secret).send().await.map(|r| r.status().is_success())
            }));
        }
        for b in batch {
            queued.push(matches!(b.await, Ok(Ok(true))));
        }
    }
    let enqueue_s = started.elapsed().as_secs_f64();
    let ok = queued.iter().filter(|q| **q).count();
    while delivered.load(Ordering::Relaxed) < ok && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total_s = started.elapsed().as_secs_f64();
    let n = delivered.load(Ordering::Relaxed);
    Ok(format!(
        "\n## Webhook outbox (SQLite, synchronous=FULL)\n\n\
         {ok} test events queued through the API (100 at a time) in {enqueue_s:.2} s; \
         {n} delivered, signed, to a local receiver {total_s:.2} s after the first was queued: \
         **{:.0} events/s** end to end (each event: a durable outbox write by its API request, \
         then a leased claim, a signed POST, and its attempt recorded, claims and records committed \
         durably per batch of up to 32).\n",
        n as f64 / total_s
    ))
}

/// Lifts the send limits (the benchmark sends to many numbers from one
/// tenant) and opens verifications to check against.
async fn seed_verifications(base: &str, secret: &str) -> anyhow::Result<Arc<Vec<String>>> {
    const SEEDED: usize = 2_000;
    let client = reqwest::Client::new();
    let limits = serde_json::json!({"otp": {"max_check_attempts": 20},
        "fraud": {"max_sends_per_destination_per_hour": 10000, "max_sends_per_prefix_per_hour": 1000000,
                  "max_sends_per_tenant_per_hour": 100000000}});
    let patched = client.patch(format!("{base}/v1/settings")).bearer_auth(secret).json(&limits).send().await?;
    if !patched.status().is_success() {
        bail!("could not lift the send limits: {}", patched.text().await?);
    }
    println!("  seeding {SEEDED} verifications");
    let make = starts(base, secret, 0);
    let mut ids = Vec::with_capacity(SEEDED);
    for chunk in (0..SEEDED).collect::<Vec<_>>().chunks(64) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&n| {
                let req = make(&client, n);
                tokio::spawn(async move { req.send().await?.json::<serde_json::Value>().await })
            })
            .collect();
        for task in tasks {
            if let Some(id) = task.await??["id"].as_str() {
                ids.push(id.to_owned());
            }
        }
    }
    if ids.len() < SEEDED {
        bail!("only {} of {SEEDED} verifications could be started", ids.len());
    }
    Ok(Arc::new(ids))
}

/// Starts verifications by SMS to distinct German mobile numbers from `first`.
fn starts(base: &str, secret: &str, first: usize) -> MakeRequest {
    let (url, secret) = (format!("{base}/v1/verifications"), secret.to_owned());
    Arc::new(move |client, n| {
        let to = format!("+49151{:08}", first + n);
        client.post(&url).bearer_auth(&secret).json(&serde_json::json!({"to": to, "channel": "sms"}))
    })
}

/// Wrong codes spread over the seeded verifications (20 allowed each).
fn wrong_checks(base: &str, secret: &str, ids: Arc<Vec<String>>) -> MakeRequest {
    let (url, secret) = (format!("{base}/v1/verifications/check"), secret.to_owned());
    Arc::new(move |client, n| {
        let id = &ids[n % ids.len()];
        client.post(&url).bearer_auth(&secret).json(&serde_json::json!({"verification_id": id, "code": "0000000000"}))
    })
}

pub async fn run(bin: &Path, concurrency: usize, seconds: u64) -> anyhow::Result<String> {
    let bin =
        std::fs::canonicalize(bin).with_context(|| format!("{} not found; cargo build --release", bin.display()))?;
    let dir = tempfile::tempdir()?;
    let init = Command::new(&bin).current_dir(dir.path()).args(["init", "--json"]).output()?;
    if !init.status.success() {
        bail!("vouchsafe init failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let secret = serde_json::from_slice::<serde_json::Value>(&init.stdout)?["secret"]
        .as_str()
        .context("init printed no secret")?
        .to_owned();

    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let spawned = Instant::now();
    let server = ServerProcess(
        Command::new(&bin)
            .current_dir(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("VOUCHSAFE_LOG", "warn")
            // The benchmark's receiver runs on loopback.
            .env("VOUCHSAFE_ALLOW_PRIVATE_TARGETS", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let ready_ms = loop {
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break spawned.elapsed().as_secs_f64() * 1000.0;
        }
        if spawned.elapsed() > Duration::from_secs(30) {
            bail!("the server did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };

    let mut report = format!(
        "## HTTP (`vouchsafe serve`, SQLite, synchronous=FULL)\n\n\
         Start-up, process spawn to first `200` from `/healthz`: **{ready_ms:.0} ms** (target ≤ 200 ms).\n\n\
         Concurrency {concurrency}, {seconds} s per endpoint, keep-alive connections.\n\n\
         | endpoint | requests | errors | req/s | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|\n"
    );
    let verification_ids = seed_verifications(&base, &secret).await?;
    let scenarios: Vec<(&str, MakeRequest)> = vec![
        ("GET /healthz (no auth, no database)", get(&format!("{base}/healthz"), None)),
        ("GET /v1/tenant (API-key auth + 2 reads)", get(&format!("{base}/v1/tenant"), Some(&secret))),
        (
            "POST /v1/verifications/check, wrong code (1 read + 1 durable write)",
            wrong_checks(&base, &secret, verification_ids),
        ),
        ("POST /v1/verifications, console provider (2 durable writes)", starts(&base, &secret, 1_000_000)),
    ];
    for (label, make) in scenarios {
        println!("  {label}");
        let r = load(make, concurrency, seconds).await;
        report.push_str(&format!(
            "| {label} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |\n",
            r.requests, r.errors, r.per_second, r.p50_ms, r.p99_ms, r.max_ms
        ));
    }
    report.push_str(&webhook_throughput(&base, &secret).await?);
    let rss = peak_rss_mib(server.0.id()).map_or("unknown".to_owned(), |m| format!("{m:.1} MiB"));
    report.push_str(&format!("\nServer peak RSS (VmHWM) after the load: **{rss}** (target ≤ 100 MiB).\n"));
    drop(server);
    Ok(report)
}
