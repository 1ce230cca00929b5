//! `/v1/deliveries`: deliver a code the CRM made itself (a custom OTP
//! delivery handler). The answer carries Salesforce's delivery result so
//! the handler can pass it straight through; refusals are results too
//! (`200`), only malformed requests are errors. The code is never stored
//! or logged.

use axum::Json;
use axum::extract::{Path, State};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::delivery::{Delivery, DeliveryResult, DeliveryStatus, check_crm_code, check_message_carries_code};
use vouchsafe_core::fraud::counters_for;
use vouchsafe_core::ids::{DeliveryId, TenantId};
use vouchsafe_core::verification::{Destination, DestinationError};
use vouchsafe_delivery::provider::OutgoingMessage;
use vouchsafe_delivery::templates::{Values, render, render_custom};
use vouchsafe_proto::{CreateDeliveryRequest, DeliveryDetail, DeliveryResponse, ErrorBody};

use super::rfc3339;
use crate::auth::AgentCaller;
use crate::engine::send::{SendRequest, send};
use crate::engine::{parse_locale, sender_name, settings_and_service};
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

/// Records a delivery refused before any provider was asked.
async fn refused(
    state: &SharedState,
    tenant: &TenantId,
    channel: Channel,
    to: &str,
    country: Option<String>,
    result: DeliveryResult,
    why: &str,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let now = state.clock.now();
    let d = Delivery {
        id: DeliveryId::generate(),
        tenant_id: tenant.clone(),
        verification_id: None,
        channel,
        to: to.chars().take(64).collect(),
        country,
        status: DeliveryStatus::Rejected,
        result,
        provider: None,
        provider_message_id: None,
        error: Some(why.to_owned()),
        created_at: now,
        updated_at: now,
    };
    state.store.record_delivery(&d, None).await?;
    metrics::counter!("vouchsafe_deliveries_total", "channel" => channel.as_str(), "result" => result.as_str())
        .increment(1);
    Ok(Json(response(&d)))
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
    let locale = parse_locale(req.locale.as_deref())?;
    let tenant = &caller.tenant_id;
    let (settings, service, is_default) = settings_and_service(&state, tenant, None).await?;
    let country = settings.number_country(req.default_country.as_deref())?;
    let to = match Destination::parse_in(channel, "to", &req.to, country) {
        Ok(to) => to,
        Err(DestinationError::Invalid(_)) => {
            return refused(
                &state,
                tenant,
                channel,
                &req.to,
                None,
                DeliveryResult::InvalidPhoneNumber,
                "not a valid destination",
            )
            .await;
        }
        Err(DestinationError::Landline) => {
            return refused(
                &state,
                tenant,
                channel,
                &req.to,
                None,
                DeliveryResult::InvalidPhoneNumber,
                "a landline cannot receive SMS",
            )
            .await;
        }
    };
    let country = to.country().map(str::to_owned);
    if to.blocked_country(&settings).is_some() {
        return refused(
            &state,
            tenant,
            channel,
            to.as_str(),
            country,
            DeliveryResult::CountryBlock,
            "country not permitted",
        )
        .await;
    }
    let now = state.clock.now();
    if let Err(refusal) = state.store.count_sends(&counters_for(tenant, &to, &settings.fraud, now), now).await? {
        tracing::info!(to = %to.masked(), ?refusal, "delivery refused by a send limit");
        return refused(
            &state,
            tenant,
            channel,
            to.as_str(),
            country,
            DeliveryResult::MessageLimitExceeded,
            "send limit reached",
        )
        .await;
    }
    let rendered = match &req.message {
        Some(message) if !message.is_empty() => render_custom(channel, message, &req.code),
        _ => {
            let minutes = u64::from(service.ttl_s.unwrap_or(settings.otp.ttl_s)).div_ceil(60);
            let values = Values { code: &req.code, service: sender_name(&settings, &service, is_default), minutes };
            render(channel, &settings.templates, locale.as_deref(), &values)
        }
    };
    let message = OutgoingMessage {
        channel,
        to: to.as_str().to_owned(),
        to_masked: to.masked(),
        rendered,
        code: req.code.clone(),
        locale,
        user_id: req.user_id.clone(),
        network_id: req.network_id.clone(),
        experience_id: req.experience_id.clone(),
        status_callback: None,
    };
    let request = SendRequest { tenant_id: tenant.clone(), verification_id: None, country, message };
    let delivery = match send(&state, request).await {
        Ok(d) => d,
        Err(e) => {
            // The handler still gets a result it can pass through.
            tracing::error!(error = ?e, "delivery failed inside the server");
            return Ok(Json(DeliveryResponse {
                id: DeliveryId::generate().to_string(),
                result: DeliveryResult::Exception.as_str().to_owned(),
                provider: None,
                provider_message_id: None,
                error: Some("internal error".into()),
            }));
        }
    };
    metrics::counter!("vouchsafe_deliveries_total", "channel" => channel.as_str(), "result" => delivery.result.as_str())
        .increment(1);
    tracing::info!(delivery_id = %delivery.id, to = %to.masked(), result = delivery.result.as_str(), "delivery");
    Ok(Json(response(&delivery)))
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
