//! `/v1/users/{user_id}/challenges` and `/v1/challenges/…`: the second
//! factor of a login flow. The rules live in `engine::challenges`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use vouchsafe_core::challenge::Challenge;
use vouchsafe_core::ids::ChallengeId;
use vouchsafe_proto::{
    ChallengeResponse, CreateChallengeRequest, ErrorBody, ValidateTokenRequest, ValidateTokenResponse,
    VerifyChallengeRequest, VerifyChallengeResponse,
};

use super::rfc3339;
use crate::auth::AgentCaller;
use crate::engine::challenges::{self, Answer, NewChallenge};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

pub fn to_response(state: &SharedState, c: &Challenge, now: time::OffsetDateTime) -> ChallengeResponse {
    ChallengeResponse {
        id: c.id.to_string(),
        user_id: c.user_id.clone(),
        factor: c.factor.as_str().to_owned(),
        action: c.action.clone(),
        status: c.status_at(now).as_str().to_owned(),
        expires_at: rfc3339(c.expires_at),
        attempts_remaining: c.attempts_remaining(),
        url: format!("{}/challenge/{}", state.public_url.trim_end_matches('/'), c.id),
        options: c.passkey_options.as_deref().and_then(|o| serde_json::from_str(o).ok()),
    }
}

/// Opens a challenge; the policy picks the factor unless one is asked for.
#[utoipa::path(
    post,
    path = "/v1/users/{user_id}/challenges",
    tag = "challenges",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path)),
    request_body = CreateChallengeRequest,
    responses(
        (status = 201, body = ChallengeResponse),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "phishing_resistant_factor_required"),
        (status = 404, body = ErrorBody),
        (status = 423, body = ErrorBody, description = "user_locked (with Retry-After)")
    )
)]
pub async fn create_challenge(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<CreateChallengeRequest>,
) -> Result<(StatusCode, Json<ChallengeResponse>), ApiError> {
    let c = challenges::create(
        &state,
        NewChallenge {
            tenant_id: &caller.tenant_id,
            actor: caller.key_id.as_str(),
            user_id: &user_id,
            action: req.action.as_deref(),
            factor: req.factor.as_deref(),
            redirect_url: req.redirect_url.as_deref(),
            locale: req.locale.as_deref(),
        },
    )
    .await
    .map_err(|e| ApiError::from_challenge(e, state.clock.now()))?;
    Ok((StatusCode::CREATED, Json(to_response(&state, &c, state.clock.now()))))
}

/// One challenge.
#[utoipa::path(
    get,
    path = "/v1/challenges/{id}",
    tag = "challenges",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`chl_…`")),
    responses((status = 200, body = ChallengeResponse), (status = 404, body = ErrorBody))
)]
pub async fn get_challenge(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    let id = ChallengeId::parse(&id).ok_or(ApiError::NotFound)?;
    let c = state.store.challenge(&caller.tenant_id, &id).await?;
    Ok(Json(to_response(&state, &c, state.clock.now())))
}

/// Answers a challenge with a code (TOTP, HOTP, YubiKey OTP, recovery
/// code, or the code sent by SMS, voice or email).
#[utoipa::path(
    post,
    path = "/v1/challenges/{id}/verify",
    tag = "challenges",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`chl_…`")),
    request_body = VerifyChallengeRequest,
    responses(
        (status = 200, body = VerifyChallengeResponse),
        (status = 404, body = ErrorBody),
        (status = 423, body = ErrorBody, description = "user_locked (with Retry-After)"),
        (status = 429, body = ErrorBody, description = "rate_limited: every slow-hash thread is busy (recovery codes); nothing was counted (with Retry-After)")
    )
)]
pub async fn verify_challenge(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<VerifyChallengeRequest>,
) -> Result<Json<VerifyChallengeResponse>, ApiError> {
    let id = ChallengeId::parse(&id).ok_or(ApiError::NotFound)?;
    let answer = match (&req.code, &req.credential) {
        (Some(code), None) => Answer::Code(code),
        (None, Some(credential)) => Answer::Credential(credential),
        _ => return Err(ApiError::bad_request("code", "give either code or credential")),
    };
    let answered = challenges::verify(&state, &caller.tenant_id, caller.key_id.as_str(), &id, answer)
        .await
        .map_err(|e| ApiError::from_challenge(e, state.clock.now()))?;
    let now = state.clock.now();
    Ok(Json(VerifyChallengeResponse {
        status: answered.challenge.status_at(now).as_str().to_owned(),
        attempts_remaining: answered.challenge.attempts_remaining(),
        token: answered.token,
    }))
}

/// Validates a result token, once.
#[utoipa::path(
    post,
    path = "/v1/challenges/validate",
    tag = "challenges",
    security(("bearer" = []), ("basic" = [])),
    request_body = ValidateTokenRequest,
    responses((status = 200, body = ValidateTokenResponse))
)]
pub async fn validate_token(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    ApiJson(req): ApiJson<ValidateTokenRequest>,
) -> Result<Json<ValidateTokenResponse>, ApiError> {
    let invalid = ValidateTokenResponse {
        valid: false,
        user_id: None,
        challenge_id: None,
        factor: None,
        action: None,
        verified_at: None,
    };
    match challenges::redeem_token(&state, &caller.tenant_id, &req.token).await? {
        Some(c) => Ok(Json(ValidateTokenResponse {
            valid: true,
            user_id: Some(c.user_id),
            challenge_id: Some(c.id.to_string()),
            factor: Some(c.factor.as_str().to_owned()),
            action: Some(c.action),
            verified_at: c.verified_at.map(rfc3339),
        })),
        None => Ok(Json(invalid)),
    }
}
