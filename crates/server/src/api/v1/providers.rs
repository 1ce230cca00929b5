//! `/v1/providers`: the providers that carry codes, tried by priority with
//! failover. Settings are checked per type when saved, URLs and SMTP hosts
//! against the outbound-address rule too, so a saved provider can send.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::provider::{ProviderConfig, ProviderKind, ProviderSettings, validate_name};
use vouchsafe_core::store::StoreError;
use vouchsafe_proto::{ErrorBody, ProviderList, ProviderRequest, ProviderResponse};

use super::rfc3339;
use crate::auth::AdminCaller;
use crate::engine::admin::{self, Admin};
use crate::engine::error::EngineError;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

fn to_response(p: ProviderConfig) -> ProviderResponse {
    ProviderResponse {
        kind: p.kind().as_str().to_owned(),
        name: p.name,
        channels: p.channels.iter().map(|c| c.as_str().to_owned()).collect(),
        priority: p.priority,
        credential: p.credential,
        settings: p.settings.to_value(),
        enabled: p.enabled,
        created_at: rfc3339(p.created_at),
        updated_at: rfc3339(p.updated_at),
    }
}

/// Creates or replaces a provider.
#[utoipa::path(
    put,
    path = "/v1/providers/{name}",
    tag = "providers",
    security(("bearer" = []), ("basic" = [])),
    params(("name" = String, Path)),
    request_body = ProviderRequest,
    responses(
        (status = 200, body = ProviderResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)
    )
)]
pub async fn put_provider(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ProviderRequest>,
) -> Result<Json<ProviderResponse>, ApiError> {
    validate_name("name", &name)?;
    let kind = ProviderKind::parse(&req.kind)
        .ok_or_else(|| ApiError::unprocessable("type", "must be console, http, twilio, telesign or smtp"))?;
    let channels = match req.channels {
        Some(names) => names
            .iter()
            .map(|n| {
                Channel::parse(n).ok_or_else(|| ApiError::unprocessable("channels", "must be sms, voice or email"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Channel::ALL.into_iter().filter(|c| kind.supports(*c)).collect(),
    };
    let settings = req.settings.unwrap_or_else(|| Value::Object(Default::default()));
    let settings = ProviderSettings::parse(kind, &settings)?;
    let now = state.clock.now();
    let provider = ProviderConfig {
        tenant_id: caller.tenant_id.clone(),
        name: name.clone(),
        channels,
        priority: req.priority.unwrap_or(100),
        credential: req.credential,
        settings,
        enabled: req.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    let by = Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() };
    let saved = admin::put_provider(&state, &by, &provider).await.map_err(|e| match e {
        EngineError::Store(StoreError::NotFound) => ApiError::unprocessable("credential", "no credential by that name"),
        other => other.into(),
    })?;
    Ok(Json(to_response(saved)))
}

/// The tenant's providers, in the order they are tried.
#[utoipa::path(
    get,
    path = "/v1/providers",
    tag = "providers",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_providers(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<ProviderList>, ApiError> {
    let list = state.store.list_providers(&caller.tenant_id).await?;
    Ok(Json(ProviderList { providers: list.into_iter().map(to_response).collect() }))
}

/// Deletes a provider.
#[utoipa::path(
    delete,
    path = "/v1/providers/{name}",
    tag = "providers",
    security(("bearer" = []), ("basic" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn delete_provider(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin::delete_provider(&state, &Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() }, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
