//! `/caller/{token}`: the page a customer opens from the help desk's
//! message. It names the company and asks "Are you on a call with us right
//! now?"; Approve verifies the caller, "I am not on a call" denies (a fraud
//! signal the agent sees at once). When the customer is a user with
//! enrolled code authenticators, one of them must be passed before
//! approving. The link works once and dies after the time allowed.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::{AuthenticatorKind, AuthenticatorStatus};
use vouchsafe_core::caller::{CallerMethod, CallerStatus, CallerVerification};
use vouchsafe_core::challenge::{Challenge, Factor};
use vouchsafe_core::ids::ChallengeId;
use vouchsafe_core::settings::Settings;

use super::views::{Approve, CallerPage, CallerView, Frame, NotFound, page};
use super::{csrf_cookie, csrf_ok, csrf_token, new_cookie_value, set_csrf_cookie};
use crate::engine::callers;
use crate::engine::callers::{end, link_hash};
use crate::engine::challenges::{self, Answer, ChallengeError, NewChallenge};
use crate::state::SharedState;

const ACTOR: &str = "caller-page";

fn scope(cv: &CallerVerification) -> String {
    format!("caller-csrf:{}", cv.id)
}

async fn load(state: &SharedState, token: &str) -> Option<(CallerVerification, Settings)> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let cv = state.store.caller_verification_by_link(&link_hash(state, token)).await.ok()?;
    let settings = state.store.settings(&cv.tenant_id).await.ok()?.value;
    Some((cv, settings))
}

/// Whether approving needs a code from one of the user's authenticators.
async fn needs_factor(state: &SharedState, cv: &CallerVerification) -> bool {
    has_active(state, cv, &[AuthenticatorKind::Totp, AuthenticatorKind::Hotp, AuthenticatorKind::Yubikey]).await
}

async fn has_active(state: &SharedState, cv: &CallerVerification, kinds: &[AuthenticatorKind]) -> bool {
    let Some(user) = &cv.user_id else { return false };
    state
        .store
        .authenticators(&cv.tenant_id, user)
        .await
        .is_ok_and(|list| list.iter().any(|a| a.status == AuthenticatorStatus::Active && kinds.contains(&a.kind)))
}

/// For a user whose only factor is a passkey: a passkey challenge to pass
/// before approving (its ceremony state lives on the challenge). One per
/// caller verification, made on the first visit and found again on the
/// next ones (each visit used to make one, with an audit entry).
async fn passkey_challenge(state: &SharedState, cv: &CallerVerification) -> Option<Challenge> {
    let user = cv.user_id.as_deref()?;
    if !has_active(state, cv, &[AuthenticatorKind::Passkey]).await {
        return None;
    }
    let action = format!("caller:{}", cv.id);
    if let Ok(Some(existing)) = state.store.pending_challenge(&cv.tenant_id, user, &action, state.clock.now()).await {
        return Some(existing);
    }
    let request = NewChallenge {
        tenant_id: &cv.tenant_id,
        actor: ACTOR,
        user_id: user,
        action: Some(&action),
        factor: Some("passkey"),
        redirect_url: None,
        locale: None,
    };
    challenges::create(state, request).await.ok()
}

async fn render(
    state: &SharedState,
    token: &str,
    cv: &CallerVerification,
    settings: &Settings,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (cookie, fresh) = match csrf_cookie(headers) {
        Some(cookie) => (cookie, false),
        None => (new_cookie_value(), true),
    };
    let now = state.clock.now();
    let csrf = csrf_token(state, &scope(cv), &cookie);
    let mut passkey: Option<Challenge> = None;
    let view = match cv.status_at(now) {
        CallerStatus::Verified => CallerView::Verified,
        CallerStatus::Denied => CallerView::Denied,
        CallerStatus::Pending => {
            let coded = needs_factor(state, cv).await;
            if !coded {
                passkey = passkey_challenge(state, cv).await;
            }
            let approve = match &passkey {
                // The passkey button approves; the script posts the assertion.
                Some(challenge) => Approve::Passkey {
                    options: challenge.passkey_options.as_deref().unwrap_or("{}"),
                    action: format!("/caller/{token}/passkey?challenge={}", challenge.id),
                },
                None => Approve::Form { code: coded },
            };
            CallerView::Pending { csrf: &csrf, error: error.unwrap_or_default(), approve }
        }
        _ => CallerView::Expired,
    };
    let frame = Frame::new(settings, "Are you on a call with us?");
    let mut response = page(&CallerPage { frame, view }, status, &[]);
    if fresh {
        set_csrf_cookie(state, &mut response, &cookie, "/caller/");
    }
    response
}

fn gone() -> Response {
    let settings = Settings::default();
    page(&NotFound { frame: Frame::new(&settings, "Not found"), help: None }, StatusCode::NOT_FOUND, &[])
}

pub async fn show(State(state): State<SharedState>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    match load(&state, &token).await {
        Some((cv, settings)) => render(&state, &token, &cv, &settings, &headers, StatusCode::OK, None).await,
        None => gone(),
    }
}

