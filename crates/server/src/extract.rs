//! Extractors whose rejections speak the API's error shape: malformed JSON
//! is `400 invalid_request` (`field: "body"`), a value of the wrong type or a
//! missing member is `422 invalid_request` naming the member, and a body over
//! the limit is `413 payload_too_large`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// The largest request body accepted (API.md).
pub const BODY_LIMIT: usize = 64 * 1024;

/// JSON request body, deserialised with the member path kept for errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::bad_request("body", "expected Content-Type: application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("body", "could not read the request body")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Query string, with rejections in the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request("query", rejection.body_text()))
    }
}

/// Parses a JSON document into `T`, naming the offending member on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => {
                let message = inner.to_string();
                ApiError::unprocessable(field_of(&path, &message), strip_position(&message))
            }
            _ => ApiError::bad_request("body", "malformed JSON"),
        }
    })?;
    de.end().map_err(|_| ApiError::bad_request("body", "malformed JSON: trailing characters"))?;
    Ok(value)
}

/// serde reports a missing member at its parent's path; name the member.
fn field_of(path: &str, message: &str) -> String {
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(str::to_owned);
    match (path, missing) {
        (".", Some(member)) => member,
        (".", None) => "body".to_owned(),
        (parent, Some(member)) => format!("{parent}.{member}"),
        (path, None) => path.to_owned(),
    }
}

/// serde_json appends " at line 1 column 17"; clients do not need it.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        role: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    fn field(body: &str) -> (StatusCode, String) {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Invalid { status, field, .. }) => (status, field),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_member() {
        assert_eq!(field(r#"{"inner": null}"#), (StatusCode::UNPROCESSABLE_ENTITY, "role".into()));
        assert_eq!(field(r#"{"role": 1}"#), (StatusCode::UNPROCESSABLE_ENTITY, "role".into()));
        assert_eq!(
            field(r#"{"role": "a", "inner": {"size": -1}}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, "inner.size".into())
        );
        assert_eq!(field(r#"{"role": "a", "inner": {}}"#), (StatusCode::UNPROCESSABLE_ENTITY, "inner.size".into()));
        assert_eq!(field(r#"{"role": "a", "extra": 1}"#), (StatusCode::UNPROCESSABLE_ENTITY, "extra".into()));
        assert_eq!(field(r#"{"role": "#), (StatusCode::BAD_REQUEST, "body".into()));
        assert_eq!(field(r#"{"role": "a"} x"#), (StatusCode::BAD_REQUEST, "body".into()));
    }
}
