//! Operational endpoints: liveness, readiness, Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use vouchsafe_proto::{ErrorBody, HealthResponse};

use crate::error::ApiError;
use crate::state::SharedState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into() })
}

/// The database answers reads and would take a write (on SQLite the
/// writer thread runs an empty job).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody))
)]
pub async fn readyz(State(state): State<SharedState>) -> Result<Json<HealthResponse>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable
    })?;
    Ok(Json(HealthResponse { status: "ok".into() }))
}

/// Prometheus text format.
pub async fn metrics() -> impl IntoResponse {
    let body = match crate::metrics::handle() {
        Some(handle) => handle.render(),
        None => "# metrics recorder unavailable\n".to_owned(),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
