//! The `/v1` JSON API, one file per resource.

pub mod api_keys;
pub mod audit;
pub mod callbacks;
pub mod callers;
pub mod challenges;
pub mod credentials;
pub mod deliveries;
pub mod providers;
pub mod services;
pub mod settings;
pub mod tenant;
pub mod users;
pub mod verifications;
pub mod webhooks;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 UTC, as every time in the API is written.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Marks a response that holds a secret (shown once) as never cacheable.
pub fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    // SECURITY: a response holding a secret must not be cached anywhere.
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

pub use crate::engine::services::{CONFLICT_RETRIES, conflict_backoff};
