//! The pages' markup: askama templates under `crates/server/templates/`,
//! checked at compile time. Every value is HTML-escaped by the engine
//! unless a template says otherwise (none does), in element text and in
//! quoted attributes alike, so no handler builds HTML or escapes by hand.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use vouchsafe_core::settings::Settings;

/// What every page shows around its body: the title and the tenant's brand.
pub struct Frame<'a> {
    pub title: &'a str,
    pub brand: &'a str,
    /// Only an `https://` logo is shown.
    pub logo: Option<&'a str>,
    pub message: Option<&'a str>,
}

impl<'a> Frame<'a> {
    pub fn new(settings: &'a Settings, title: &'a str) -> Self {
        let branding = &settings.branding;
        Self {
            title,
            brand: &branding.name,
            logo: branding.logo_url.as_deref().filter(|url| url.starts_with("https://")),
            message: branding.message.as_deref(),
        }
    }
}

#[derive(Template)]
#[template(path = "not_found.html")]
pub struct NotFound<'a> {
    pub frame: Frame<'a>,
    pub help: Option<&'a str>,
}

/// The hosted challenge page, by the challenge's state.
pub enum ChallengeView<'a> {
    Approved,
    Denied,
    Expired,
    Passkey { hint: &'a str, error: &'a str, options: &'a str, csrf: &'a str, action: String },
    Code { hint: &'a str, error: &'a str, csrf: &'a str, action: String, label: &'a str, inputmode: &'a str },
}

#[derive(Template)]
#[template(path = "challenge.html")]
pub struct ChallengePage<'a> {
    pub frame: Frame<'a>,
    pub view: ChallengeView<'a>,
}

/// How a pending caller approves: with a passkey, or a form (with a code
/// field when the user has a code authenticator).
pub enum Approve<'a> {
    Passkey { options: &'a str, action: String },
    Form { code: bool },
}

/// The caller's page, by the verification's state.
pub enum CallerView<'a> {
    Verified,
    Denied,
    Expired,
    Pending { csrf: &'a str, error: &'a str, approve: Approve<'a> },
}

#[derive(Template)]
#[template(path = "caller.html")]
pub struct CallerPage<'a> {
    pub frame: Frame<'a>,
    pub view: CallerView<'a>,
}

#[derive(Template)]
#[template(path = "console_login.html")]
pub struct ConsoleLogin<'a> {
    pub frame: Frame<'a>,
    pub csrf: &'a str,
    pub error: &'a str,
}

#[derive(Template)]
#[template(path = "console.html")]
pub struct Console<'a> {
    pub frame: Frame<'a>,
    pub csrf: &'a str,
}

/// A page as an HTML response with the pages' security headers (see
/// [`super::html`]). A template that fails to render (it cannot, for
/// these types) is logged and answered `500`.
pub fn page(template: &impl Template, status: StatusCode, form_targets: &[String]) -> Response {
    match template.render() {
        Ok(body) => super::html(status, body, form_targets),
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            super::html(StatusCode::INTERNAL_SERVER_ERROR, "<!doctype html><p>Something went wrong.</p>".into(), &[])
        }
    }
}
