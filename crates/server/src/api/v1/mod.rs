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

pub use vouchsafe_core::clock::rfc3339;

/// Marks a response that holds a secret (shown once) as never cacheable.
pub fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    // SECURITY: a response holding a secret must not be cached anywhere.
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}
