//! `/v2/Services`: Twilio Verify services, which are vouchsafe services.
//! `FriendlyName` is the service's name, `CodeLength` its code length.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use vouchsafe_core::role::Role;
use vouchsafe_core::service::Service;
use vouchsafe_core::store::StoreError;
use vouchsafe_proto::{TwilioError, TwilioMeta, TwilioService, TwilioServiceList};

use super::{TwilioCaller, TwilioForm, TwilioQuery, V2Error, service_sid, twilio_time, url};
use crate::engine::admin::{self, Admin, DeleteServiceError};
use crate::engine::error::EngineError;
use crate::engine::services::{self, ServiceChange, UpdateError};
use crate::state::SharedState;

fn to_twilio(state: &SharedState, service: &Service, account_sid: &str, default_length: u32) -> TwilioService {
    let base = url(state, &format!("/Services/{}", service.id));
    TwilioService {
        sid: service.id.to_string(),
        account_sid: account_sid.to_owned(),
        friendly_name: service.name.clone(),
        code_length: service.code_length.unwrap_or(default_length),
        lookup_enabled: false,
        psd2_enabled: false,
        skip_sms_to_landlines: true,
        dtmf_input_required: false,
        tts_name: None,
        do_not_share_warning_enabled: false,
        custom_code_enabled: false,
        push: json!({}),
        totp: json!({}),
        default_template_sid: None,
        verify_event_subscription_enabled: false,
        date_created: twilio_time(service.created_at),
        date_updated: twilio_time(service.updated_at),
        links: json!({
            "verifications": format!("{base}/Verifications"),
            "verification_checks": format!("{base}/VerificationCheck"),
        }),
        url: base,
    }
}

async fn default_length(state: &SharedState, caller: &TwilioCaller) -> Result<u32, V2Error> {
    Ok(state.store.settings(&caller.tenant.id).await?.value.otp.code_length)
}

fn code_length(form: &TwilioForm) -> Result<Option<u32>, V2Error> {
    form.get("CodeLength")
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (4..=10).contains(n))
                .ok_or_else(|| V2Error::invalid("CodeLength", "must be 4 to 10"))
        })
        .transpose()
}

fn name_taken(e: StoreError) -> V2Error {
    match e {
        StoreError::Conflict(_) => V2Error::new(StatusCode::CONFLICT, 60200, "A service with that FriendlyName exists"),
        other => other.into(),
    }
}

/// Creates a service.
#[utoipa::path(
    post,
    path = "/v2/Services",
    tag = "twilio-compatible",
    security(("basic" = [])),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`FriendlyName`, `CodeLength`?"),
    responses(
        (status = 201, body = TwilioService),
        (status = 400, body = TwilioError),
        (status = 401, body = TwilioError),
        (status = 409, body = TwilioError)
    )
)]
pub async fn create_service(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    form: TwilioForm,
) -> Result<(StatusCode, Json<TwilioService>), V2Error> {
    caller.require(Role::Admin)?;
    let name = form.required("FriendlyName")?;
    let length = code_length(&form)?;
    let by = Admin { tenant: &caller.tenant.id, actor: caller.key_id.as_str() };
    let service = admin::create_service(&state, &by, name, length, None, None).await.map_err(|e| match e {
        EngineError::Refused(e) => V2Error::invalid("FriendlyName", &e.message),
        EngineError::Store(e) => name_taken(e),
        other => other.into(),
    })?;
    let default = default_length(&state, &caller).await?;
    Ok((StatusCode::CREATED, Json(to_twilio(&state, &service, caller.tenant.account_sid.as_str(), default))))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PageQuery {
    page: Option<u32>,
    page_size: Option<u32>,
}

/// Lists services, paged the Twilio way.
#[utoipa::path(
    get,
    path = "/v2/Services",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("PageSize" = Option<u32>, Query), ("Page" = Option<u32>, Query)),
    responses((status = 200, body = TwilioServiceList), (status = 401, body = TwilioError))
)]
pub async fn list_services(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    TwilioQuery(q): TwilioQuery<PageQuery>,
) -> Result<Json<TwilioServiceList>, V2Error> {
    caller.require(Role::Agent)?;
    let page = q.page.unwrap_or(0);
    let size = q.page_size.unwrap_or(50).clamp(1, 1000);
    let all = state.store.list_services(&caller.tenant.id).await?;
    let default = default_length(&state, &caller).await?;
    let start = (page as usize).saturating_mul(size as usize);
    let services: Vec<TwilioService> = all
        .iter()
        .skip(start)
        .take(size as usize)
        .map(|s| to_twilio(&state, s, caller.tenant.account_sid.as_str(), default))
        .collect();
    let page_url = |p: u32| url(&state, &format!("/Services?PageSize={size}&Page={p}"));
    let more = all.len() > start + services.len();
    Ok(Json(TwilioServiceList {
        services,
        meta: TwilioMeta {
            page,
            page_size: size,
            first_page_url: page_url(0),
            previous_page_url: (page > 0).then(|| page_url(page - 1)),
            url: page_url(page),
            next_page_url: more.then(|| page_url(page + 1)),
            key: "services".into(),
        },
    }))
}

