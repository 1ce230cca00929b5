//! `/v1/audit-events` (admin): the tenant's hash-chained audit log, and a
//! check of the whole chain.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use vouchsafe_core::audit::verify_stored_chain;
use vouchsafe_proto::{AuditEventList, AuditEventResponse, AuditVerifyResponse, ErrorBody};

use super::rfc3339;
use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::SharedState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Events after this sequence number (0, the default, from the start).
    pub after: Option<i64>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
}

/// Audit events, oldest first.
#[utoipa::path(
    get,
    path = "/v1/audit-events",
    tag = "audit",
    security(("bearer" = []), ("basic" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditEventList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_audit_events(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditEventList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    vouchsafe_core::field_error::check_range("limit", limit, 1..=1000)?;
    let events = state.store.audit_events(&caller.tenant_id, q.after.unwrap_or(0), limit).await?;
    let next_cursor = (events.len() as i64 == limit).then(|| events.last().map(|e| e.seq)).flatten();
    let events = events
        .into_iter()
        .map(|e| AuditEventResponse {
            seq: e.seq,
            at: rfc3339(e.entry.at),
            actor: e.entry.actor,
            action: e.entry.action,
            target: e.entry.target,
            outcome: e.entry.outcome,
            hash: e.hash,
            prev_hash: e.prev_hash,
        })
        .collect();
    Ok(Json(AuditEventList { events, next_cursor }))
}

/// Recomputes the whole chain's HMACs; `valid: false` names the first bad
/// event, `head_hash` is the hash to record elsewhere.
#[utoipa::path(
    get,
    path = "/v1/audit-events/verify",
    tag = "audit",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = AuditVerifyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn verify_audit_events(
    State(state): State<SharedState>,
    AdminCaller(caller): AdminCaller,
) -> Result<Json<AuditVerifyResponse>, ApiError> {
    let check = verify_stored_chain(state.store.as_ref(), &caller.tenant_id, &state.audit_key).await?;
    if !check.valid {
        tracing::warn!(target: "vouchsafe::security", tenant_id = %caller.tenant_id, first_bad_seq = ?check.first_bad_seq, "audit chain broken");
    }
    Ok(Json(AuditVerifyResponse {
        valid: check.valid,
        count: check.count,
        first_bad_seq: check.first_bad_seq,
        head_hash: check.head_hash,
    }))
}
