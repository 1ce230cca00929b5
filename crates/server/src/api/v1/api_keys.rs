//! `/v1/api-keys`: create (secret shown once), list (never secrets), revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vouchsafe_core::api_key::ApiKey;
use vouchsafe_core::ids::ApiKeyId;
use vouchsafe_core::role::Role;
use vouchsafe_proto::{ApiKeyList, ApiKeyResponse, CreateApiKeyRequest, CreatedApiKeyResponse, ErrorBody};

use super::{no_store, rfc3339};
use crate::auth::AdminCaller;
use crate::engine::admin::{self, Admin};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

fn to_response(key: ApiKey) -> ApiKeyResponse {
    ApiKeyResponse {
        id: key.id.to_string(),
        name: key.name,
        role: key.role.as_str().to_owned(),
        hint: key.hint,
        created_at: rfc3339(key.created_at),
        revoked_at: key.revoked_at.map(rfc3339),
    }
}

/// Creates a key; the response is the only place its secret ever appears.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api-keys",
    security(("bearer" = []), ("basic" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = CreatedApiKeyResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)
    )
)]
pub async fn create_api_key(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    let role =
        Role::parse(&req.role).ok_or_else(|| ApiError::unprocessable("role", "must be admin, agent or webhook"))?;
    let name = req.name.unwrap_or_default();
    let by = Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() };
    let (key, secret) = admin::create_api_key(&state, &by, role, &name).await?;
    let body = CreatedApiKeyResponse {
        id: key.id.to_string(),
        name: key.name,
        role: key.role.as_str().to_owned(),
        tenant_id: key.tenant_id.to_string(),
        secret: secret.expose().to_owned(),
        hint: key.hint,
        created_at: rfc3339(key.created_at),
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// Every key of the tenant, revoked ones included, without secrets.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_api_keys(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = state.store.list_api_keys(&caller.tenant_id).await?;
    Ok(Json(ApiKeyList { api_keys: keys.into_iter().map(to_response).collect() }))
}

/// Revokes a key at once: its next request answers `401`.
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    security(("bearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "`key_…`")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn revoke_api_key(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = ApiKeyId::parse(&id).ok_or(ApiError::NotFound)?;
    admin::revoke_api_key(&state, &Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() }, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
