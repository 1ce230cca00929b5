//! Routes. Each resource has one file; this module assembles them, with
//! the OpenAPI document generated from their annotations, and serves that
//! document at `/openapi.json` and the embedded Swagger UI at `/docs`.

mod ops;
pub(crate) mod v1;
mod v2;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::SharedState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vouchsafe",
        description = "Self-hosted identity verification: one-time passwords and passkeys.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(vouchsafe_proto::ErrorBody, vouchsafe_proto::ErrorCode, vouchsafe_proto::TwilioError))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

/// The errors any API operation may answer, whatever its own annotation
/// lists: malformed input (400, 422), no or the wrong key (401, 403), an
/// unknown id (404), a conflict (409) and the rate limits (429). Each is
/// added, with the error body of its API, where the operation does not
/// document it itself, so clients and schema checkers know every answer.
fn with_error_responses(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    const COMMON: &[(&str, &str)] = &[
        ("400", "Malformed request"),
        ("401", "No API key, or an unknown or revoked one"),
        ("403", "The API key's role does not allow this"),
        ("404", "Not found"),
        ("409", "Conflict with the current state"),
        ("422", "A field is invalid"),
        ("429", "Too many requests; see Retry-After"),
    ];
    for (path, item) in openapi.paths.paths.iter_mut() {
        let schema = match path.as_str() {
            p if p.starts_with("/v2/") => "TwilioError",
            p if p.starts_with("/v1/") => "ErrorBody",
            _ => continue,
        };
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for (status, description) in COMMON {
                operation.responses.responses.entry((*status).to_owned()).or_insert_with(|| {
                    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build();
                    ResponseBuilder::new().description(*description).content("application/json", content).build().into()
                });
            }
        }
    }
    openapi
}

/// The JSON API (`/v1`, `/v2`), the operational endpoints and the API
/// reference (`/openapi.json`, `/docs`).
pub fn router(state: SharedState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(v1::tenant::get_tenant))
        .routes(routes!(v1::api_keys::create_api_key, v1::api_keys::list_api_keys))
        .routes(routes!(v1::api_keys::revoke_api_key))
        .routes(routes!(v1::settings::get_settings, v1::settings::patch_settings))
        .routes(routes!(v1::services::create_service, v1::services::list_services))
        .routes(routes!(v1::services::get_service, v1::services::update_service, v1::services::delete_service))
        .routes(routes!(v1::webhooks::create_webhook_endpoint, v1::webhooks::list_webhook_endpoints))
        .routes(routes!(
            v1::webhooks::get_webhook_endpoint,
            v1::webhooks::update_webhook_endpoint,
            v1::webhooks::delete_webhook_endpoint
        ))
        .routes(routes!(v1::webhooks::rotate_webhook_secret))
        .routes(routes!(v1::webhooks::ping_webhook_endpoint))
        .routes(routes!(v1::webhooks::send_test_event))
        .routes(routes!(v1::webhooks::list_deliveries))
        .routes(routes!(v1::credentials::list_credentials))
        .routes(routes!(v1::credentials::put_credential, v1::credentials::delete_credential))
        .routes(routes!(v1::providers::list_providers))
        .routes(routes!(v1::providers::put_provider, v1::providers::delete_provider))
        .routes(routes!(v1::verifications::create_verification))
        .routes(routes!(v1::verifications::check_verification))
        .routes(routes!(v1::verifications::get_verification))
        .routes(routes!(v1::verifications::cancel_verification))
        .routes(routes!(v1::deliveries::create_delivery))
        .routes(routes!(v1::deliveries::get_delivery))
        .routes(routes!(v1::callbacks::twilio_callback))
        .routes(routes!(v1::users::put_user, v1::users::get_user, v1::users::delete_user))
        .routes(routes!(v1::users::create_authenticator, v1::users::list_authenticators))
        .routes(routes!(v1::users::delete_authenticator))
        .routes(routes!(v1::users::confirm_authenticator))
        .routes(routes!(v1::users::resync_authenticator))
        .routes(routes!(v1::callers::create_caller_verification))
        .routes(routes!(v1::callers::get_caller_verification))
        .routes(routes!(v1::callers::cancel_caller_verification))
        .routes(routes!(v1::callers::check_caller_code))
        .routes(routes!(v1::callers::record_transactions))
        .routes(routes!(v1::challenges::create_challenge))
        .routes(routes!(v1::challenges::validate_token))
        .routes(routes!(v1::challenges::get_challenge))
        .routes(routes!(v1::challenges::verify_challenge))
        .routes(routes!(v2::services::create_service, v2::services::list_services))
        .routes(routes!(v2::services::fetch_service, v2::services::update_service, v2::services::delete_service))
        .routes(routes!(v2::verifications::create_verification))
        .routes(routes!(v2::verifications::fetch_verification, v2::verifications::update_verification))
        .routes(routes!(v2::verifications::check_verification))
        .routes(routes!(v1::audit::list_audit_events))
        .routes(routes!(v1::audit::verify_audit_events))
        .with_state(state.clone())
        .split_for_parts();
    let openapi = with_error_responses(openapi);
    api.route("/metrics", get(ops::metrics)).merge(
        axum::Router::from(SwaggerUi::new("/docs").url("/openapi.json", openapi))
            .layer(axum::middleware::from_fn(crate::layers::docs_headers)),
    )
}
