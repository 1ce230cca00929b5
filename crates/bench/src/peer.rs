//! The peer side by side: privacyIDEA's `/validate/check` under the same
//! load generator and concurrency as vouchsafe's checks. The server is set
//! up by `bench/peers/privacyidea.sh` (privacyIDEA from PyPI, gunicorn,
//! SQLite, HOTP tokens `BENCH0…` with one shared key and PIN); this side
//! only loads it, sending each token's codes in counter order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use vouchsafe_otp::{Algorithm, Hotp, Secret};

use crate::load::{self, MakeRequest, Measurement};

pub struct Peer {
    pub url: String,
    pub tokens: usize,
    pub key_hex: String,
    pub pin: String,
}

fn hex(text: &str) -> anyhow::Result<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("x"), 16).map_err(Into::into))
        .collect()
}

/// Right codes: request `n` goes to token `n % tokens` with that token's
/// next counter, so with more tokens than connections each token's codes
/// arrive in order, as a person's would.
fn right_checks(peer: &Peer) -> anyhow::Result<MakeRequest> {
    let hotp = Hotp::new(&Secret::from_bytes(hex(&peer.key_hex)?), 6, Algorithm::Sha1)?;
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..peer.tokens).map(|_| AtomicU64::new(0)).collect());
    let (pin, tokens) = (form_escape(&peer.pin), peer.tokens);
    Ok(Arc::new(move |n| {
        let token = n % tokens;
        let counter = counters[token].fetch_add(1, Ordering::Relaxed);
        let form = format!("serial=BENCH{token}&pass={pin}{}", hotp.generate(counter));
        let body = ("application/x-www-form-urlencoded", form.as_bytes());
        Some(load::request("POST", "/validate/check", None, Some(body)))
    }))
}

/// Percent-escapes everything but letters and digits, for a form value.
fn form_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b.is_ascii_alphanumeric() {
            true => char::from(b).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

/// The peer's address from its `http://host:port` URL.
fn address(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let authority = url.strip_prefix("http://").context("the peer URL must start with http://")?;
    let authority = authority.split('/').next().unwrap_or(authority);
    authority.to_socket_addrs()?.next().with_context(|| format!("{authority} resolves to no address"))
}

/// What privacyIDEA answers, as far as the load looks.
#[derive(serde::Deserialize)]
struct Validated {
    result: ValidatedResult,
}

#[derive(serde::Deserialize)]
struct ValidatedResult {
    value: bool,
}

pub async fn run(peer: &Peer, concurrencies: &[usize], seconds: u64) -> anyhow::Result<Vec<Measurement>> {
    // One generator for every run: the tokens' counters only move forward.
    let make = right_checks(peer)?;
    // privacyIDEA answers a refused code with 200 too; only `value: true` counts.
    let accepted = load::accept_json(|answer: Validated| answer.result.value);
    let target = load::Target { addr: address(&peer.url)?, pid: None };
    let mut out = Vec::new();
    for &c in concurrencies {
        anyhow::ensure!(peer.tokens > c, "use more tokens than connections ({} ≤ {c})", peer.tokens);
        let label = "privacyIDEA POST /validate/check, right HOTP code";
        out.push(load::run(label, &target, make.clone(), accepted.clone(), c, seconds).await);
    }
    Ok(out)
}