/// One service.
#[utoipa::path(
    get,
    path = "/v2/Services/{Sid}",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("Sid" = String, Path)),
    responses((status = 200, body = TwilioService), (status = 401, body = TwilioError), (status = 404, body = TwilioError))
)]
pub async fn fetch_service(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    Path(sid): Path<String>,
) -> Result<Json<TwilioService>, V2Error> {
    caller.require(Role::Agent)?;
    let service = state.store.service(&caller.tenant.id, &service_sid(&sid)?).await?.value;
    let default = default_length(&state, &caller).await?;
    Ok(Json(to_twilio(&state, &service, caller.tenant.account_sid.as_str(), default)))
}

/// Changes `FriendlyName` and `CodeLength`.
#[utoipa::path(
    post,
    path = "/v2/Services/{Sid}",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("Sid" = String, Path)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`FriendlyName`?, `CodeLength`?"),
    responses((status = 200, body = TwilioService), (status = 400, body = TwilioError), (status = 404, body = TwilioError))
)]
pub async fn update_service(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    Path(sid): Path<String>,
    form: TwilioForm,
) -> Result<Json<TwilioService>, V2Error> {
    caller.require(Role::Admin)?;
    let id = service_sid(&sid)?;
    let change = ServiceChange {
        name: form.get("FriendlyName").map(str::to_owned),
        // Twilio's CodeLength sets a length; it never resets one.
        code_length: code_length(&form)?.map(Some),
        ..ServiceChange::default()
    };
    match services::update(&state, &caller.tenant.id, caller.key_id.as_str(), &id, &change).await {
        Ok(service) => {
            let default = default_length(&state, &caller).await?;
            Ok(Json(to_twilio(&state, &service, caller.tenant.account_sid.as_str(), default)))
        }
        Err(UpdateError::Invalid(e)) => Err(V2Error::invalid("FriendlyName", &e.message)),
        Err(UpdateError::Store(e)) => Err(name_taken(e)),
        Err(UpdateError::Busy) => {
            Err(V2Error::new(StatusCode::SERVICE_UNAVAILABLE, 20503, "The service is being changed; try again"))
        }
    }
}

/// Deletes a service (not the tenant's default one).
#[utoipa::path(
    delete,
    path = "/v2/Services/{Sid}",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("Sid" = String, Path)),
    responses((status = 204), (status = 400, body = TwilioError), (status = 404, body = TwilioError))
)]
pub async fn delete_service(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    Path(sid): Path<String>,
) -> Result<StatusCode, V2Error> {
    caller.require(Role::Admin)?;
    let id = service_sid(&sid)?;
    let by = Admin { tenant: &caller.tenant.id, actor: caller.key_id.as_str() };
    admin::delete_service(&state, &by, &id).await.map_err(|e| match e {
        DeleteServiceError::IsDefault => {
            V2Error::new(StatusCode::BAD_REQUEST, 60200, "The default service cannot be deleted")
        }
        DeleteServiceError::Engine(e) => e.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}
