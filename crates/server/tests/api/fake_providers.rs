//! Fake SMS/voice providers as a real HTTP server on loopback, speaking
//! the providers' wire formats: Twilio's Messages and Calls resources
//! (form-encoded, Basic auth with account SID and auth token, `201` with a
//! `sid`), Telesign's messaging and voice APIs (form-encoded, Basic auth,
//! `reference_id`), and a plain JSON endpoint for the `http` provider.
//! Every request is recorded; each route can be told to fail or hang.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

pub const TWILIO_SID: &str = "AC00000000000000000000000000000001";
pub const TWILIO_TOKEN: &str = "twilio-auth-token-for-tests";
pub const TELESIGN_CUSTOMER: &str = "customer-1";
pub const TELESIGN_KEY: &str = "telesign-api-key-for-tests";

/// How a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Fail(u16),
    Hang,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `twilio_sms`, `twilio_call`, `telesign_sms`, `telesign_voice`, `http`.
    pub kind: String,
    pub form: HashMap<String, String>,
    pub json: Value,
    pub authorization: Option<String>,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    modes: HashMap<String, Mode>,
}

#[derive(Clone)]
pub struct FakeProviders {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

impl FakeProviders {
    pub async fn start() -> FakeProviders {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/{resource}", post(twilio))
            .route("/v1/messaging", post(telesign_sms))
            .route("/v1/voice", post(telesign_voice))
            .route("/http/{name}", post(http))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeProviders { base: format!("http://{addr}"), inner }
    }

    /// Sets how requests of `kind` (or `http/NAME`) are answered.
    pub fn set_mode(&self, kind: &str, mode: Mode) {
        self.inner.lock().unwrap().modes.insert(kind.to_owned(), mode);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    pub fn seen_of(&self, kind: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.kind == kind).collect()
    }

    /// Waits for the `n`-th request of a kind.
    pub async fn wait_for(&self, kind: &str, n: usize) -> Vec<Seen> {
        for _ in 0..400 {
            let seen = self.seen_of(kind);
            if seen.len() >= n {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{kind}: fewer than {n} requests arrived");
    }
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Records the request and decides the answer: `None` means answer normally.
async fn record(
    inner: &Arc<Mutex<Inner>>,
    kind: &str,
    headers: &HeaderMap,
    form: HashMap<String, String>,
    json: Value,
) -> Option<axum::response::Response> {
    let mode = {
        let mut inner = inner.lock().unwrap();
        inner.seen.push(Seen {
            kind: kind.to_owned(),
            form,
            json,
            authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
            headers: headers.clone(),
        });
        inner.modes.get(kind).copied().unwrap_or(Mode::Accept)
    };
    match mode {
        Mode::Accept => None,
        Mode::Fail(status) => Some(
            (StatusCode::from_u16(status).unwrap(), axum::Json(json!({"code": 20500, "message": "fake failure"})))
                .into_response(),
        ),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
    }
}

/// 32 random hex digits, as provider ids carry.
fn hex_id() -> String {
    vouchsafe_core::ids::DeliveryId::generate().as_str()[4..].to_owned()
}

async fn twilio(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((sid, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let kind = match resource.as_str() {
        "Messages.json" => "twilio_sms",
        "Calls.json" => "twilio_call",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let ok_auth = sid == TWILIO_SID
        && headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&basic(TWILIO_SID, TWILIO_TOKEN));
    if let Some(reply) = record(&inner, kind, &headers, form(&body), Value::Null).await {
        return reply;
    }
    if !ok_auth {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
        )
            .into_response();
    }
    let prefix = if kind == "twilio_sms" { "SM" } else { "CA" };
    (StatusCode::CREATED, axum::Json(json!({"sid": format!("{prefix}{}", hex_id()), "status": "queued"})))
        .into_response()
}

async fn telesign(inner: Arc<Mutex<Inner>>, kind: &str, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    let ok_auth =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&basic(TELESIGN_CUSTOMER, TELESIGN_KEY));
    if let Some(reply) = record(&inner, kind, &headers, form(&body), Value::Null).await {
        return reply;
    }
    if !ok_auth {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"status": {"code": 10033, "description": "bad auth"}})))
            .into_response();
    }
    axum::Json(
        json!({"reference_id": hex_id().to_uppercase(), "status": {"code": 290, "description": "Message in progress"}}),
    )
    .into_response()
}

async fn telesign_sms(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    telesign(inner, "telesign_sms", headers, body).await
}

async fn telesign_voice(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    telesign(inner, "telesign_voice", headers, body).await
}

async fn http(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(reply) = record(&inner, &format!("http/{name}"), &headers, HashMap::new(), json).await {
        return reply;
    }
    axum::Json(json!({"id": format!("msg-{}", hex_id())})).into_response()
}

/// The first run of `len` digits in a message (the code), also when a
/// voice script spells it out as `1, 2, 3`.
pub fn code_in(text: &str, len: usize) -> String {
    for chunk in text.split(|c: char| !c.is_ascii_digit()) {
        if chunk.len() == len {
            return chunk.to_owned();
        }
    }
    text.chars().filter(char::is_ascii_digit).take(len).collect()
}
