//! The middleware stack: request ids (`x-request-id`, made here unless the
//! client sent one of a safe shape), `Cache-Control: no-store` unless a
//! handler said otherwise, a tracing span per request that names the route
//! template (never the raw path, which may hold tokens), metrics, the body
//! limit, and panics turned into the API's `500` body.

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::extract::BODY_LIMIT;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long a request body may take to arrive once its head has.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Request ids made here: random (version 4) UUIDs, as tower-http's
/// `MakeRequestUuid` makes them, but drawn from the thread's generator
/// (a CSPRNG seeded by the OS and reseeded as it goes) where that asked
/// the OS for each one: a `getrandom` system call on every request
/// (`perf stat` on the server counted one per answer).
#[derive(Clone, Copy)]
struct MakeRandomUuid;

impl MakeRequestId for MakeRandomUuid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        use rand::RngExt;
        let id = uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        axum::http::HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)).ok().map(RequestId::new)
    }
}

fn make_span(req: &Request) -> tracing::Span {
    let request_id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        route = %route,
        tenant_id = tracing::field::Empty,
    )
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

/// SECURITY: a client's `x-request-id` is kept only if it has a safe shape
/// (1–64 letters, digits, `.`, `_`, `-`); anything else is dropped and a
/// new id made, so a request cannot write fields of its own into the logs.
fn is_safe_request_id(value: &[u8]) -> bool {
    (1..=64).contains(&value.len())
        && value.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn sanitize_request_id(req: &mut Request) {
    if req.headers().get_all(&REQUEST_ID).iter().count() > 1
        || req.headers().get(&REQUEST_ID).is_some_and(|v| !is_safe_request_id(v.as_bytes()))
    {
        req.headers_mut().remove(&REQUEST_ID);
    }
}

/// SECURITY: nothing the server answers is for a cache: API answers carry
/// secrets (enrollment seeds and recovery codes, key and webhook secrets,
/// result tokens) and pages carry state. A response that says nothing of
/// caching says `no-store`.
fn no_store_by_default(response: &mut Response) {
    if !response.headers().contains_key(axum::http::header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    }
}

/// The request's id sanitized on the way in, `no-store` on the way out:
/// one middleware, where each `from_fn` layer costs every request a boxed
/// future and a clone of the service inside it.
async fn headers_in_and_out(mut req: Request, next: axum::middleware::Next) -> Response {
    sanitize_request_id(&mut req);
    let mut response = next.run(req).await;
    no_store_by_default(&mut response);
    response
}

pub fn apply(router: Router) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(headers_in_and_out))
            .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION]))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRandomUuid))
            .layer(TraceLayer::new_for_http().make_span_with(make_span))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(CatchPanicLayer::custom(panic_response))
            // In the same stack: a layer of its own wrapped every route in
            // one more boxed service. Above the body's timeout, which
            // changes the body's type where `from_fn` takes axum's own.
            .layer(axum::middleware::from_fn(crate::metrics::track))
            // SECURITY: a body must arrive in time too (heads are timed by the listener).
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
            .layer(DefaultBodyLimit::max(BODY_LIMIT)),
    )
}

/// The documentation pages (Swagger UI, its assets, `/openapi.json`): the
/// pages' strict policy — scripts, styles and requests from this server
/// only, nothing framed, sniffed or used as a base for forms or plugins.
/// Swagger UI loads every script and style from its own files, but for one
/// `<style>` element its bundle injects, allowed by its hash (a Swagger UI
/// upgrade that changes it fails `the_docs_render_under_the_strict_policy`,
/// which names the new hash); its icons are `data:` images.
pub async fn docs_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let pairs = [
        (
            axum::http::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; \
             style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'",
        ),
        (axum::http::header::X_FRAME_OPTIONS, "DENY"),
        (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (axum::http::header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in pairs {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids made here are version 4 UUIDs in their usual text, each
    /// new: the shape tower-http's `MakeRequestUuid` gave them.
    #[test]
    fn request_ids_are_distinct_random_uuids() {
        let request = axum::http::Request::new(());
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let id = MakeRandomUuid.make_request_id(&request).unwrap_or_else(|| panic!("an id"));
                id.header_value().to_str().unwrap_or_default().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1000, "every id is new");
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(*id, parsed.hyphenated().to_string(), "lower case, hyphenated");
        }
    }
}
