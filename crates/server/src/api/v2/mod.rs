//! The Twilio-Verify-compatible surface (`/v2`): Services, Verifications
//! and VerificationCheck as Twilio's SDKs call them — form-encoded
//! PascalCase parameters in, Twilio-shaped snake_case JSON out, Basic auth
//! with the tenant's `account_sid` and an API-key secret, Twilio's error
//! codes. It is a translation layer over the same engine as `/v1`; no rule
//! lives here.

pub mod services;
pub mod verifications;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use time::macros::format_description;
use vouchsafe_core::ids::{ApiKeyId, ServiceId};
use vouchsafe_core::role::Role;
use vouchsafe_core::store::{SendRefusal, StoreError};
use vouchsafe_core::tenant::Tenant;
use vouchsafe_proto::TwilioError;

use crate::auth::key_by_secret;
use crate::engine::error::EngineError;
use crate::state::SharedState;

/// An error as Twilio writes it: HTTP status plus Twilio's numeric code.
#[derive(Debug)]
pub struct V2Error {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

impl V2Error {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn invalid(parameter: &str, why: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 60200, format!("Invalid parameter `{parameter}`: {why}"))
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 20404, "The requested resource was not found")
    }

    fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %vouchsafe_core::error::chain(cause), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error")
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let body = TwilioError {
            code: self.code,
            message: self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// `to` → `To`: Twilio names parameters in PascalCase.
fn parameter(field: &str) -> String {
    field
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

impl From<EngineError> for V2Error {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(f) | EngineError::Refused(f) | EngineError::InvalidPhoneNumber(f) => {
                Self::invalid(&parameter(&f.field), &f.message)
            }
            EngineError::Landline => {
                Self::new(StatusCode::BAD_REQUEST, 60205, "SMS is not supported by landline phone number")
            }
            EngineError::GeoNotPermitted(country) => Self::new(
                StatusCode::FORBIDDEN,
                60605,
                format!("Verification delivery attempt blocked: sending to {country} is not permitted"),
            ),
            EngineError::SendLimit(refusal) => {
                let why = match refusal {
                    SendRefusal::Cooldown { .. } => "a code was sent moments ago",
                    SendRefusal::MaxSends { .. } => "too many codes were sent",
                    SendRefusal::Fraud { .. } => "an hourly send limit is reached",
                };
                Self::new(StatusCode::TOO_MANY_REQUESTS, 60203, format!("Max send attempts reached ({why})"))
            }
            EngineError::ProviderUnavailable => {
                Self::new(StatusCode::BAD_GATEWAY, 20503, "Every provider for this channel failed; try again later")
            }
            EngineError::NotFound | EngineError::Store(StoreError::NotFound) => Self::not_found(),
            EngineError::Busy => Self::new(StatusCode::SERVICE_UNAVAILABLE, 20503, "Busy; try again"),
            EngineError::Saturated => Self::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too many requests"),
            EngineError::FactorRequired => Self::new(StatusCode::CONFLICT, 20409, "A second factor is required"),
            // The same outcome as on /v1: the object changed or exists.
            EngineError::Store(StoreError::Conflict(what) | StoreError::LimitReached(what)) => {
                Self::new(StatusCode::CONFLICT, 20409, what)
            }
            EngineError::Store(StoreError::Stale) => {
                Self::new(StatusCode::CONFLICT, 20409, "Changed by someone else meanwhile; try again")
            }
            e @ (EngineError::Store(_) | EngineError::Internal(_)) => Self::internal(&e),
        }
    }
}

impl From<StoreError> for V2Error {
    fn from(e: StoreError) -> Self {
        EngineError::from(e).into()
    }
}

/// The caller of `/v2`: `Basic base64(account_sid:secret)`.
pub struct TwilioCaller {
    pub key_id: ApiKeyId,
    pub tenant: Tenant,
    pub role: Role,
}

impl TwilioCaller {
    pub fn require(&self, role: Role) -> Result<(), V2Error> {
        if self.role.grants(role) {
            Ok(())
        } else {
            Err(V2Error::new(StatusCode::FORBIDDEN, 20403, "Forbidden: this API key's role may not do that"))
        }
    }
}

fn unauthorized() -> V2Error {
    V2Error::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
}

impl FromRequestParts<SharedState> for TwilioCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Response> {
        let fail = || {
            let mut response = unauthorized().into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"vouchsafe\""),
            );
            response
        };
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(fail)?;
        let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(fail)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(fail());
        }
        let decoded = STANDARD.decode(encoded.trim()).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(fail)?;
        let (account_sid, secret) = decoded.split_once(':').ok_or_else(fail)?;
        let key = key_by_secret(state, secret).await.map_err(|e| V2Error::from(e).into_response())?.ok_or_else(fail)?;
        let tenant = state.store.tenant(&key.tenant_id).await.map_err(|e| V2Error::from(e).into_response())?;
        if tenant.account_sid.as_str() != account_sid {
            tracing::info!(target: "vouchsafe::security", key_id = %key.id, "account SID does not match the key's tenant");
            return Err(fail());
        }
        tracing::Span::current().record("tenant_id", tracing::field::display(&tenant.id));
        Ok(TwilioCaller { key_id: key.id, tenant, role: key.role })
    }
}

/// Form-encoded parameters, by name (unknown ones are ignored, as Twilio's
/// SDKs may send more than a given endpoint reads).
pub struct TwilioForm(pub HashMap<String, String>);

impl TwilioForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, V2Error> {
        self.get(name).ok_or_else(|| V2Error::invalid(name, "is required"))
    }
}

impl FromRequest<SharedState> for TwilioForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            V2Error::new(StatusCode::PAYLOAD_TOO_LARGE, 20413, "Request body too large").into_response()
        })?;
        Ok(TwilioForm(url::form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}

/// A query string, with rejections as Twilio errors (`?PageSize=-1` is a
/// 400 with code 60200 in Twilio's JSON, not axum's plain text).
pub struct TwilioQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for TwilioQuery<T> {
    type Rejection = V2Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, V2Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| TwilioQuery(value))
            .map_err(|_| V2Error::invalid("PageSize/Page", "must be a whole number ≥ 0"))
    }
}

/// Twilio's timestamps: RFC 3339 to the second, UTC.
pub fn twilio_time(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.to_offset(time::UtcOffset::UTC).format(format).unwrap_or_default()
}

/// A service sid from the path, or Twilio's 404.
pub fn service_sid(text: &str) -> Result<ServiceId, V2Error> {
    ServiceId::parse(text).ok_or_else(V2Error::not_found)
}

/// The absolute URL of a `/v2` resource.
pub fn url(state: &SharedState, path: &str) -> String {
    format!("{}/v2{path}", state.public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store conflict is `409` here as on `/v1`; only a real failure is a `500`.
    #[test]
    fn store_outcomes_map_as_on_v1() {
        for e in [StoreError::Stale, StoreError::Conflict("exists")] {
            assert_eq!(V2Error::from(EngineError::Store(e)).status, StatusCode::CONFLICT);
        }
        assert_eq!(V2Error::from(StoreError::NotFound).status, StatusCode::NOT_FOUND);
        let damaged = EngineError::Store(StoreError::Damaged("service sv_1 has an unreadable name".into()));
        assert_eq!(V2Error::from(damaged).status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn parameters_are_named_the_twilio_way() {
        assert_eq!(parameter("to"), "To");
        assert_eq!(parameter("verification_sid"), "VerificationSid");
    }

    #[test]
    fn times_are_to_the_second() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap() + time::Duration::milliseconds(250);
        assert_eq!(twilio_time(at), "2023-11-14T22:13:20Z");
    }
}
