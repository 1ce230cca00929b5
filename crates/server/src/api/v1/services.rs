//! `/v1/services`: a tenant's verification profiles. Anyone with the agent
//! role may read them (to pick a `service_id`); only admins change them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::ids::{ServiceId, TenantId};
use vouchsafe_core::service::Service;
use vouchsafe_core::store::StoreError;
use vouchsafe_proto::{CreateServiceRequest, ErrorBody, ServiceList, ServiceResponse, UpdateServiceRequest};

use super::rfc3339;
use crate::auth::{AdminCaller, AgentCaller};
use crate::engine::admin::{self, Admin, DeleteServiceError};
use crate::engine::error::EngineError;
use crate::engine::services::{self, ServiceChange, UpdateError};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

fn to_response(service: Service, default_id: &ServiceId) -> ServiceResponse {
    ServiceResponse {
        is_default: &service.id == default_id,
        id: service.id.to_string(),
        name: service.name,
        code_length: service.code_length,
        ttl_s: service.ttl_s,
        channels: service.channels.iter().map(|c| c.as_str().to_owned()).collect(),
        created_at: rfc3339(service.created_at),
        updated_at: rfc3339(service.updated_at),
    }
}

fn parse_channels(names: Option<Vec<String>>) -> Result<Option<Vec<Channel>>, ApiError> {
    names
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    Channel::parse(n).ok_or_else(|| ApiError::unprocessable("channels", "must be sms, voice or email"))
                })
                .collect()
        })
        .transpose()
}

async fn default_service_id(state: &SharedState, tenant: &TenantId) -> Result<ServiceId, ApiError> {
    Ok(state.store.tenant(tenant).await?.default_service_id)
}

fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::Conflict("a service with that name exists"),
        other => other.into(),
    }
}

/// Creates a service.
#[utoipa::path(
    post,
    path = "/v1/services",
    tag = "services",
    security(("bearer" = []), ("basic" = [])),
    request_body = CreateServiceRequest,
    responses(
        (status = 201, body = ServiceResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)
    )
)]
pub async fn create_service(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(req): ApiJson<CreateServiceRequest>,
) -> Result<(StatusCode, Json<ServiceResponse>), ApiError> {
    let channels = parse_channels(req.channels)?;
    let by = Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() };
    let service = admin::create_service(&state, &by, &req.name, req.code_length, req.ttl_s, channels).await.map_err(
        |e| match e {
            EngineError::Store(e) => name_taken(e),
            other => other.into(),
        },
    )?;
    let default_id = default_service_id(&state, &caller.tenant_id).await?;
    Ok((StatusCode::CREATED, Json(to_response(service, &default_id))))
}

/// Every service of the tenant, oldest first.
#[utoipa::path(
    get,
    path = "/v1/services",
    tag = "services",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = ServiceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_services(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
) -> Result<Json<ServiceList>, ApiError> {
    let default_id = default_service_id(&state, &caller.tenant_id).await?;
    let services = state.store.list_services(&caller.tenant_id).await?;
    Ok(Json(ServiceList { services: services.into_iter().map(|s| to_response(s, &default_id)).collect() }))
}

/// One service.
#[utoipa::path(
    get,
    path = "/v1/services/{id}",
    tag = "services",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`VA…`")),
    responses(
        (status = 200, body = ServiceResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn get_service(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(id): Path<String>,
) -> Result<Json<ServiceResponse>, ApiError> {
    let id = ServiceId::parse(&id).ok_or(ApiError::NotFound)?;
    let service = state.store.service(&caller.tenant_id, &id).await?.value;
    let default_id = default_service_id(&state, &caller.tenant_id).await?;
    Ok(Json(to_response(service, &default_id)))
}

/// Changes the members given; `null` returns `code_length`/`ttl_s` to the
/// tenant settings.
#[utoipa::path(
    patch,
    path = "/v1/services/{id}",
    tag = "services",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`VA…`")),
    request_body = UpdateServiceRequest,
    responses(
        (status = 200, body = ServiceResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)
    )
)]
pub async fn update_service(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateServiceRequest>,
) -> Result<Json<ServiceResponse>, ApiError> {
    let id = ServiceId::parse(&id).ok_or(ApiError::NotFound)?;
    let change = ServiceChange {
        name: req.name,
        code_length: req.code_length,
        ttl_s: req.ttl_s,
        channels: parse_channels(req.channels)?,
    };
    match services::update(&state, &caller.tenant_id, caller.key_id.as_str(), &id, &change).await {
        Ok(service) => {
            let default_id = default_service_id(&state, &caller.tenant_id).await?;
            Ok(Json(to_response(service, &default_id)))
        }
        Err(UpdateError::Invalid(e)) => Err(e.into()),
        Err(UpdateError::Store(e)) => Err(name_taken(e)),
        Err(UpdateError::Busy) => Err(ApiError::Conflict("the service is being changed by someone else; try again")),
    }
}

/// Deletes a service. The default service cannot be deleted.
#[utoipa::path(
    delete,
    path = "/v1/services/{id}",
    tag = "services",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`VA…`")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)
    )
)]
pub async fn delete_service(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = ServiceId::parse(&id).ok_or(ApiError::NotFound)?;
    let by = Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() };
    admin::delete_service(&state, &by, &id).await.map_err(|e| match e {
        DeleteServiceError::IsDefault => ApiError::Conflict("the default service cannot be deleted"),
        DeleteServiceError::Engine(e) => e.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}
