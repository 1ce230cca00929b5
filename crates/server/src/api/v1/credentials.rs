//! `/v1/credentials`: write-only provider secrets. A credential is sealed
//! with the master key (bound to its tenant and name) before it is stored;
//! no endpoint, log line or audit event ever shows it again.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use vouchsafe_core::provider::{Credential, CredentialInfo, validate_name};
use vouchsafe_proto::{CredentialList, CredentialRequest, CredentialResponse, ErrorBody};

use super::rfc3339;
use crate::auth::AdminCaller;
use crate::engine::admin::{self, Admin};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

fn to_response(c: CredentialInfo) -> CredentialResponse {
    CredentialResponse {
        name: c.name,
        kind: c.kind,
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    }
}

fn credential(req: CredentialRequest) -> Credential {
    match req {
        CredentialRequest::Basic { username, password } => Credential::Basic { username, password },
        CredentialRequest::Bearer { token } => Credential::Bearer { token },
        CredentialRequest::Header { header, value } => Credential::Header { header, value },
    }
}

/// Creates or replaces a credential.
#[utoipa::path(
    put,
    path = "/v1/credentials/{name}",
    tag = "providers",
    security(("bearer" = []), ("basic" = [])),
    params(("name" = String, Path)),
    request_body = CredentialRequest,
    responses(
        (status = 200, body = CredentialResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)
    )
)]
pub async fn put_credential(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CredentialRequest>,
) -> Result<Json<CredentialResponse>, ApiError> {
    validate_name("name", &name)?;
    let by = Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() };
    let info = admin::put_credential(&state, &by, &name, &credential(req)).await?;
    Ok(Json(to_response(info)))
}

/// Names and types of the tenant's credentials (never their secrets).
#[utoipa::path(
    get,
    path = "/v1/credentials",
    tag = "providers",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = CredentialList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_credentials(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<CredentialList>, ApiError> {
    let list = state.store.list_credentials(&caller.tenant_id).await?;
    Ok(Json(CredentialList { credentials: list.into_iter().map(to_response).collect() }))
}

/// Deletes a credential no provider uses (`409` while one does).
#[utoipa::path(
    delete,
    path = "/v1/credentials/{name}",
    tag = "providers",
    security(("bearer" = []), ("basic" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)
    )
)]
pub async fn delete_credential(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin::delete_credential(&state, &Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() }, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
