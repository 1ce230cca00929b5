//! `/v2/Services/{ServiceSid}/Verifications` and `…/VerificationCheck`,
//! Twilio's way: `call` is vouchsafe's `voice`; a wrong code is `200
//! pending`; the check after the last allowed wrong one is `429 60202`; a
//! check of an approved, canceled or expired verification is `404 20404`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::ids::{ServiceId, VerificationId};
use vouchsafe_core::role::Role;
use vouchsafe_core::verification::{Verification, VerificationStatus};
use vouchsafe_proto::{TwilioError, TwilioSendCodeAttempt, TwilioVerification, TwilioVerificationCheck};

use super::{TwilioCaller, TwilioForm, V2Error, service_sid, twilio_time, url};
use crate::engine::verifications::{self, StartRequest, Target};
use crate::state::SharedState;

fn twilio_channel(channel: Channel) -> &'static str {
    match channel {
        Channel::Voice => "call",
        other => other.as_str(),
    }
}

async fn to_twilio(
    state: &SharedState,
    caller: &TwilioCaller,
    v: &Verification,
) -> Result<TwilioVerification, V2Error> {
    let now = state.clock.now();
    let status = v.status_at(now);
    let attempts = state.store.deliveries_of_verification(&caller.tenant.id, &v.id).await?;
    let sid = v.id.twilio_sid();
    Ok(TwilioVerification {
        url: url(state, &format!("/Services/{}/Verifications/{sid}", v.service_id)),
        sid,
        service_sid: v.service_id.to_string(),
        account_sid: caller.tenant.account_sid.as_str().to_owned(),
        to: v.to.clone(),
        channel: twilio_channel(v.channel).to_owned(),
        status: status.as_str().to_owned(),
        valid: status == VerificationStatus::Approved,
        lookup: json!({"carrier": null}),
        amount: None,
        payee: None,
        send_code_attempts: attempts
            .iter()
            .map(|d| TwilioSendCodeAttempt {
                attempt_sid: format!("VL{}", &d.id.as_str()[4..]),
                channel: twilio_channel(d.channel).to_owned(),
                time: twilio_time(d.created_at),
            })
            .collect(),
        date_created: twilio_time(v.created_at),
        date_updated: twilio_time(v.updated_at),
        sna: None,
    })
}

/// The verification a `VE…` sid names, in this service.
async fn verification_in(
    state: &SharedState,
    caller: &TwilioCaller,
    service: &ServiceId,
    sid: &str,
) -> Result<Verification, V2Error> {
    let id = VerificationId::from_twilio_sid(sid).ok_or_else(V2Error::not_found)?;
    let v = state.store.verification(&caller.tenant.id, &id).await?;
    if &v.service_id != service {
        return Err(V2Error::not_found());
    }
    Ok(v)
}

/// Sends a code (`To`, `Channel`: `sms`, `call` or `email`, `Locale`?).
#[utoipa::path(
    post,
    path = "/v2/Services/{ServiceSid}/Verifications",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("ServiceSid" = String, Path)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`To`, `Channel`, `Locale`?"),
    responses(
        (status = 201, body = TwilioVerification),
        (status = 400, body = TwilioError, description = "60200 bad parameter, 60205 SMS to a landline"),
        (status = 403, body = TwilioError, description = "60605 country not permitted"),
        (status = 404, body = TwilioError),
        (status = 429, body = TwilioError, description = "60203 max send attempts")
    )
)]
pub async fn create_verification(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    Path(service): Path<String>,
    form: TwilioForm,
) -> Result<(StatusCode, Json<TwilioVerification>), V2Error> {
    caller.require(Role::Agent)?;
    let service = service_sid(&service)?;
    let to = form.required("To")?;
    let channel = match form.required("Channel")? {
        "sms" => "sms",
        "call" => "voice",
        "email" => "email",
        _ => return Err(V2Error::invalid("Channel", "must be sms, call or email")),
    };
    if form.get("CustomCode").is_some() {
        return Err(V2Error::invalid("CustomCode", "custom codes are not enabled for this service"));
    }
    let v = verifications::start(
        &state,
        StartRequest {
            tenant_id: &caller.tenant.id,
            to,
            channel,
            service_id: Some(service.as_str()),
            locale: form.get("Locale"),
            default_country: None,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(to_twilio(&state, &caller, &v).await?)))
}

/// One verification.
#[utoipa::path(
    get,
    path = "/v2/Services/{ServiceSid}/Verifications/{Sid}",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("ServiceSid" = String, Path), ("Sid" = String, Path, description = "`VE…`")),
    responses((status = 200, body = TwilioVerification), (status = 404, body = TwilioError))
)]
pub async fn fetch_verification(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    Path((service, sid)): Path<(String, String)>,
) -> Result<Json<TwilioVerification>, V2Error> {
    caller.require(Role::Agent)?;
    let v = verification_in(&state, &caller, &service_sid(&service)?, &sid).await?;
    Ok(Json(to_twilio(&state, &caller, &v).await?))
}

