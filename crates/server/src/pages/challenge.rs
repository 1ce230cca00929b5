//! `/challenge/{id}`: the hosted page where an end user answers a
//! challenge. Branded with the tenant's name, logo and message; a plain
//! form that works without JavaScript (passkeys add a button that needs
//! it); labels, live error text and focus for assistive technology.
//!
//! The challenge id in the URL is the capability (unguessable, expiring).
//! Forms carry a CSRF token bound to an HttpOnly, SameSite=Strict cookie.
//! After success the browser goes to the challenge's own `redirect_url`
//! (set by the integrator through the API) with `?token=…` — never to a
//! URL taken from the request, so there is no open redirect.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use vouchsafe_core::challenge::{Challenge, ChallengeStatus, Factor};
use vouchsafe_core::destination::{EmailAddress, PhoneNumber};
use vouchsafe_core::ids::ChallengeId;
use vouchsafe_core::settings::Settings;
use vouchsafe_proto::{ErrorBody, ErrorCode, ErrorDetail};

use super::views::{ChallengePage, ChallengeView, Frame, NotFound, page as page_response};
use super::{csrf_cookie, new_cookie_value, set_csrf_cookie};
use crate::engine::challenges::{self, Answer, ChallengeError};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

const ACTOR: &str = "hosted-page";

fn csrf_token(state: &SharedState, id: &ChallengeId, cookie: &str) -> String {
    super::csrf_token(state, &format!("csrf:{id}"), cookie)
}

fn csrf_ok(state: &SharedState, id: &ChallengeId, headers: &HeaderMap, given: Option<&str>) -> bool {
    super::csrf_ok(state, &format!("csrf:{id}"), headers, given)
}

/// The origin of the redirect URL, for the page's `form-action`.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    Some(parsed.origin().ascii_serialization())
}

/// Where the browser goes after success: the challenge's own URL plus the token.
fn success_target(c: &Challenge, token: &str) -> Option<String> {
    let mut url = url::Url::parse(c.redirect_url.as_deref()?).ok()?;
    url.query_pairs_mut().append_pair("token", token);
    Some(url.to_string())
}

struct Page<'a> {
    state: &'a SharedState,
    settings: &'a Settings,
    challenge: &'a Challenge,
    csrf: &'a str,
    hint: String,
    error: Option<String>,
}

fn render(page: &Page<'_>, status: StatusCode, form_targets: &[String]) -> Response {
    let c = page.challenge;
    let now = page.state.clock.now();
    let error = page.error.as_deref().unwrap_or_default();
    let action = format!("/challenge/{}", c.id);
    let view = match c.status_at(now) {
        ChallengeStatus::Approved => ChallengeView::Approved,
        ChallengeStatus::Denied => ChallengeView::Denied,
        ChallengeStatus::Expired => ChallengeView::Expired,
        ChallengeStatus::Pending if c.factor == Factor::Passkey => ChallengeView::Passkey {
            hint: &page.hint,
            error,
            options: c.passkey_options.as_deref().unwrap_or("{}"),
            csrf: page.csrf,
            action: format!("{action}/passkey"),
        },
        ChallengeStatus::Pending => {
            let (label, inputmode) = match c.factor {
                Factor::Yubikey => ("YubiKey code", "text"),
                Factor::RecoveryCode => ("Recovery code", "text"),
                _ => ("Verification code", "numeric"),
            };
            ChallengeView::Code { hint: &page.hint, error, csrf: page.csrf, action, label, inputmode }
        }
    };
    page_response(&ChallengePage { frame: Frame::new(page.settings, "Verify it's you"), view }, status, form_targets)
}

/// What the user is asked to do, in words, for the factor.
async fn hint(state: &SharedState, c: &Challenge) -> String {
    let user = state.store.user(&c.tenant_id, &c.user_id).await.ok();
    let phone = user.as_ref().and_then(|u| u.phone.as_deref()).and_then(|p| PhoneNumber::parse("phone", p).ok());
    let email = user.as_ref().and_then(|u| u.email.as_deref()).and_then(|e| EmailAddress::parse("email", e).ok());
    match c.factor {
        Factor::Totp => "Enter the code your authenticator app shows now.".to_owned(),
        Factor::Hotp => "Press the button on your security token and enter the code it shows.".to_owned(),
        Factor::Yubikey => "Put the cursor in the box and touch your YubiKey.".to_owned(),
        Factor::RecoveryCode => "Enter one of the recovery codes you saved. Each works once.".to_owned(),
        Factor::Sms => format!("We sent a code by text message to {}.", phone.map(|p| p.masked()).unwrap_or_default()),
        Factor::Voice => {
            format!("We are calling {} to read you a code.", phone.map(|p| p.masked()).unwrap_or_default())
        }
        Factor::Email => format!("We sent a code to {}.", email.map(|e| e.masked()).unwrap_or_default()),
        Factor::Passkey => "Use the passkey on this device or your phone.".to_owned(),
    }
}

fn not_found(settings: Option<&Settings>) -> Response {
    let settings = settings.cloned().unwrap_or_default();
    let help = Some("Start again where you signed in.");
    page_response(&NotFound { frame: Frame::new(&settings, "Not found"), help }, StatusCode::NOT_FOUND, &[])
}

async fn load(state: &SharedState, id: &str) -> Result<(Challenge, Settings), Response> {
    let id = ChallengeId::parse(id).ok_or_else(|| not_found(None))?;
    let c = state.store.challenge_for_page(&id).await.map_err(|_| not_found(None))?;
    let settings = state.store.settings(&c.tenant_id).await.map_err(|_| not_found(None))?.value;
    Ok((c, settings))
}

