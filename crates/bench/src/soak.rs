//! Soak mode (`--soak MINUTES`): a login-flow mix at a steady rate for a
//! long time, with the server's resident memory sampled every 10 s, so a
//! slow leak shows as a slope rather than hiding in one peak figure.
//!
//! Each second it starts SMS verifications and checks their right codes
//! (approvals, so events, audit rows and webhook deliveries follow), and
//! answers TOTP challenges of imported users with their right codes; a
//! webhook endpoint subscribed to every event points at the loopback
//! receiver. Requests are paced, not back to back: the server is kept busy
//! but not saturated, as a production server would be.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::receiver;
use crate::server::Server;
use crate::totp_scale::{Dice, Seed, code_now, import_users};

/// What a flow needs to call the API.
struct Api {
    base: String,
    secret: String,
}

/// SMS login flows (start, then check the right code) per second.
const SMS_FLOWS_PER_SECOND: usize = 100;
/// TOTP login flows (open a challenge, answer the right code) per second.
const TOTP_FLOWS_PER_SECOND: usize = 20;
/// Users the TOTP flows take turns over: each comes round every 50 s, so
/// its code is always of a later step than the one it last used.
const TOTP_USERS: usize = 1_000;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, serde::Serialize)]
pub struct Soak {
    pub minutes: u64,
    pub sms_flows: usize,
    pub totp_flows: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Requests the loopback receiver answered: SMS sends and webhook deliveries.
    pub receiver_requests: usize,
    /// (seconds since the start, resident MiB) every 10 s.
    pub rss_mib: Vec<(f64, f64)>,
    /// The anonymous part of each sample (the heap: where a leak shows).
    pub anon_mib: Vec<(f64, f64)>,
    /// Least-squares slope of the samples after the first minute, MiB per minute.
    pub slope_mib_per_minute: f64,
    /// The same of the anonymous part. The rest is file-backed: the binary
    /// (the binary, mostly).
    pub anon_slope_mib_per_minute: f64,
}

#[derive(Default)]
struct Tally {
    sms: AtomicUsize,
    totp: AtomicUsize,
    errors: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn failed(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(what);
        }
    }
}

/// The least-squares slope of `points`, per unit of x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let num: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if den == 0.0 { 0.0 } else { num / den }
}

impl Api {
    /// `POST path` with a JSON body; the answer's JSON body.
    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let sent = client.post(format!("{}{path}", self.base)).bearer_auth(&self.secret).json(&body).send().await;
        sent.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())
    }
}

/// One SMS flow: start a verification to `to`, check the code the gateway got.
async fn sms_flow(client: &reqwest::Client, api: &Api, gateway: &receiver::Received, to: &str) -> Result<(), String> {
    let started = api.post(client, "/v1/verifications", serde_json::json!({"to": to, "channel": "sms"})).await?;
    let id = started["id"].as_str().ok_or_else(|| format!("start: {started}"))?;
    let code = gateway.code_for(to).ok_or("the gateway got no code")?;
    let body = serde_json::json!({"verification_id": id, "code": code});
    let checked = api.post(client, "/v1/verifications/check", body).await?;
    if checked["valid"] != true {
        return Err(format!("check: {checked}"));
    }
    Ok(())
}

/// One TOTP flow: open a challenge for user `n`, answer the code of now.
async fn totp_flow(client: &reqwest::Client, api: &Api, n: usize, seed: &Seed) -> Result<(), String> {
    let opened = api
        .post(client, &format!("/v1/users/bench-user-{n}/challenges"), serde_json::json!({"factor": "totp"}))
        .await?;
    let id = opened["id"].as_str().ok_or_else(|| format!("challenge: {opened}"))?;
    let body = serde_json::json!({"code": code_now(seed).ok_or("no TOTP code")?});
    let answered = api.post(client, &format!("/v1/challenges/{id}/verify"), body).await?;
    if answered["status"] != "approved" {
        return Err(format!("verify: {answered}"));
    }
    Ok(())
}

pub async fn run(server: &Server, minutes: u64) -> anyhow::Result<Soak> {
    let (port, gateway) = receiver::start().await?;
    crate::scenarios::configure(server, port).await?;
    let client = reqwest::Client::new();
    server.create_webhook_endpoint(&format!("http://127.0.0.1:{port}/hook")).await?;
    let mut seeds = Vec::with_capacity(TOTP_USERS);
    import_users(server, 0, TOTP_USERS, &mut Dice(0x2545_F491_4F6C_DD1D), &mut seeds)?;
    let seeds = Arc::new(seeds);
    let tally = Arc::new(Tally::default());
    let api = Arc::new(Api { base: server.base.clone(), secret: server.secret.clone() });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(minutes * 60);
    let mut rss = Vec::new();
    let mut anon = Vec::new();
    let mut next_sample = started;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < deadline {
        tick.tick().await;
        if Instant::now() >= next_sample {
            let at = started.elapsed().as_secs_f64();
            if let Some(mib) = server.rss_mib() {
                rss.push((at, mib));
            }
            if let Some((heap, _)) = server.rss_split_mib() {
                anon.push((at, heap));
            }
            eprint!(
                "\r  soak: {:>5.0} s of {} s, RSS {:>6.1} MiB, {} errors",
                started.elapsed().as_secs_f64(),
                minutes * 60,
                rss.last().map_or(0.0, |r| r.1),
                tally.errors.load(Ordering::Relaxed)
            );
            next_sample += SAMPLE_EVERY;
        }
        // A tenth of each second's flows every 100 ms.
        for _ in 0..SMS_FLOWS_PER_SECOND / 10 {
            let n = tally.sms.fetch_add(1, Ordering::Relaxed);
            let (client, api, gateway, tally) = (client.clone(), api.clone(), gateway.clone(), tally.clone());
            tokio::spawn(async move {
                if let Err(e) = sms_flow(&client, &api, &gateway, &format!("+49152{n:08}")).await {
                    tally.failed(e);
                }
            });
        }
        for _ in 0..TOTP_FLOWS_PER_SECOND / 10 {
            let n = tally.totp.fetch_add(1, Ordering::Relaxed) % TOTP_USERS;
            let (client, api, seeds, tally) = (client.clone(), api.clone(), seeds.clone(), tally.clone());
            tokio::spawn(async move {
                if let Err(e) = totp_flow(&client, &api, n, &seeds[n]).await {
                    tally.failed(e);
                }
            });
        }
    }
    eprintln!();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warm = |samples: &[(f64, f64)]| samples.iter().copied().filter(|(t, _)| *t >= 60.0).collect::<Vec<_>>();
    let first_error = tally.first_error.lock().ok().and_then(|f| f.clone());
    Ok(Soak {
        minutes,
        sms_flows: tally.sms.load(Ordering::Relaxed),
        totp_flows: tally.totp.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        first_error,
        receiver_requests: gateway.count(),
        slope_mib_per_minute: slope(&warm(&rss)) * 60.0,
        anon_slope_mib_per_minute: slope(&warm(&anon)) * 60.0,
        rss_mib: rss,
        anon_mib: anon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_of_a_line_is_its_gradient() {
        assert_eq!(slope(&[(0.0, 1.0), (10.0, 3.0), (20.0, 5.0)]), 0.2);
        assert_eq!(slope(&[(0.0, 7.0), (10.0, 7.0)]), 0.0);
        assert_eq!(slope(&[(5.0, 7.0)]), 0.0);
    }
}