/// `Status=canceled` ends a pending verification; `Status=approved`
/// approves it without a code.
#[utoipa::path(
    post,
    path = "/v2/Services/{ServiceSid}/Verifications/{Sid}",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("ServiceSid" = String, Path), ("Sid" = String, Path, description = "`VE…`")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`Status`: `canceled` or `approved`"),
    responses((status = 200, body = TwilioVerification), (status = 400, body = TwilioError), (status = 404, body = TwilioError))
)]
pub async fn update_verification(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    Path((service, sid)): Path<(String, String)>,
    form: TwilioForm,
) -> Result<Json<TwilioVerification>, V2Error> {
    caller.require(Role::Agent)?;
    let v = verification_in(&state, &caller, &service_sid(&service)?, &sid).await?;
    let wanted = match form.required("Status")? {
        "canceled" => VerificationStatus::Canceled,
        "approved" => VerificationStatus::Approved,
        _ => return Err(V2Error::invalid("Status", "must be canceled or approved")),
    };
    // Twilio: only a pending verification can be updated.
    if v.status_at(state.clock.now()) != VerificationStatus::Pending {
        return Err(V2Error::not_found());
    }
    let actor = caller.key_id.as_str();
    let after = if wanted == VerificationStatus::Canceled {
        verifications::cancel(&state, &caller.tenant.id, actor, v.id.as_str()).await?
    } else {
        verifications::approve(&state, &caller.tenant.id, actor, v.id.as_str()).await?
    };
    if after.status != wanted {
        // Settled some other way meanwhile.
        return Err(V2Error::not_found());
    }
    Ok(Json(to_twilio(&state, &caller, &after).await?))
}

/// Answers a settled verification the way Twilio does.
fn settled(status: VerificationStatus) -> V2Error {
    if status == VerificationStatus::MaxAttemptsReached {
        V2Error::new(StatusCode::TOO_MANY_REQUESTS, 60202, "Max check attempts reached")
    } else {
        V2Error::not_found()
    }
}

/// Checks a code (`Code`, and `To` or `VerificationSid`).
#[utoipa::path(
    post,
    path = "/v2/Services/{ServiceSid}/VerificationCheck",
    tag = "twilio-compatible",
    security(("basic" = [])),
    params(("ServiceSid" = String, Path)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`Code`, `To` or `VerificationSid`"),
    responses(
        (status = 200, body = TwilioVerificationCheck, description = "`approved`, or `pending` for a wrong code"),
        (status = 400, body = TwilioError),
        (status = 404, body = TwilioError, description = "20404: none, or approved, canceled or expired"),
        (status = 429, body = TwilioError, description = "60202: max check attempts reached")
    )
)]
pub async fn check_verification(
    State(state): State<SharedState>,
    caller: TwilioCaller,
    Path(service): Path<String>,
    form: TwilioForm,
) -> Result<Json<TwilioVerificationCheck>, V2Error> {
    caller.require(Role::Agent)?;
    let service = service_sid(&service)?;
    let code = form.required("Code")?;
    if code.len() > 64 {
        return Err(V2Error::invalid("Code", "is too long"));
    }
    let v = match (form.get("VerificationSid"), form.get("To")) {
        (Some(sid), _) => verification_in(&state, &caller, &service, sid).await?,
        (None, Some(to)) => {
            verifications::find(&state, &caller.tenant.id, Target::To { to, service_id: Some(service.as_str()) })
                .await?
        }
        (None, None) => return Err(V2Error::invalid("To", "To or VerificationSid is required")),
    };
    let status = v.status_at(state.clock.now());
    if status.is_final() {
        return Err(settled(status));
    }
    let checked =
        verifications::check(&state, &caller.tenant.id, caller.key_id.as_str(), Target::Id(v.id.as_str()), code)
            .await?;
    if !checked.counted {
        return Err(settled(checked.status));
    }
    let v = checked.verification;
    Ok(Json(TwilioVerificationCheck {
        sid: v.id.twilio_sid(),
        service_sid: v.service_id.to_string(),
        account_sid: caller.tenant.account_sid.as_str().to_owned(),
        to: v.to.clone(),
        channel: twilio_channel(v.channel).to_owned(),
        status: checked.status.as_str().to_owned(),
        valid: checked.valid,
        amount: None,
        payee: None,
        date_created: twilio_time(v.created_at),
        date_updated: twilio_time(v.updated_at),
        sna_attempts_error_codes: Vec::new(),
    }))
}
