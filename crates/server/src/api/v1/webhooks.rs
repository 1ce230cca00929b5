//! `/v1/webhook-endpoints` (admin): endpoints with their one-time secrets,
//! secret rotation, the delivery log, a synchronous health check (`ping`)
//! and test events sent through the outbox.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::ids::{AttemptId, WebhookEndpointId};
use vouchsafe_core::store::Attempt;
use vouchsafe_core::webhook::WebhookEndpoint;
use vouchsafe_proto::{
    CreateWebhookEndpointRequest, CreatedWebhookEndpointResponse, DeliveryAttemptResponse, DeliveryList, ErrorBody,
    PingResponse, RotateSecretRequest, RotatedSecretResponse, TestEventResponse, UpdateWebhookEndpointRequest,
    WebhookEndpointList, WebhookEndpointResponse,
};

use super::{no_store, rfc3339};
use crate::auth::AdminCaller;
use crate::dispatcher::{open_secrets, signed_headers};
use crate::engine::webhooks::{self, EndpointChange, NewEndpoint, TestEventError, create_endpoint};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::SharedState;

fn to_response(e: WebhookEndpoint) -> WebhookEndpointResponse {
    WebhookEndpointResponse {
        id: e.id.to_string(),
        url: e.url,
        description: e.description,
        events: e.events.names(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason,
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
    }
}

async fn load(state: &SharedState, caller: &crate::auth::Caller, id: &str) -> Result<WebhookEndpoint, ApiError> {
    let id = WebhookEndpointId::parse(id).ok_or(ApiError::NotFound)?;
    Ok(state.store.webhook_endpoint(&caller.tenant_id, &id).await?)
}

/// Creates an endpoint; the response is the only place its secret appears.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    request_body = CreateWebhookEndpointRequest,
    responses(
        (status = 201, body = CreatedWebhookEndpointResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)
    )
)]
pub async fn create_webhook_endpoint(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(req): ApiJson<CreateWebhookEndpointRequest>,
) -> Result<Response, ApiError> {
    let new = NewEndpoint {
        tenant_id: &caller.tenant_id,
        actor: caller.key_id.as_str(),
        url: &req.url,
        events: req.events.as_deref(),
        description: req.description.as_deref(),
    };
    let per_tenant = state.config.webhooks.endpoints_per_tenant;
    let (endpoint, secret) =
        create_endpoint(&state.outbound, state.store.as_ref(), &state.sealer, state.clock.now(), per_tenant, new)
            .await?;
    let now = endpoint.created_at;
    let body = CreatedWebhookEndpointResponse {
        id: endpoint.id.to_string(),
        url: endpoint.url,
        description: endpoint.description,
        events: endpoint.events.names(),
        enabled: true,
        secret: secret.expose().to_string(),
        created_at: rfc3339(now),
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// Every endpoint of the tenant, without secrets.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = WebhookEndpointList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_webhook_endpoints(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<WebhookEndpointList>, ApiError> {
    let endpoints = state.store.list_webhook_endpoints(&caller.tenant_id).await?;
    Ok(Json(WebhookEndpointList { webhook_endpoints: endpoints.into_iter().map(to_response).collect() }))
}

/// One endpoint.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`whe_…`")),
    responses((status = 200, body = WebhookEndpointResponse), (status = 404, body = ErrorBody))
)]
pub async fn get_webhook_endpoint(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointResponse>, ApiError> {
    Ok(Json(to_response(load(&state, &caller, &id).await?)))
}

/// Changes url, events, description, or re-enables the endpoint.
#[utoipa::path(
    patch,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`whe_…`")),
    request_body = UpdateWebhookEndpointRequest,
    responses((status = 200, body = WebhookEndpointResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn update_webhook_endpoint(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateWebhookEndpointRequest>,
) -> Result<Json<WebhookEndpointResponse>, ApiError> {
    let id = WebhookEndpointId::parse(&id).ok_or(ApiError::NotFound)?;
    let change = EndpointChange {
        url: req.url.as_deref(),
        events: req.events.as_deref(),
        description: req.description.as_deref(),
        enabled: req.enabled,
    };
    let endpoint = webhooks::update_endpoint(&state, &caller.tenant_id, caller.key_id.as_str(), &id, change).await?;
    Ok(Json(to_response(endpoint)))
}

/// Deletes an endpoint, its pending messages and its delivery log.
#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`whe_…`")),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn delete_webhook_endpoint(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = WebhookEndpointId::parse(&id).ok_or(ApiError::NotFound)?;
    webhooks::delete_endpoint(&state, &caller.tenant_id, caller.key_id.as_str(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a new secret; the old one keeps signing beside it for `grace_s`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/rotate-secret",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`whe_…`")),
    request_body = RotateSecretRequest,
    responses((status = 200, body = RotatedSecretResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn rotate_webhook_secret(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RotateSecretRequest>,
) -> Result<Response, ApiError> {
    let id = WebhookEndpointId::parse(&id).ok_or(ApiError::NotFound)?;
    let actor = caller.key_id.as_str();
    let (secret, until) = webhooks::rotate_secret(&state, &caller.tenant_id, actor, &id, req.grace_s).await?;
    let body = RotatedSecretResponse {
        id: id.to_string(),
        secret: secret.expose().to_string(),
        previous_secret_expires_at: rfc3339(until),
    };
    Ok(no_store(Json(body).into_response()))
}

/// Health check: sends a signed `ping` now and reports how the endpoint answered.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/ping",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`whe_…`")),
    responses((status = 200, body = PingResponse), (status = 404, body = ErrorBody))
)]
pub async fn ping_webhook_endpoint(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<PingResponse>, ApiError> {
    let endpoint = load(&state, &caller, &id).await?;
    let now = state.clock.now();
    let sealed = state.store.webhook_secrets(&caller.tenant_id, &endpoint.id).await?;
    let secrets = open_secrets(&state.sealer, &endpoint.id, &sealed, now)
        .ok_or_else(|| ApiError::Internal("cannot open the endpoint secret".into()))?;
    let event =
        Event::new(caller.tenant_id.clone(), EventType::Ping, json!({"endpoint_id": endpoint.id.as_str()}), now);
    let body = event.body().to_owned();
    let started = Instant::now();
    let sent = state.outbound.post(&endpoint.url, signed_headers(&secrets, event.id.as_str(), now, &body), body).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let reply = match sent {
        Ok(response) => {
            let status = response.status();
            let error = match status.as_u16() {
                200..=299 => None,
                401 | 403 => Some(format!(
                    "the endpoint answered {status}: it refused the request. Check that it verifies signatures with \
                     this endpoint's current secret and that it accepts requests from this server's address."
                )),
                410 => Some(
                    "the endpoint answered 410 Gone: it asks us to stop sending; deliveries would disable it".into(),
                ),
                _ => Some(format!("the endpoint answered {status}")),
            };
            PingResponse { healthy: status.is_success(), status_code: Some(status.as_u16()), latency_ms, error }
        }
        Err(e) => PingResponse { healthy: false, status_code: None, latency_ms, error: Some(e.to_string()) },
    };
    Ok(Json(reply))
}

/// Queues a `ping` event for this endpoint through the outbox (signed,
/// retried and logged like every event), to test a receiver end to end.
/// At most `TEST_EVENTS_PER_HOUR` per endpoint; beyond, `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/test",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`whe_…`")),
    responses((status = 202, body = TestEventResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "more than 60 test events to this endpoint in the hour"))
)]
pub async fn send_test_event(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TestEventResponse>), ApiError> {
    let id = WebhookEndpointId::parse(&id).ok_or(ApiError::NotFound)?;
    match webhooks::send_test_event(&state, &caller.tenant_id, &id).await {
        Ok(event) => Ok((StatusCode::ACCEPTED, Json(TestEventResponse { event_id: event.id.to_string() }))),
        Err(TestEventError::Disabled) => Err(ApiError::Conflict("the endpoint is disabled; re-enable it first")),
        Err(TestEventError::Limited { retry_after_s }) => Err(ApiError::RateLimited { retry_after_s }),
        Err(TestEventError::Engine(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Return attempts older than this one (`next_cursor` of the previous page).
    pub cursor: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

fn to_attempt(a: Attempt) -> DeliveryAttemptResponse {
    DeliveryAttemptResponse {
        id: a.id.to_string(),
        event_id: a.event_id.to_string(),
        event_type: a.event_type,
        attempt: a.attempt,
        at: rfc3339(a.at),
        status_code: a.status_code,
        latency_ms: a.latency_ms,
        error: a.error,
        outcome: a.outcome,
    }
}

/// Every attempt to this endpoint, newest first: time, status code, latency, error.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/deliveries",
    tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`whe_…`"), PageQuery),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody))
)]
pub async fn list_deliveries(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let endpoint = load(&state, &caller, &id).await?;
    let limit = page.limit.unwrap_or(50);
    vouchsafe_core::field_error::check_range("limit", limit, 1..=200)?;
    let cursor = match &page.cursor {
        Some(c) => {
            Some(AttemptId::parse(c).ok_or_else(|| ApiError::unprocessable("cursor", "not a cursor from this list"))?)
        }
        None => None,
    };
    let attempts = state.store.webhook_attempts(&caller.tenant_id, &endpoint.id, cursor.as_ref(), limit).await?;
    let next_cursor = (attempts.len() as i64 == limit).then(|| attempts.last().map(|a| a.id.to_string())).flatten();
    Ok(Json(DeliveryList { deliveries: attempts.into_iter().map(to_attempt).collect(), next_cursor }))
}
