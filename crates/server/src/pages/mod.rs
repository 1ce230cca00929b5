//! HTML pages for end users (the hosted challenge page): server-rendered,
//! working without JavaScript, under a strict Content-Security-Policy
//! (no inline script or style; assets from this server only), never
//! cached, never framed.

pub mod caller;
pub mod challenge;
pub mod console;
pub mod views;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::state::SharedState;

/// The cookie a page's CSRF tokens are bound to (HttpOnly, SameSite=Strict).
pub const CSRF_COOKIE: &str = "vs_csrf";

/// The value of the first cookie called `name` the browser sent.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// The CSRF cookie's value, if the browser sent a well-formed one.
pub fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, CSRF_COOKIE).filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn new_cookie_value() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The form token for a cookie and what the form acts on: a keyed hash of both.
pub fn csrf_token(state: &SharedState, scope: &str, cookie: &str) -> String {
    state.code_hasher.hash(scope, cookie)
}

pub fn csrf_ok(state: &SharedState, scope: &str, headers: &HeaderMap, given: Option<&str>) -> bool {
    match (csrf_cookie(headers), given) {
        // SECURITY: constant-time comparison of the token.
        (Some(cookie), Some(given)) => bool::from(csrf_token(state, scope, &cookie).as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    }
}

pub fn set_csrf_cookie(state: &SharedState, response: &mut Response, cookie: &str, path: &str) {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    let value = format!("{CSRF_COOKIE}={cookie}; Path={path}; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// An HTML response with the security headers every page carries.
/// `form_targets` are the origins a form here may end up at (after the
/// redirect that follows a successful answer).
pub fn html(status: axum::http::StatusCode, body: String, form_targets: &[String]) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    let form_action =
        std::iter::once("'self'".to_owned()).chain(form_targets.iter().cloned()).collect::<Vec<_>>().join(" ");
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src https:; connect-src 'self'; \
         form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let pairs = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::CACHE_CONTROL, "no-store".to_owned()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::REFERRER_POLICY, "no-referrer".to_owned()),
        (header::X_FRAME_OPTIONS, "DENY".to_owned()),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

pub async fn challenge_css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../assets/challenge.css"))
}

pub async fn challenge_js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/challenge.js"))
}

/// The HTML pages: the hosted challenge, the caller's page, the agent
/// console and their assets.
pub fn router(state: SharedState) -> axum::Router {
    use axum::Router;
    use axum::routing::get;
    Router::new()
        .route("/challenge/{id}", get(challenge::show).post(challenge::submit))
        .route("/challenge/{id}/passkey", axum::routing::post(challenge::passkey))
        .route("/caller/{token}", get(caller::show).post(caller::decide))
        .route("/caller/{token}/passkey", axum::routing::post(caller::passkey))
        .route("/console/helpdesk", get(console::show))
        .route("/console/login", axum::routing::post(console::login))
        .route("/console/logout", axum::routing::post(console::logout))
        .route("/console/helpdesk/verifications", axum::routing::post(console::start))
        .route("/console/helpdesk/verifications/{id}", get(console::status))
        .route("/console/helpdesk/records/{record_id}", get(console::transactions))
        .route("/assets/console.js", get(console::script))
        .route("/assets/challenge.css", get(challenge_css))
        .route("/assets/challenge.js", get(challenge_js))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use askama::Template;
    use vouchsafe_core::settings::Settings;

    use super::views::{ChallengePage, ChallengeView, Frame};

    /// Every value a page shows is escaped, in text and in attributes: a
    /// brand, a hint or passkey options cannot add markup or leave their
    /// attribute.
    #[test]
    fn pages_escape_what_they_show() {
        let mut settings = Settings::default();
        settings.branding.name = "<script>alert(1)</script>".into();
        settings.branding.logo_url = Some("javascript:alert(1)".into());
        let view = ChallengeView::Passkey {
            hint: "a < b & 'c'",
            error: "",
            options: r#"{"x":"\"><img src=x onerror=alert(1)>"}"#,
            csrf: "t\"k",
            action: "/challenge/chl_1/passkey".into(),
        };
        let html = ChallengePage { frame: Frame::new(&settings, "Verify it's you"), view }.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("javascript:"), "only https logos are shown: {html}");
        assert!(html.contains("data-csrf=\"t&#34;k\""), "{html}");
        assert!(html.contains("a &#60; b &#38; &#39;c&#39;"), "{html}");
    }
}
