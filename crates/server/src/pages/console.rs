//! `/console/helpdesk`: the agent console. An agent signs in with an API
//! key of the `agent` (or `admin`) role; the session is a random token in a
//! cookie (HttpOnly, SameSite=Strict, 8 hours), kept server-side by its
//! keyed hash with the key it belongs to: signing out deletes it, and the
//! key is checked again on every request, so a revoked key ends the
//! session at once. The console
//! starts caller verifications, shows their status live with the time
//! left, and the record's transaction log. Every state-changing request
//! carries a CSRF token bound to the session.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use vouchsafe_core::ids::{ApiKeyId, CallerVerificationId, TenantId};
use vouchsafe_core::role::Role;
use vouchsafe_core::settings::Settings;
use vouchsafe_proto::{CallerVerificationResponse, CreateCallerVerificationRequest, TransactionList};

use super::views::{Console, ConsoleLogin, Frame, page};
use super::{cookie_value, csrf_cookie, csrf_ok, csrf_token, new_cookie_value, set_csrf_cookie};
use crate::engine::callers;
use crate::engine::console;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::{caller_response as to_response, new_caller};

const SESSION: &str = "vs_console";
const LOGIN_SCOPE: &str = "console-login";

/// A signed-in agent.
struct Agent {
    tenant_id: TenantId,
    key_id: ApiKeyId,
    /// The session cookie's value (the CSRF token is bound to it).
    session: String,
}

/// The agent of a live, unexpired session whose key still works.
async fn agent(state: &SharedState, headers: &HeaderMap) -> Option<Agent> {
    let session = cookie_value(headers, SESSION)?;
    let (tenant_id, key_id) = console::session(state, &session).await?;
    Some(Agent { tenant_id, key_id, session })
}

fn session_csrf(state: &SharedState, agent: &Agent) -> String {
    state.code_hasher.hash("console-csrf", &agent.session)
}

fn csrf_header_ok(state: &SharedState, agent: &Agent, headers: &HeaderMap) -> bool {
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    bool::from(session_csrf(state, agent).as_bytes().ct_eq(given.as_bytes()))
}

fn login_page(state: &SharedState, headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let (cookie, fresh) = match csrf_cookie(headers) {
        Some(c) => (c, false),
        None => (new_cookie_value(), true),
    };
    let csrf = csrf_token(state, LOGIN_SCOPE, &cookie);
    let settings = Settings::default();
    let login = ConsoleLogin { frame: Frame::new(&settings, "Sign in"), csrf: &csrf, error: error.unwrap_or_default() };
    let mut response = page(&login, status, &[]);
    if fresh {
        set_csrf_cookie(state, &mut response, &cookie, "/console/");
    }
    response
}

pub async fn show(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let Some(agent) = agent(&state, &headers).await else {
        return login_page(&state, &headers, StatusCode::OK, None);
    };
    let settings = state.store.settings(&agent.tenant_id).await.map(|s| s.value).unwrap_or_default();
    let csrf = session_csrf(&state, &agent);
    page(&Console { frame: Frame::new(&settings, "Help-desk console"), csrf: &csrf }, StatusCode::OK, &[])
}

pub async fn login(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&state, LOGIN_SCOPE, &headers, form.get("csrf").map(String::as_str)) {
        return login_page(&state, &headers, StatusCode::FORBIDDEN, Some("Your session expired. Sign in again."));
    }
    let secret = form.get("key").map(|k| k.trim()).unwrap_or_default();
    let key = if vouchsafe_core::api_key::looks_like_secret(secret) {
        state.store.api_key_by_secret_hash(&state.key_hasher.hash(secret)).await.ok().flatten()
    } else {
        None
    };
    let Some(key) = key.filter(|k| k.role.grants(Role::Agent)) else {
        tracing::info!(target: "vouchsafe::security", "console sign-in refused");
        return login_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That key is not an agent key of this server."),
        );
    };
    let session = match console::start_session(&state, &key).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!(error = %vouchsafe_core::error::chain(&e), "cannot start a console session");
            return login_page(&state, &headers, StatusCode::SERVICE_UNAVAILABLE, Some("Please try again."));
        }
    };
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/console/helpdesk"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION}={session}; Path=/console/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        console::SESSION_HOURS * 3600
    )) {
        headers.append(header::SET_COOKIE, v);
    }
    response
}

pub async fn logout(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(agent) = agent(&state, &headers).await {
        let given = form.get("csrf").map(String::as_str).unwrap_or_default();
        if !bool::from(session_csrf(&state, &agent).as_bytes().ct_eq(given.as_bytes())) {
            return StatusCode::FORBIDDEN.into_response();
        }
        // SECURITY: the session ends on the server, not only in this browser.
        if let Err(e) = console::end_session(&state, &agent.session, &agent.key_id).await {
            tracing::error!(error = %vouchsafe_core::error::chain(&e), "cannot end a console session");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/console/helpdesk"));
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("vs_console=; Path=/console/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

async fn signed_in(state: &SharedState, headers: &HeaderMap, needs_csrf: bool) -> Result<Agent, ApiError> {
    let agent = agent(state, headers).await.ok_or(ApiError::Unauthorized)?;
    if needs_csrf && !csrf_header_ok(state, &agent, headers) {
        return Err(ApiError::Forbidden);
    }
    Ok(agent)
}

pub async fn start(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Json(req): Json<CreateCallerVerificationRequest>,
) -> Result<(StatusCode, Json<CallerVerificationResponse>), ApiError> {
    let agent = signed_in(&state, &headers, true).await?;
    // An agent who names no agent is the agent.
    let agent_id = Some(req.agent_id.as_deref().unwrap_or(agent.key_id.as_str()));
    let new = new_caller(&agent.tenant_id, agent.key_id.as_str(), &req, agent_id);
    let cv = callers::create(&state, new).await?;
    Ok((StatusCode::CREATED, Json(to_response(&cv, state.clock.now()))))
}

pub async fn status(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<CallerVerificationResponse>, ApiError> {
    let agent = signed_in(&state, &headers, false).await?;
    let id = CallerVerificationId::parse(&id).ok_or(ApiError::NotFound)?;
    let cv = state.store.caller_verification(&agent.tenant_id, &id).await?;
    Ok(Json(to_response(&cv, state.clock.now())))
}

pub async fn transactions(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(record_id): Path<String>,
) -> Result<Json<TransactionList>, ApiError> {
    let agent = signed_in(&state, &headers, false).await?;
    let now = state.clock.now();
    let list = state.store.record_transactions(&agent.tenant_id, &record_id, 200).await?;
    Ok(Json(TransactionList { transactions: list.iter().map(|cv| to_response(cv, now)).collect() }))
}

pub async fn script() -> Response {
    let mut response = include_str!("../../assets/console.js").into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
