//! The mixed-load row: login flows back to back at full speed, so every
//! hot path runs at once and competes for the same writer, pool and cores,
//! as it does for a user.
//!
//! The mix is the soak's, in the proportions logins make their requests:
//! of every six flows five are SMS logins (start, then check the code the
//! gateway got; every fourth of them types one wrong code first) and one a
//! TOTP login (open a challenge, answer the code of now). Every approval
//! is an event for a webhook endpoint subscribed to everything, pointed at
//! the loopback receiver, so deliveries run beside the load; the row says
//! how many arrived during it and how long the rest took to follow.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::load::{self, Flow, MakeFlow, Measurement};
use crate::receiver::{self, Received};
use crate::server::Server;
use crate::totp_scale::{Dice, Seed, code_now, import_users};

/// The first TOTP user of the row, far above the numbers the TOTP rows use.
const FIRST_USER: usize = 50_000_000;
/// TOTP users imported for the row; each answers once, so a code is never
/// replayed. One flow in six is a TOTP login: enough for 120,000 flows.
const USERS: usize = 20_000;
/// The first phone number of the row's SMS logins, apart from the other rows'.
const FIRST_NUMBER: usize = 60_000_000;

#[derive(Debug, serde::Serialize)]
pub struct Mixed {
    pub measurement: Measurement,
    pub sms_flows: usize,
    pub totp_flows: usize,
    /// Webhook deliveries the receiver got while the load ran, and in all
    /// once the outbox drained.
    pub delivered_during: usize,
    pub delivered: usize,
    /// Seconds after the load ended until the last delivery arrived.
    pub drain_s: f64,
}

/// What the answers of the flows carry, as far as the flows look.
#[derive(serde::Deserialize)]
struct Answer {
    id: Option<String>,
    valid: Option<bool>,
    status: Option<String>,
}

fn parse(body: &[u8]) -> Result<Answer, ()> {
    serde_json::from_slice(body).map_err(|_| ())
}

/// An SMS login: start, maybe a wrong code, then the right code.
struct SmsLogin {
    secret: Arc<str>,
    to: String,
    gateway: Arc<Received>,
    typo: bool,
    step: u8,
    id: String,
    /// Counts the SMS logins that ended approved.
    done: Arc<AtomicUsize>,
}

impl SmsLogin {
    fn check(&self, code: &str) -> Vec<u8> {
        let body = serde_json::json!({"verification_id": self.id, "code": code});
        load::post_json("/v1/verifications/check", Some(&self.secret), &body)
    }
}

impl Flow for SmsLogin {
    fn next(&mut self, answer: Option<&[u8]>) -> Result<Option<Vec<u8>>, ()> {
        self.step += 1;
        let Some(body) = answer else {
            let start = serde_json::json!({"to": self.to, "channel": "sms"});
            return Ok(Some(load::post_json("/v1/verifications", Some(&self.secret), &start)));
        };
        let answer = parse(body)?;
        match self.step {
            2 => {
                self.id = answer.id.ok_or(())?;
                if self.typo { Ok(Some(self.check("0000000000"))) } else { self.right_code() }
            }
            3 if self.typo => match answer.valid {
                Some(false) => self.right_code(),
                _ => Err(()),
            },
            _ => match answer.valid {
                Some(true) => {
                    self.done.fetch_add(1, Ordering::Relaxed);
                    Ok(None)
                }
                _ => Err(()),
            },
        }
    }
}

impl SmsLogin {
    fn right_code(&self) -> Result<Option<Vec<u8>>, ()> {
        let code = self.gateway.code_for(&self.to).ok_or(())?;
        Ok(Some(self.check(&code)))
    }
}

/// A TOTP login: open a challenge for user `user`, answer the code of now.
struct TotpLogin {
    secret: Arc<str>,
    user: usize,
    seed: Seed,
    answered: bool,
    /// Counts the TOTP logins that ended approved.
    done: Arc<AtomicUsize>,
}

