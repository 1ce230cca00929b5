//! `/v1/provider-callbacks/twilio`: Twilio's status callbacks (delivery
//! receipts). Twilio cannot present an API key, so each callback proves
//! itself with `X-Twilio-Signature`, an HMAC under the auth token of the
//! provider that sent the message; the callback URL names the delivery,
//! whose record names tenant and provider. An `Authorization` header, if
//! the operator put one in the URL, must be a key of the `webhook` role.
//!
//! A final status settles the delivery once; `undelivered`/`failed` (and
//! calls not answered) emit `delivery.failed`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use subtle::ConstantTimeEq;
use vouchsafe_core::delivery::DeliveryStatus;
use vouchsafe_core::ids::DeliveryId;
use vouchsafe_core::provider::{Credential, ProviderKind};
use vouchsafe_core::role::Role;
use vouchsafe_delivery::providers::twilio::signature;
use vouchsafe_proto::ErrorBody;

use crate::auth::authenticate;
use crate::engine::deliveries::record_receipt;
use crate::engine::send::open_credential;
use crate::error::ApiError;
use crate::state::SharedState;

/// A Twilio message or call status, as the delivery it settles.
fn settled(status: &str) -> Option<DeliveryStatus> {
    match status {
        "delivered" | "completed" | "read" => Some(DeliveryStatus::Delivered),
        "undelivered" | "failed" | "busy" | "no-answer" | "canceled" => Some(DeliveryStatus::Undelivered),
        _ => None,
    }
}

async fn check_key(parts: &Parts, state: &SharedState) -> Result<(), ApiError> {
    if parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
        let caller = authenticate(parts, state).await?;
        if !caller.role.grants(Role::Webhook) {
            return Err(ApiError::Forbidden);
        }
    }
    Ok(())
}

/// Records a Twilio status callback.
#[utoipa::path(
    post,
    path = "/v1/provider-callbacks/twilio",
    tag = "providers",
    params(("delivery_id" = String, Query, description = "`dlv_…`, put in the callback URL by the server")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback parameters (`MessageSid`, `MessageStatus`, `CallStatus`, `ErrorCode`, …)"),
    responses(
        (status = 204, description = "recorded (or already settled)"),
        (status = 403, body = ErrorBody, description = "missing or wrong X-Twilio-Signature"),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn twilio_callback(
    State(state): State<SharedState>,
    parts: Parts,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    check_key(&parts, &state).await?;
    let headers: &HeaderMap = &parts.headers;
    let query = query.unwrap_or_default();
    let delivery_id = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "delivery_id")
        .and_then(|(_, v)| DeliveryId::parse(&v))
        .ok_or(ApiError::NotFound)?;
    let delivery = state.store.delivery_for_callback(&delivery_id).await?;
    let provider_name = delivery.provider.clone().ok_or(ApiError::NotFound)?;
    let provider = state
        .store
        .list_providers(&delivery.tenant_id)
        .await?
        .into_iter()
        .find(|p| p.name == provider_name && p.kind() == ProviderKind::Twilio)
        .ok_or(ApiError::NotFound)?;
    let bad_signature = || ApiError::Refused("the X-Twilio-Signature does not sign this request");
    let credential_name = provider.credential.ok_or_else(bad_signature)?;
    let credential = open_credential(&state, &delivery.tenant_id, &credential_name).await;
    let Ok(Credential::Basic { password: auth_token, .. }) = &credential else {
        return Err(bad_signature());
    };
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let url = format!("{}{}?{query}", state.public_url.trim_end_matches('/'), parts.uri.path());
    let expected = signature(auth_token, &url, &params);
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    // SECURITY: constant-time comparison of the signatures.
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        tracing::warn!(target: "vouchsafe::security", delivery_id = %delivery_id, "Twilio callback with a bad signature");
        return Err(bad_signature());
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let status = param("MessageStatus").or_else(|| param("CallStatus")).unwrap_or_default();
    let Some(settled) = settled(status) else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let error = match param("ErrorCode") {
        Some(code) if code.bytes().all(|b| b.is_ascii_digit()) && !code.is_empty() => {
            format!("twilio: {status} (error {code})")
        }
        _ => format!("twilio: {status}"),
    };
    record_receipt(&state, &delivery, settled, Some(error), "twilio").await?;
    Ok(StatusCode::NO_CONTENT)
}
