//! `GET/PATCH /v1/settings`: the tenant's settings document, changed by
//! JSON merge patch and validated as a whole before anything is stored.

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use vouchsafe_core::store::StoreError;
use vouchsafe_proto::ErrorBody;

use crate::auth::{AdminCaller, AgentCaller};
use crate::engine::admin::{self, Admin};
use crate::engine::error::EngineError;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;

fn document(settings: &vouchsafe_core::settings::Settings) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(settings).map(Json).map_err(|e| ApiError::Internal(Box::new(e)))
}

/// The settings, every member present (defaults filled in).
#[utoipa::path(
    get,
    path = "/v1/settings",
    tag = "settings",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn get_settings(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
) -> Result<Json<Value>, ApiError> {
    document(&state.store.settings(&caller.tenant_id).await?.value)
}

/// Applies a JSON merge patch (RFC 7386); `null` resets a member to its
/// default. Out-of-range values answer `422` naming the field.
#[utoipa::path(
    patch,
    path = "/v1/settings",
    tag = "settings",
    security(("bearer" = []), ("basic" = [])),
    request_body = Object,
    responses(
        (status = 200, body = Object),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)
    )
)]
pub async fn patch_settings(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let by = Admin { tenant: &caller.tenant_id, actor: caller.key_id.as_str() };
    match admin::patch_settings(&state, &by, &patch).await {
        Ok(next) => document(&next),
        Err(EngineError::Store(StoreError::Stale)) => {
            Err(ApiError::Conflict("settings are being changed by someone else; try again"))
        }
        Err(e) => Err(e.into()),
    }
}
