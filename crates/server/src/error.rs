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
    /// The database is unreachable.
    Unavailable,
    /// Anything else; the text is logged, never sent.
    Internal(String),
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
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::Stale => Self::Conflict("changed by someone else meanwhile; try again"),
            StoreError::Backend(text) => Self::Internal(text),
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
        let (status, code, message, field) = match self {
            Self::Unauthorized => {
                (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "missing or invalid API key".to_owned(), None)
            }
            Self::Forbidden => {
                (StatusCode::FORBIDDEN, ErrorCode::Forbidden, "this API key's role may not do that".to_owned(), None)
            }
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
            Self::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, "database unavailable".to_owned(), None)
            }
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error".to_owned(), None)
            }
        };
        let body = ErrorBody { error: ErrorDetail { code, message, status: status.as_u16(), field } };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
