//! The one mapping from outcomes to HTTP: every error leaves the server as
//! `{"error": {"code", "message", "status", "field"?}}` with a stable code.
//! 5xx bodies are generic; their cause is logged inside the request span
//! (which carries the request id).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::store::StoreError;
use vouchsafe_proto::{ErrorBody, ErrorCode, ErrorDetail};

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    Forbidden,
    /// `403 forbidden` for a reason other than the key's role (a bad
    /// signature), said plainly.
    Refused(&'static str),
    NotFound,
    MethodNotAllowed,
    /// 400 for bodies that are not JSON, 422 for values out of bounds.
    Invalid {
        status: StatusCode,
        field: String,
        message: String,
    },
    PayloadTooLarge,
    Conflict(&'static str),
    /// A destination that is not a phone number (or email address).
    InvalidPhoneNumber {
        field: String,
        message: String,
    },
    /// The destination's country is not in `geo.allowed_countries`.
    GeoNotPermitted(String),
    /// A send limit; `Retry-After` says when to try again.
    MaxSendAttempts {
        retry_after_s: u64,
        message: String,
    },
    /// Every provider of the channel failed.
    ProviderUnavailable,
    /// At capacity for slow work; `Retry-After` says when to try again.
    RateLimited {
        retry_after_s: u64,
    },
    /// Too many failed answers: the user is locked for a while.
    UserLocked {
        retry_after_s: u64,
    },
    /// A privileged user must use a passkey.
    PhishingResistantFactorRequired,
    /// The database is unreachable.
    Unavailable,
    /// Anything else; the cause is logged (with its whole chain), never sent.
    Internal(vouchsafe_core::error::BoxError),
}

impl ApiError {
    pub fn unprocessable(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { status: StatusCode::UNPROCESSABLE_ENTITY, field: field.into(), message: message.into() }
    }

    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { status: StatusCode::BAD_REQUEST, field: field.into(), message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(what) | StoreError::LimitReached(what) => Self::Conflict(what),
            StoreError::Stale => Self::Conflict("changed by someone else meanwhile; try again"),
            e @ (StoreError::Backend(_) | StoreError::Damaged(_)) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::unprocessable(e.field, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, code, message, field) = match self {
            Self::Unauthorized => {
                (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "missing or invalid API key".to_owned(), None)
            }
            Self::Forbidden => {
                (StatusCode::FORBIDDEN, ErrorCode::Forbidden, "this API key's role may not do that".to_owned(), None)
            }
            Self::Refused(why) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, why.to_owned(), None),
            Self::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound, "not found".to_owned(), None),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "method not allowed on this path".to_owned(),
                None,
            ),
            Self::Invalid { status, field, message } => {
                (status, ErrorCode::InvalidRequest, format!("{field}: {message}"), Some(field))
            }
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "request body is larger than 64 KiB".to_owned(),
                None,
            ),
            Self::Conflict(what) => (StatusCode::CONFLICT, ErrorCode::Conflict, what.to_owned(), None),
            Self::InvalidPhoneNumber { field, message } => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidPhoneNumber, format!("{field}: {message}"), Some(field))
            }
            Self::GeoNotPermitted(country) => (
                StatusCode::FORBIDDEN,
                ErrorCode::GeoNotPermitted,
                format!("sending to numbers of {country} is not permitted for this tenant"),
                None,
            ),
            Self::MaxSendAttempts { retry_after_s, message } => {
                retry_after = Some(retry_after_s);
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::MaxSendAttemptsReached, message, None)
            }
            Self::RateLimited { retry_after_s } => {
                retry_after = Some(retry_after_s);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    "the server is busy checking other answers; try again in a moment".to_owned(),
                    None,
                )
            }
            Self::UserLocked { retry_after_s } => {
                retry_after = Some(retry_after_s);
                (
                    StatusCode::LOCKED,
                    ErrorCode::UserLocked,
                    "too many failed answers; this user is locked for a while".to_owned(),
                    None,
                )
            }
            Self::PhishingResistantFactorRequired => (
                StatusCode::FORBIDDEN,
                ErrorCode::PhishingResistantFactorRequired,
                "this user is privileged and must use a passkey".to_owned(),
                None,
            ),
            Self::ProviderUnavailable => (
                StatusCode::BAD_GATEWAY,
                ErrorCode::ProviderUnavailable,
                "every provider for this channel failed; try again later".to_owned(),
                None,
            ),
            Self::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, "database unavailable".to_owned(), None)
            }
            Self::Internal(cause) => {
                tracing::error!(error = %vouchsafe_core::error::chain(&*cause), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error".to_owned(), None)
            }
        };
        let body = ErrorBody { error: ErrorDetail { code, message, status: status.as_u16(), field } };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<crate::engine::error::EngineError> for ApiError {
    fn from(e: crate::engine::error::EngineError) -> Self {
        use crate::engine::error::EngineError as E;
        use vouchsafe_core::store::SendRefusal;
        match e {
            E::Invalid(f) => Self::bad_request(f.field, f.message),
            E::Refused(f) => f.into(),
            E::InvalidPhoneNumber(f) => Self::InvalidPhoneNumber { field: f.field, message: f.message },
            E::Landline => Self::bad_request("to", "is a landline, which cannot receive SMS; use the voice channel"),
            E::GeoNotPermitted(country) => Self::GeoNotPermitted(country),
            E::SendLimit(SendRefusal::Cooldown { retry_after_s }) => Self::MaxSendAttempts {
                retry_after_s,
                message: format!("a code was sent moments ago; wait {retry_after_s} s before asking for another"),
            },
            E::SendLimit(SendRefusal::MaxSends { retry_after_s }) => Self::MaxSendAttempts {
                retry_after_s,
                message: "too many codes were sent to this destination; try again later".into(),
            },
            E::SendLimit(SendRefusal::Fraud { scope, retry_after_s }) => Self::MaxSendAttempts {
                retry_after_s,
                message: format!("the hourly send limit per {scope} is reached; try again later"),
            },
            E::ProviderUnavailable => Self::ProviderUnavailable,
            E::NotFound => Self::NotFound,
            E::Busy => Self::Conflict("another start for this destination keeps winning; try again"),
            E::Saturated => Self::RateLimited { retry_after_s: 1 },
            E::FactorRequired => {
                Self::Conflict("this caller has a second factor and approves on the link with it, not with a code")
            }
            E::Store(e) => e.into(),
            e @ E::Internal(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<crate::engine::webhooks::EndpointError> for ApiError {
    fn from(e: crate::engine::webhooks::EndpointError) -> Self {
        use crate::engine::webhooks::EndpointError as E;
        match e {
            E::Invalid(f) => f.into(),
            E::Store(e) => e.into(),
            E::LimitReached(_) => Self::Conflict(
                "the tenant has as many webhook endpoints as it may (the server's webhook_endpoints_per_tenant); \
                 delete one first",
            ),
            E::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl ApiError {
    /// Maps a challenge outcome, with the lock's `Retry-After` from `now`.
    pub fn from_challenge(e: crate::engine::challenges::ChallengeError, now: time::OffsetDateTime) -> Self {
        use crate::engine::challenges::ChallengeError as C;
        match e {
            C::Engine(e) => e.into(),
            C::Locked(until) => {
                Self::UserLocked { retry_after_s: u64::try_from((until - now).whole_seconds()).unwrap_or(0).max(1) }
            }
            C::PhishingResistantRequired => Self::PhishingResistantFactorRequired,
        }
    }
}
