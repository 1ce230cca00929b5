//! `/v1/verifications`: send a code to a phone or an email address and
//! check it (the rules live in `engine::verifications`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use time::OffsetDateTime;
use vouchsafe_core::verification::Verification;
use vouchsafe_proto::{
    CheckVerificationRequest, CheckVerificationResponse, CreateVerificationRequest, ErrorBody, VerificationResponse,
};

use super::rfc3339;
use crate::auth::AgentCaller;
use crate::engine::verifications::{self, StartRequest, Target};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

pub fn to_response(v: &Verification, now: OffsetDateTime) -> VerificationResponse {
    VerificationResponse {
        id: v.id.to_string(),
        to: v.to.clone(),
        channel: v.channel.as_str().to_owned(),
        status: v.status_at(now).as_str().to_owned(),
        service_id: v.service_id.to_string(),
        attempts_remaining: v.attempts_remaining(),
        send_count: v.send_count,
        locale: v.locale.clone(),
        expires_at: rfc3339(v.expires_at),
        created_at: rfc3339(v.created_at),
        updated_at: rfc3339(v.updated_at),
    }
}

/// Sends a code. A second start for the same `to` and service while one
/// is pending sends a fresh code on the same verification.
#[utoipa::path(
    post,
    path = "/v1/verifications",
    tag = "verifications",
    security(("bearer" = []), ("basic" = [])),
    request_body = CreateVerificationRequest,
    responses(
        (status = 201, body = VerificationResponse),
        (status = 400, body = ErrorBody, description = "invalid_request, invalid_phone_number"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden, geo_not_permitted"),
        (status = 404, body = ErrorBody, description = "no such service"),
        (status = 429, body = ErrorBody, description = "max_send_attempts_reached (with Retry-After)"),
        (status = 502, body = ErrorBody, description = "provider_unavailable")
    )
)]
pub async fn create_verification(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    ApiJson(req): ApiJson<CreateVerificationRequest>,
) -> Result<(StatusCode, Json<VerificationResponse>), ApiError> {
    let v = verifications::start(
        &state,
        StartRequest {
            tenant_id: &caller.tenant_id,
            to: &req.to,
            channel: &req.channel,
            service_id: req.service_id.as_deref(),
            locale: req.locale.as_deref(),
            default_country: req.default_country.as_deref(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(to_response(&v, state.clock.now()))))
}

/// Checks a code, by `to` (and `service_id`) or by `verification_id`.
#[utoipa::path(
    post,
    path = "/v1/verifications/check",
    tag = "verifications",
    security(("bearer" = []), ("basic" = [])),
    request_body = CheckVerificationRequest,
    responses(
        (status = 200, body = CheckVerificationResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no verification for that `to` or id")
    )
)]
pub async fn check_verification(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    ApiJson(req): ApiJson<CheckVerificationRequest>,
) -> Result<Json<CheckVerificationResponse>, ApiError> {
    let target = match (&req.verification_id, &req.to) {
        (Some(id), None) => Target::Id(id),
        (None, Some(to)) => Target::To { to, service_id: req.service_id.as_deref() },
        _ => return Err(ApiError::bad_request("to", "give either to or verification_id")),
    };
    if req.code.is_empty() || req.code.len() > 64 {
        return Err(ApiError::bad_request("code", "must be 1 to 64 characters"));
    }
    let checked = verifications::check(&state, &caller.tenant_id, caller.key_id.as_str(), target, &req.code).await?;
    Ok(Json(CheckVerificationResponse {
        id: checked.verification.id.to_string(),
        status: checked.status.as_str().to_owned(),
        valid: checked.valid,
        attempts_remaining: checked.verification.attempts_remaining(),
    }))
}

/// One verification.
#[utoipa::path(
    get,
    path = "/v1/verifications/{id}",
    tag = "verifications",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`ver_…`")),
    responses(
        (status = 200, body = VerificationResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn get_verification(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
) -> Result<Json<VerificationResponse>, ApiError> {
    let v = verifications::find(&state, &caller.tenant_id, Target::Id(&id)).await?;
    Ok(Json(to_response(&v, state.clock.now())))
}

/// Cancels a pending verification (its code stops working at once).
#[utoipa::path(
    post,
    path = "/v1/verifications/{id}/cancel",
    tag = "verifications",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`ver_…`")),
    responses(
        (status = 200, body = VerificationResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn cancel_verification(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
) -> Result<Json<VerificationResponse>, ApiError> {
    let v = verifications::cancel(&state, &caller.tenant_id, caller.key_id.as_str(), &id).await?;
    Ok(Json(to_response(&v, state.clock.now())))
}
