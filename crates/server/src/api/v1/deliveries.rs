//! `/v1/deliveries`: deliver a code the CRM made itself (a custom OTP
//! delivery handler). The answer carries Salesforce's delivery result so
//! the handler can pass it straight through; refusals are results too
//! (`200`), only malformed requests are errors. The code is never stored
//! or logged.

use axum::Json;
use axum::extract::{Path, State};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::delivery::{Delivery, DeliveryResult, check_crm_code, check_message_carries_code};
use vouchsafe_core::ids::DeliveryId;
use vouchsafe_proto::{CreateDeliveryRequest, DeliveryDetail, DeliveryResponse, ErrorBody};

use super::rfc3339;
use crate::auth::AgentCaller;
use crate::engine::deliveries::{Delivered, NewDelivery, deliver};
use crate::engine::parse_locale;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

fn optional_text(field: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(ApiError::bad_request(field, format!("must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

fn response(d: &Delivery) -> DeliveryResponse {
    DeliveryResponse {
        id: d.id.to_string(),
        result: d.result.as_str().to_owned(),
        provider: d.provider.clone(),
        provider_message_id: d.provider_message_id.clone(),
        error: d.error.clone(),
    }
}

/// Delivers a code the caller made.
#[utoipa::path(
    post,
    path = "/v1/deliveries",
    tag = "deliveries",
    security(("bearer" = []), ("basic" = [])),
    request_body = CreateDeliveryRequest,
    responses(
        (status = 200, body = DeliveryResponse, description = "the delivery result, refusals included"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "invalid_request: a message that carries neither {code} nor the code")
    )
)]
pub async fn create_delivery(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    ApiJson(req): ApiJson<CreateDeliveryRequest>,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let channel =
        Channel::parse(&req.channel).ok_or_else(|| ApiError::bad_request("channel", "must be sms, voice or email"))?;
    check_crm_code(&req.code).map_err(|e| ApiError::bad_request(e.field, e.message))?;
    optional_text("message", &req.message, 1_000)?;
    if let Some(message) = req.message.as_deref().filter(|m| !m.is_empty()) {
        check_message_carries_code(message, &req.code)?;
    }
    for (field, value) in
        [("user_id", &req.user_id), ("network_id", &req.network_id), ("experience_id", &req.experience_id)]
    {
        optional_text(field, value, 100)?;
    }
    let new = NewDelivery {
        tenant_id: caller.tenant_id.clone(),
        channel,
        to: req.to,
        code: req.code,
        message: req.message,
        locale: parse_locale(req.locale.as_deref())?,
        default_country: req.default_country,
        user_id: req.user_id,
        network_id: req.network_id,
        experience_id: req.experience_id,
    };
    Ok(Json(match deliver(&state, new).await? {
        Delivered::Recorded(delivery) => response(&delivery),
        // The handler still gets a result it can pass through.
        Delivered::Failed => DeliveryResponse {
            id: DeliveryId::generate().to_string(),
            result: DeliveryResult::Exception.as_str().to_owned(),
            provider: None,
            provider_message_id: None,
            error: Some("internal error".into()),
        },
    }))
}

/// A delivery with its status (receipts included).
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`dlv_…`")),
    responses(
        (status = 200, body = DeliveryDetail),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn get_delivery(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let id = DeliveryId::parse(&id).ok_or(ApiError::NotFound)?;
    let d = state.store.delivery(&caller.tenant_id, &id).await?;
    Ok(Json(DeliveryDetail {
        id: d.id.to_string(),
        result: d.result.as_str().to_owned(),
        status: d.status.as_str().to_owned(),
        channel: d.channel.as_str().to_owned(),
        to: d.to,
        verification_id: d.verification_id.map(|v| v.to_string()),
        provider: d.provider,
        provider_message_id: d.provider_message_id,
        error: d.error,
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
    }))
}
