//! `/v1/caller-verifications` and `/v1/records/{record_id}/transactions`:
//! help-desk caller verification. Agents start, read, cancel and check
//! with the code the customer reads out; they never see the code itself.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::caller::CallerStatus;
use vouchsafe_core::ids::CallerVerificationId;
use vouchsafe_proto::{
    CallerVerificationResponse, CheckCallerCodeRequest, CheckCallerCodeResponse, CreateCallerVerificationRequest,
    ErrorBody, TransactionList,
};

use crate::auth::AgentCaller;
use crate::engine::callers;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;
use crate::wire::{caller_response as to_response, new_caller};

fn id_of(text: &str) -> Result<CallerVerificationId, ApiError> {
    CallerVerificationId::parse(text).ok_or(ApiError::NotFound)
}

/// Starts a caller verification: the customer gets a link and a code.
#[utoipa::path(
    post,
    path = "/v1/caller-verifications",
    tag = "caller verification",
    security(("bearer" = []), ("basic" = [])),
    request_body = CreateCallerVerificationRequest,
    responses(
        (status = 201, body = CallerVerificationResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody)
    )
)]
pub async fn create_caller_verification(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    ApiJson(req): ApiJson<CreateCallerVerificationRequest>,
) -> Result<(StatusCode, Json<CallerVerificationResponse>), ApiError> {
    let new = new_caller(&caller.tenant_id, caller.key_id.as_str(), &req, req.agent_id.as_deref());
    let cv = callers::create(&state, new).await?;
    Ok((StatusCode::CREATED, Json(to_response(&cv, state.clock.now()))))
}

/// One caller verification (its status changes as the customer answers).
#[utoipa::path(
    get,
    path = "/v1/caller-verifications/{id}",
    tag = "caller verification",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`cv_…`")),
    responses((status = 200, body = CallerVerificationResponse), (status = 404, body = ErrorBody))
)]
pub async fn get_caller_verification(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
) -> Result<Json<CallerVerificationResponse>, ApiError> {
    let cv = state.store.caller_verification(&caller.tenant_id, &id_of(&id)?).await?;
    Ok(Json(to_response(&cv, state.clock.now())))
}

/// Cancels a pending caller verification.
#[utoipa::path(
    post,
    path = "/v1/caller-verifications/{id}/cancel",
    tag = "caller verification",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`cv_…`")),
    responses((status = 200, body = CallerVerificationResponse), (status = 404, body = ErrorBody))
)]
pub async fn cancel_caller_verification(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
) -> Result<Json<CallerVerificationResponse>, ApiError> {
    let cv = state.store.caller_verification(&caller.tenant_id, &id_of(&id)?).await?;
    let audit = AuditEntry::new(
        caller.key_id.as_str(),
        "caller_verification.canceled",
        cv.id.as_str(),
        "canceled",
        state.clock.now(),
    );
    let after = callers::end(&state, &cv, CallerStatus::Canceled, None, &audit).await?;
    Ok(Json(to_response(&after, state.clock.now())))
}

/// Checks the code the customer read to the agent.
#[utoipa::path(
    post,
    path = "/v1/caller-verifications/{id}/check",
    tag = "caller verification",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`cv_…`")),
    request_body = CheckCallerCodeRequest,
    responses(
        (status = 200, body = CheckCallerCodeResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "conflict: the caller has a second factor and approves on the link with it")
    )
)]
pub async fn check_caller_code(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CheckCallerCodeRequest>,
) -> Result<Json<CheckCallerCodeResponse>, ApiError> {
    let (cv, valid) =
        callers::check(&state, &caller.tenant_id, caller.key_id.as_str(), &id_of(&id)?, &req.code).await?;
    Ok(Json(CheckCallerCodeResponse {
        id: cv.id.to_string(),
        status: cv.status_at(state.clock.now()).as_str().to_owned(),
        valid,
        attempts_remaining: cv.attempts_remaining(),
    }))
}

/// Every caller verification of a record, newest first.
#[utoipa::path(
    get,
    path = "/v1/records/{record_id}/transactions",
    tag = "caller verification",
    security(("bearer" = []), ("basic" = [])),
    params(("record_id" = String, Path)),
    responses((status = 200, body = TransactionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn record_transactions(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(record_id): Path<String>,
) -> Result<Json<TransactionList>, ApiError> {
    let now = state.clock.now();
    let list = state.store.record_transactions(&caller.tenant_id, &record_id, 200).await?;
    Ok(Json(TransactionList { transactions: list.iter().map(|cv| to_response(cv, now)).collect() }))
}