pub async fn decide(
    State(state): State<SharedState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some((cv, settings)) = load(&state, &token).await else {
        return gone();
    };
    if !csrf_ok(&state, &scope(&cv), &headers, form.get("csrf").map(String::as_str)) {
        return render(&state, &token, &cv, &settings, &headers, StatusCode::FORBIDDEN, Some("Please try again."))
            .await;
    }
    let now = state.clock.now();
    let outcome = match form.get("decision").map(String::as_str) {
        Some("deny") => {
            let audit = AuditEntry::new(ACTOR, "caller_verification.denied", cv.id.as_str(), "not_on_a_call", now);
            tracing::warn!(target: "vouchsafe::security", caller_verification_id = %cv.id, "customer says they are not on a call");
            end(&state, &cv, CallerStatus::Denied, Some(CallerMethod::Link), &audit).await
        }
        Some("approve") => {
            if !needs_factor(&state, &cv).await && has_active(&state, &cv, &[AuthenticatorKind::Passkey]).await {
                // Fail closed: a passkey user approves with the passkey only.
                let error = "Use your passkey to approve.";
                return render(&state, &token, &cv, &settings, &headers, StatusCode::UNPROCESSABLE_ENTITY, Some(error))
                    .await;
            }
            if needs_factor(&state, &cv).await {
                let code = form.get("code").map(|c| c.trim()).unwrap_or_default();
                let user = cv.user_id.as_deref().unwrap_or_default();
                let passed = challenges::answer_without_challenge(
                    &state,
                    &cv.tenant_id,
                    user,
                    ACTOR,
                    callers::passes_factor(&state, &cv, ACTOR, code),
                )
                .await;
                let passed = match passed {
                    Ok(passed) => passed,
                    Err(ChallengeError::Locked(_)) => {
                        let error = "Too many wrong codes. Try again later.";
                        return render(&state, &token, &cv, &settings, &headers, StatusCode::LOCKED, Some(error)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = ?e, "caller page factor check failed");
                        let error = "Something went wrong. Try again.";
                        return render(
                            &state,
                            &token,
                            &cv,
                            &settings,
                            &headers,
                            StatusCode::INTERNAL_SERVER_ERROR,
                            Some(error),
                        )
                        .await;
                    }
                };
                if !passed {
                    let after = callers::factor_failed(&state, &cv, ACTOR).await;
                    let error = "That code is not right.";
                    return render(
                        &state,
                        &token,
                        &after,
                        &settings,
                        &headers,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some(error),
                    )
                    .await;
                }
            }
            let method = if needs_factor(&state, &cv).await { CallerMethod::Factor } else { CallerMethod::Link };
            let audit = AuditEntry::new(ACTOR, "caller_verification.verified", cv.id.as_str(), method.as_str(), now);
            end(&state, &cv, CallerStatus::Verified, Some(method), &audit).await
        }
        _ => Ok(cv.clone()),
    };
    match outcome {
        Ok(after) => render(&state, &token, &after, &settings, &headers, StatusCode::OK, None).await,
        Err(e) => {
            tracing::error!(error = ?e, "caller page decision failed");
            render(
                &state,
                &token,
                &cv,
                &settings,
                &headers,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("Something went wrong. Try again."),
            )
            .await
        }
    }
}

/// The passkey button's post: `{"credential"}` answering the page's
/// passkey challenge; on success the caller is verified.
pub async fn passkey(
    State(state): State<SharedState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some((cv, _)) = load(&state, &token).await else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "This link is not valid."}))).into_response();
    };
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !csrf_ok(&state, &scope(&cv), &headers, given) {
        return (StatusCode::FORBIDDEN, Json(json!({"message": "Please reload the page."}))).into_response();
    }
    let challenge = query.get("challenge").and_then(|c| ChallengeId::parse(c));
    let (Some(challenge), Some(credential), Some(user)) = (challenge, body.get("credential"), cv.user_id.as_deref())
    else {
        return (StatusCode::BAD_REQUEST, Json(json!({"message": "No passkey was given."}))).into_response();
    };
    // The challenge must be this customer's passkey challenge.
    let Ok(c) = state.store.challenge(&cv.tenant_id, &challenge).await else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Please reload the page."}))).into_response();
    };
    if c.user_id != user || c.factor != Factor::Passkey {
        return (StatusCode::FORBIDDEN, Json(json!({"message": "Please reload the page."}))).into_response();
    }
    let passed = matches!(
        challenges::verify(&state, &cv.tenant_id, ACTOR, &challenge, Answer::Credential(credential)).await,
        Ok(answered) if answered.token.is_some()
    );
    if !passed {
        return Json(json!({"message": "That passkey was not accepted."})).into_response();
    }
    let now = state.clock.now();
    let audit = AuditEntry::new(ACTOR, "caller_verification.verified", cv.id.as_str(), "link_passkey", now);
    match end(&state, &cv, CallerStatus::Verified, Some(CallerMethod::Factor), &audit).await {
        Ok(_) => Json(json!({"redirect": format!("/caller/{token}")})).into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "caller page passkey approval failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"message": "Something went wrong."}))).into_response()
        }
    }
}
