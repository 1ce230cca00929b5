//! `GET /v1/tenant`: the caller's own tenant.

use axum::Json;
use axum::extract::State;
use vouchsafe_proto::{ErrorBody, TenantResponse};

use crate::auth::AgentCaller;
use crate::error::ApiError;
use crate::state::SharedState;

/// The tenant of the calling API key.
#[utoipa::path(
    get,
    path = "/v1/tenant",
    tag = "tenant",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = TenantResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn get_tenant(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
) -> Result<Json<TenantResponse>, ApiError> {
    let tenant = state.store.tenant(&caller.tenant_id).await?;
    Ok(Json(TenantResponse {
        id: tenant.id.to_string(),
        name: tenant.name,
        account_sid: tenant.account_sid.as_str().to_owned(),
    }))
}
