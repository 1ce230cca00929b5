//! TOTP challenges at scale: the same load against 1 000, 100 000 and
//! 1 000 000 enrolled users, to show that a user's lookup does not slow
//! down as the user table grows.
//!
//! Users are brought in with `vouchsafe authenticators import` (each with
//! its own TOTP seed); challenges go to users picked at random over the
//! whole table, and each verify answers a wrong code, so every request
//! reads the challenge, the user and the authenticator, opens the sealed
//! seed, checks three TOTP steps and durably counts the failure. The
//! benchmark keeps every user's seed, so its "wrong" code is one it knows
//! none of the user's nearby steps has (a fixed `000000` would be right
//! now and then, and approve a challenge).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use vouchsafe_otp::{Algorithm, Secret, Totp};

use crate::load::{self, Measurement};
use crate::server::Server;

/// Challenges opened per user count and concurrency.
const CHALLENGES: usize = 10_000;
/// Wrong answers each challenge takes: the most the settings allow (set
/// in `run`). Never more, or later answers would meet a challenge that is
/// already denied and measure an answer without a write.
const ATTEMPTS: usize = 20;

/// A small xorshift for seeds and picks; the benchmark needs spread, not secrecy.
pub(crate) struct Dice(pub(crate) u64);

impl Dice {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One enrolled user's TOTP seed.
pub(crate) type Seed = [u8; 20];

/// The user's TOTP generator, with the parameters every enrolled user
/// has (the `otpauth://` URIs of `import_users` name none: the defaults).
fn user_totp(seed: &Seed) -> Option<Totp> {
    Totp::new(&Secret::from_bytes(seed.to_vec()), 6, 30, Algorithm::Sha1).ok()
}

/// The user's TOTP code of this moment (the right answer now).
pub(crate) fn code_now(seed: &Seed) -> Option<String> {
    Some(user_totp(seed)?.generate(unix_now()))
}

/// Seconds since the epoch, now.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A six-digit code that is none of the user's codes from two steps
/// before `from` to two steps after `until` (seconds since the epoch).
fn surely_wrong_code(seed: &Seed, from: u64, until: u64) -> String {
    let Some(totp) = user_totp(seed) else {
        return "000000".to_owned();
    };
    first_code_not_in(&codes_around(&totp, from, until))
}

/// The user's codes from two steps before `from` to two steps after `until`.
fn codes_around(totp: &Totp, from: u64, until: u64) -> Vec<String> {
    (totp.step(from).saturating_sub(2)..=totp.step(until) + 2).map(|s| totp.generate_step(s)).collect()
}

/// The first six-digit code, counting up from `000000`, that `taken` does
/// not hold: of one candidate more than `taken` has, one is free.
fn first_code_not_in(taken: &[String]) -> String {
    (0..=taken.len()).map(|n| format!("{n:06}")).find(|code| !taken.contains(code)).unwrap_or_default()
}

/// Writes users `from..to` as `USER_ID,otpauth://…` lines, imports them
/// and keeps their seeds (user `n`'s at `seeds[n]`).
pub(crate) fn import_users(
    server: &Server,
    from: usize,
    to: usize,
    dice: &mut Dice,
    seeds: &mut Vec<Seed>,
) -> anyhow::Result<f64> {
    let path = server.dir().join(format!("users-{from}-{to}.csv"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for n in from..to {
        let seed: Seed = std::array::from_fn(|_| dice.next() as u8);
        seeds.push(seed);
        let secret = Secret::from_bytes(seed.to_vec()).to_base32();
        writeln!(file, "bench-user-{n},otpauth://totp/Bench:u{n}?secret={secret}&issuer=Bench")?;
    }
    file.flush()?;
    drop(file);
    let started = Instant::now();
    let out = server.command(&["authenticators", "import", "--json", path.to_str().context("path")?]).output()?;
    if !out.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::remove_file(&path)?;
    Ok(started.elapsed().as_secs_f64())
}

/// Opens `CHALLENGES` TOTP challenges for users picked at random among
/// `users`: each challenge's id and its user's number.
async fn open_challenges(server: &Server, users: usize, dice: &mut Dice) -> anyhow::Result<Arc<Vec<(String, usize)>>> {
    let picks: Vec<u64> = (0..CHALLENGES).map(|_| dice.next() % users as u64).collect();
    open_challenges_for(server, &picks).await
}

/// Opens one TOTP challenge for each user of `picks`: each challenge's id
/// and its user's number.
async fn open_challenges_for(server: &Server, picks: &[u64]) -> anyhow::Result<Arc<Vec<(String, usize)>>> {
    let client = reqwest::Client::new();
    let mut ids = Vec::with_capacity(picks.len());
    for chunk in picks.chunks(64) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|user| {
                let req = client
                    .post(format!("{}/v1/users/bench-user-{user}/challenges", server.base))
                    .bearer_auth(&server.secret)
                    .json(&serde_json::json!({"factor": "totp"}));
                tokio::spawn(async move { req.send().await?.json::<serde_json::Value>().await })
            })
            .collect();
        for (task, &user) in tasks.into_iter().zip(chunk) {
            let v = task.await??;
            ids.push((v["id"].as_str().with_context(|| format!("no challenge: {v}"))?.to_owned(), user as usize));
        }
    }
    Ok(Arc::new(ids))
}

/// What a verify answers, as far as the load looks.
#[derive(serde::Deserialize)]
struct Answered {
    status: String,
}

/// How often each row at the highest concurrency runs. Those rows make the
/// ratio of two p99s, and on a shared VM one 10-second p99 can be off by
/// half; the row reported is the run with the median p99.
const TOP_REPEATS: usize = 3;

#[derive(serde::Serialize)]
pub struct ScaleRun {
    pub users: usize,
    /// Right codes (each approves its challenge) rather than wrong ones.
    pub right_code: bool,
    pub import_s: f64,
    pub measurement: Measurement,
    /// The p99 of every run of this row, lowest first (one unless repeated).
    pub p99_runs_ms: Vec<f64>,
}

/// One run of wrong answers to fresh challenges over `users` users.
async fn measure_once(
    server: &Server,
    users: usize,
    seeds: &Arc<Vec<Seed>>,
    concurrency: usize,
    seconds: u64,
    dice: &mut Dice,
) -> anyhow::Result<Measurement> {
    eprintln!("  opening {CHALLENGES} challenges over {users} users");
    let challenges = open_challenges(server, users, dice).await?;
    // Each challenge's request is made once, before the clock starts, with
    // a code wrong for the whole run (its seconds and a minute more), so
    // that the generator's HMACs and JSON are not what is measured.
    let from = unix_now();
    let until = from + seconds + 60;
    let requests = challenges
        .iter()
        .map(|(id, user)| {
            let body = serde_json::json!({"code": surely_wrong_code(&seeds[*user], from, until)});
            load::post_json(&format!("/v1/challenges/{id}/verify"), Some(&server.secret), &body)
        })
        .collect();
    let make = load::rounds(requests, ATTEMPTS);
    let refused = load::accept_json(|answered: Answered| answered.status != "approved");
    let label = format!("POST /v1/challenges/{{id}}/verify, wrong TOTP code, {users} users");
    Ok(load::run(&label, &server.target(), make, refused, concurrency, seconds).await)
}

/// Grows the user table through `counts` and loads challenge verifies at
/// each size and each concurrency.
pub async fn run(
    server: &Server,
    counts: &[usize],
    concurrencies: &[usize],
    seconds: u64,
) -> anyhow::Result<Vec<ScaleRun>> {
    let client = reqwest::Client::new();
    // Every wrong answer counts toward the user's lockout and the
    // challenge's attempts: allow enough of both for the run.
    let settings = serde_json::json!({"otp": {"max_check_attempts": ATTEMPTS}, "lockout": {"threshold": 1000}});
    let patched =
        client.patch(format!("{}/v1/settings", server.base)).bearer_auth(&server.secret).json(&settings).send().await?;
    if !patched.status().is_success() {
        bail!("settings: {}", patched.text().await?);
    }
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let mut enrolled = 0;
    // Shared with each load's requests; extended in place between counts
    // (no load holds it then, so nothing is copied).
    let mut seeds = Arc::new(Vec::new());
    let mut out = Vec::new();
    let top = concurrencies.iter().copied().max().unwrap_or(0);
    for &users in counts {
        eprintln!("  importing users {enrolled}..{users}");
        let import_s = import_users(server, enrolled, users, &mut dice, Arc::make_mut(&mut seeds))?;
        enrolled = users;
        for &concurrency in concurrencies {
            let repeats = if concurrency == top { TOP_REPEATS } else { 1 };
            let mut runs = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                runs.push(measure_once(server, users, &seeds, concurrency, seconds, &mut dice).await?);
            }
            runs.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
            let p99_runs_ms = runs.iter().map(|m| m.p99_ms).collect();
            let measurement = runs.swap_remove(runs.len() / 2);
            out.push(ScaleRun { users, right_code: false, import_s, measurement, p99_runs_ms });
        }
    }
    // Right codes on the largest table: each approval moves its user's
    // counter past the step, so every run takes users no run took before.
    let per_run = (enrolled / concurrencies.len().max(1)).min(RIGHT_CHALLENGES);
    for (run, &concurrency) in concurrencies.iter().enumerate() {
        if per_run == 0 {
            break;
        }
        let users = (run * per_run..(run + 1) * per_run).map(|u| u as u64).collect::<Vec<_>>();
        let measurement = measure_right(server, &users, &seeds, concurrency, seconds).await?;
        let p99_runs_ms = vec![measurement.p99_ms];
        out.push(ScaleRun { users: enrolled, right_code: true, import_s: 0.0, measurement, p99_runs_ms });
    }
    Ok(out)
}