/// Renders the page with the CSRF cookie (kept or newly set).
async fn respond(
    state: &SharedState,
    c: &Challenge,
    settings: &Settings,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let (cookie, fresh) = match csrf_cookie(headers) {
        Some(cookie) => (cookie, false),
        None => (new_cookie_value(), true),
    };
    let csrf = csrf_token(state, &c.id, &cookie);
    let page = Page { state, settings, challenge: c, csrf: &csrf, hint: hint(state, c).await, error };
    let targets: Vec<String> = c.redirect_url.as_deref().and_then(origin_of).into_iter().collect();
    let mut response = render(&page, status, &targets);
    if fresh {
        set_csrf_cookie(state, &mut response, &cookie, "/challenge/");
    }
    response
}

pub async fn show(State(state): State<SharedState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match load(&state, &id).await {
        Ok((c, settings)) => respond(&state, &c, &settings, &headers, StatusCode::OK, None).await,
        Err(response) => response,
    }
}

fn locked_message(until: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    let minutes = ((until - now).whole_seconds().max(1) + 59) / 60;
    format!("Too many failed attempts. Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" })
}

pub async fn submit(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (c, settings) = match load(&state, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !csrf_ok(&state, &c.id, &headers, form.get("csrf").map(String::as_str)) {
        tracing::info!(target: "vouchsafe::security", challenge_id = %c.id, "hosted page post without a valid CSRF token");
        let error = Some("Your session expired. Enter the code again.".to_owned());
        return respond(&state, &c, &settings, &headers, StatusCode::FORBIDDEN, error).await;
    }
    let code = form.get("code").map(|c| c.trim()).unwrap_or_default();
    let now = state.clock.now();
    match challenges::verify(&state, &c.tenant_id, ACTOR, &c.id, Answer::Code(code)).await {
        Ok(answered) if answered.token.is_some() => {
            let token = answered.token.unwrap_or_default();
            match success_target(&answered.challenge, &token) {
                Some(target) => {
                    let mut response = StatusCode::SEE_OTHER.into_response();
                    if let Ok(value) = HeaderValue::from_str(&target) {
                        response.headers_mut().insert(header::LOCATION, value);
                    }
                    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    response
                }
                None => respond(&state, &answered.challenge, &settings, &headers, StatusCode::OK, None).await,
            }
        }
        Ok(answered) => {
            let left = answered.challenge.attempts_remaining();
            let error = (answered.challenge.status_at(now) == ChallengeStatus::Pending)
                .then(|| format!("That code is not right. {left} attempt{} left.", if left == 1 { "" } else { "s" }));
            respond(&state, &answered.challenge, &settings, &headers, StatusCode::UNPROCESSABLE_ENTITY, error).await
        }
        Err(ChallengeError::Locked(until)) => {
            respond(&state, &c, &settings, &headers, StatusCode::LOCKED, Some(locked_message(until, now))).await
        }
        Err(e) => {
            tracing::error!(error = ?e, challenge_id = %c.id, "hosted page answer failed");
            let error = Some("Something went wrong. Try again.".to_owned());
            respond(&state, &c, &settings, &headers, StatusCode::INTERNAL_SERVER_ERROR, error).await
        }
    }
}

/// An error of the passkey post, in the API's error shape, with a sentence
/// for the person at the page as its message.
fn passkey_error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let error = ErrorDetail { code, message: message.into(), status: status.as_u16(), field: None };
    (status, Json(ErrorBody { error })).into_response()
}

/// The passkey button's post: `{"credential"}` with the CSRF token in
/// `x-csrf-token`; answers `{"redirect"}`, `{"status": "pending",
/// "message", "attempts_remaining"}` for a passkey that was not accepted,
/// or an error in the API's shape (`{"error": {"code", "message", …}}`).
pub async fn passkey(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<Value>, ApiError>,
) -> Response {
    let Ok((c, _)) = load(&state, &id).await else {
        return passkey_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "This link is not valid.");
    };
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !csrf_ok(&state, &c.id, &headers, given) {
        return passkey_error(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "Your session expired. Reload the page.");
    }
    let ApiJson(body) = match body {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let Some(credential) = body.get("credential") else {
        return ApiError::bad_request("credential", "No passkey was given.").into_response();
    };
    let now = state.clock.now();
    match challenges::verify(&state, &c.tenant_id, ACTOR, &c.id, Answer::Credential(credential)).await {
        Ok(answered) => match answered.token {
            Some(token) => {
                let target = success_target(&answered.challenge, &token)
                    .unwrap_or_else(|| format!("/challenge/{}", answered.challenge.id));
                Json(json!({"redirect": target})).into_response()
            }
            None => Json(json!({"status": answered.challenge.status.as_str(),
                "message": "That passkey was not accepted.",
                "attempts_remaining": answered.challenge.attempts_remaining()}))
            .into_response(),
        },
        Err(ChallengeError::Locked(until)) => {
            let mut response = passkey_error(StatusCode::LOCKED, ErrorCode::UserLocked, locked_message(until, now));
            let wait = u64::try_from((until - now).whole_seconds()).unwrap_or(0).max(1);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
        Err(e) => {
            tracing::warn!(error = ?e, challenge_id = %c.id, "hosted page passkey failed");
            ApiError::from_challenge(e, now).into_response()
        }
    }
}