impl Flow for TotpLogin {
    fn next(&mut self, answer: Option<&[u8]>) -> Result<Option<Vec<u8>>, ()> {
        let Some(body) = answer else {
            let path = format!("/v1/users/bench-user-{}/challenges", self.user);
            return Ok(Some(load::post_json(&path, Some(&self.secret), &serde_json::json!({"factor": "totp"}))));
        };
        let answer = parse(body)?;
        if self.answered {
            if answer.status.as_deref() != Some("approved") {
                return Err(());
            }
            self.done.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        self.answered = true;
        let code = code_now(&self.seed).ok_or(())?;
        let path = format!("/v1/challenges/{}/verify", answer.id.ok_or(())?);
        Ok(Some(load::post_json(&path, Some(&self.secret), &serde_json::json!({"code": code}))))
    }
}

/// Which flow number `n` is: of every six, the last a TOTP login (its
/// user's number among the row's), the others SMS logins, every fourth of
/// them with a typo.
fn kind(n: usize) -> Kind {
    match n % 6 {
        5 => Kind::Totp(n / 6),
        _ => Kind::Sms { typo: (n - n / 6) % 4 == 3 },
    }
}

#[derive(Debug, PartialEq)]
enum Kind {
    Sms { typo: bool },
    Totp(usize),
}

/// Runs the row at `concurrency` for `seconds` on a server already set up
/// by `scenarios::configure`.
pub async fn run(server: &Server, concurrency: usize, seconds: u64) -> anyhow::Result<Mixed> {
    let (port, received) = receiver::start().await?;
    crate::scenarios::configure(server, port).await?;
    let hook = server.create_webhook_endpoint(&format!("http://127.0.0.1:{port}/hook")).await?;
    eprintln!("  mixed load: importing {USERS} TOTP users");
    let mut seeds = Vec::with_capacity(USERS);
    import_users(server, FIRST_USER, FIRST_USER + USERS, &mut Dice(0x9E37_79B9_7F4A_7C15), &mut seeds)?;
    let seeds = Arc::new(seeds);
    let secret: Arc<str> = server.secret.as_str().into();
    let gateway = received.clone();
    let (sms_done, totp_done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (sms, totp) = (sms_done.clone(), totp_done.clone());
    let make: MakeFlow = Arc::new(move |n| {
        let secret = secret.clone();
        Some(match kind(n) {
            Kind::Sms { typo } => {
                let to = format!("+49152{:08}", FIRST_NUMBER + n);
                let (gateway, done) = (gateway.clone(), sms.clone());
                Box::new(SmsLogin { secret, to, gateway, typo, step: 0, id: String::new(), done })
            }
            Kind::Totp(user) => {
                let (seed, done) = (*seeds.get(user)?, totp.clone());
                Box::new(TotpLogin { secret, user: FIRST_USER + user, seed, answered: false, done })
            }
        })
    });
    let before = received.hooks();
    let label = "mixed login flows (5 SMS : 1 TOTP, a typo in 1 SMS of 4, every approval a webhook)";
    let measurement = load::run_flows(label, &server.target(), make, concurrency, seconds).await;
    // A connection finishes the flow it is in when the time is up, so
    // every flow counted approved once: one delivery each.
    let ended = Instant::now();
    let (sms_flows, totp_flows) = (sms_done.load(Ordering::Relaxed), totp_done.load(Ordering::Relaxed));
    let flows = sms_flows + totp_flows;
    let delivered_during = received.hooks() - before;
    let mut delivered = delivered_during;
    while delivered < flows && ended.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        delivered = received.hooks() - before;
    }
    let drain_s = ended.elapsed().as_secs_f64();
    server.delete_webhook_endpoint(&hook).await?;
    Ok(Mixed { measurement, sms_flows, totp_flows, delivered_during, delivered, drain_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_flows_in_six_are_sms_and_every_fourth_sms_has_a_typo() {
        let kinds: Vec<Kind> = (0..24).map(kind).collect();
        let totp: Vec<usize> =
            kinds.iter().filter_map(|k| if let Kind::Totp(u) = k { Some(*u) } else { None }).collect();
        assert_eq!(totp, vec![0, 1, 2, 3], "TOTP users are distinct and dense");
        let typos = kinds.iter().filter(|k| **k == Kind::Sms { typo: true }).count();
        assert_eq!((kinds.len() - totp.len(), typos), (20, 5));
    }

    #[test]
    fn an_sms_login_checks_a_wrong_code_then_the_right_one() {
        let gateway = Arc::new(Received::default());
        gateway.record("post /sms http/1.1", br#"{"to": "+4915300000001", "code": "123456"}"#);
        let mut flow = SmsLogin {
            secret: "sk".into(),
            to: "+4915300000001".into(),
            gateway,
            typo: true,
            step: 0,
            id: String::new(),
            done: Arc::default(),
        };
        let text = |r: Result<Option<Vec<u8>>, ()>| {
            String::from_utf8(r.ok().flatten().unwrap_or_default()).unwrap_or_default()
        };
        assert!(text(flow.next(None)).starts_with("POST /v1/verifications HTTP/1.1"));
        assert!(
            text(flow.next(Some(br#"{"id": "VE1", "status": "pending"}"#)))
                .ends_with(r#""code":"0000000000","verification_id":"VE1"}"#)
        );
        assert!(text(flow.next(Some(br#"{"valid": false}"#))).ends_with(r#""code":"123456","verification_id":"VE1"}"#));
        assert_eq!(flow.next(Some(br#"{"valid": true}"#)), Ok(None));
        assert_eq!(flow.done.load(Ordering::Relaxed), 1, "an approved login is counted");
    }

    #[test]
    fn a_totp_login_answers_its_challenge_once_and_wants_an_approval() {
        let login = || TotpLogin { secret: "sk".into(), user: 7, seed: [7; 20], answered: false, done: Arc::default() };
        let text = |r: Result<Option<Vec<u8>>, ()>| {
            String::from_utf8(r.ok().flatten().unwrap_or_default()).unwrap_or_default()
        };
        let mut flow = login();
        assert!(text(flow.next(None)).starts_with("POST /v1/users/bench-user-7/challenges HTTP/1.1"));
        let verify = text(flow.next(Some(br#"{"id": "CH1", "status": "pending"}"#)));
        assert!(verify.starts_with("POST /v1/challenges/CH1/verify HTTP/1.1"), "{verify}");
        assert_eq!(flow.next(Some(br#"{"id": "CH1", "status": "approved"}"#)), Ok(None));
        assert_eq!(flow.done.load(Ordering::Relaxed), 1, "an approved login is counted");
        let mut refused = login();
        let _ = refused.next(None);
        let _ = refused.next(Some(br#"{"id": "CH1", "status": "pending"}"#));
        assert_eq!(refused.next(Some(br#"{"id": "CH1", "status": "pending"}"#)), Err(()));
    }
}