/// Challenges opened for the right-code rows, one per user.
const RIGHT_CHALLENGES: usize = 30_000;

/// One run of right answers, one to each challenge of one user of `users`
/// (the code of the moment it is sent), until they run out.
async fn measure_right(
    server: &Server,
    users: &[u64],
    seeds: &Arc<Vec<Seed>>,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<Measurement> {
    eprintln!("  opening {} challenges for right codes", users.len());
    let challenges = open_challenges_for(server, users).await?;
    let label = format!("POST /v1/challenges/{{id}}/verify, right TOTP code (approves), {} users", seeds.len());
    let (secret, seeds) = (server.secret.clone(), seeds.clone());
    let make: load::MakeRequest = Arc::new(move |n| {
        let (id, user) = challenges.get(n)?;
        let body = serde_json::json!({"code": code_now(&seeds[*user])?});
        Some(load::post_json(&format!("/v1/challenges/{id}/verify"), Some(&secret), &body))
    });
    let approved = load::accept_json(|answered: Answered| answered.status == "approved");
    Ok(load::run(&label, &server.target(), make, approved, concurrency, seconds).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes ruled out are every step's of the window, two steps of
    /// margin either side, for windows of one step and of many.
    #[test]
    fn the_codes_ruled_out_cover_the_whole_window() {
        let totp = user_totp(&[7; 20]).unwrap();
        for (from, until) in [(1_700_000_000, 1_700_000_010), (1_700_000_000, 1_700_000_600)] {
            let steps: Vec<u64> = (totp.step(from) - 2..=totp.step(until) + 2).collect();
            let codes: Vec<String> = steps.iter().map(|&s| totp.generate_step(s)).collect();
            assert_eq!(codes_around(&totp, from, until), codes, "steps {steps:?}");
        }
        assert_eq!(codes_around(&totp, 1_700_000_000, 1_700_000_600).len(), 20 + 1 + 4);
    }

    #[test]
    fn the_first_free_code_is_never_one_taken() {
        let taken = |codes: &[&str]| codes.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        assert_eq!(first_code_not_in(&[]), "000000");
        assert_eq!(first_code_not_in(&taken(&["000000", "000001", "000003"])), "000002");
        assert_eq!(first_code_not_in(&taken(&["000003", "000000", "000002", "000001", "000004"])), "000005");
    }

    /// Put together: the wrong code is none of the user's codes at any
    /// step of the window.
    #[test]
    fn a_surely_wrong_code_is_no_code_of_the_window() {
        let mut dice = Dice(7);
        for (from, until) in [(1_700_000_000, 1_700_000_010), (1_700_000_000, 1_700_000_600)] {
            for _ in 0..50 {
                let seed: Seed = std::array::from_fn(|_| dice.next() as u8);
                let wrong = surely_wrong_code(&seed, from, until);
                let totp = user_totp(&seed).unwrap();
                assert_eq!(wrong.len(), 6, "{wrong}");
                for step in totp.step(from) - 2..=totp.step(until) + 2 {
                    assert_ne!(totp.generate_step(step), wrong, "step {step}");
                }
            }
        }
    }
}
