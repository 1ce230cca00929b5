//! `/v1/users/{user_id}`: the users of a login flow, by the integrator's
//! own id, with their authenticators (API.md, "Users, authenticators,
//! challenges"). Agents may manage them; secrets are shown once, at
//! enrollment, and never again.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use vouchsafe_core::authenticator::{Authenticator, AuthenticatorKind};
use vouchsafe_core::ids::AuthenticatorId;
use vouchsafe_core::user::User;
use vouchsafe_proto::{
    AuthenticatorList, AuthenticatorResponse, ConfirmAuthenticatorRequest, CreateAuthenticatorRequest, ErrorBody,
    PutUserRequest, ResyncAuthenticatorRequest, UserResponse,
};

use super::{no_store, rfc3339};
use crate::auth::AgentCaller;
use crate::engine::authenticators::{Proof, confirm, resync_token};
use crate::engine::users::{self, Created, UserContacts};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;
use crate::wire::new_authenticator;

fn user_response(u: User, now: time::OffsetDateTime) -> UserResponse {
    UserResponse {
        locked_until: u.locked_until.filter(|until| *until > now).map(rfc3339),
        id: u.id,
        phone: u.phone,
        email: u.email,
        display_name: u.display_name,
        privileged: u.privileged,
        created_at: rfc3339(u.created_at),
        updated_at: rfc3339(u.updated_at),
    }
}

fn authenticator_response(a: &Authenticator, remaining: Option<u32>) -> AuthenticatorResponse {
    AuthenticatorResponse {
        id: a.id.to_string(),
        kind: a.kind.as_str().to_owned(),
        status: a.status.as_str().to_owned(),
        label: a.label.clone(),
        secret: None,
        otpauth_uri: None,
        qr_svg: None,
        codes: None,
        options: None,
        remaining,
        created_at: rfc3339(a.created_at),
        last_used_at: a.last_used_at.map(rfc3339),
    }
}

/// Creates or updates a user.
#[utoipa::path(
    put,
    path = "/v1/users/{user_id}",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path, description = "the integrator's own id")),
    request_body = PutUserRequest,
    responses((status = 200, body = UserResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn put_user(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<PutUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let given = UserContacts {
        phone: req.phone.as_deref(),
        email: req.email.as_deref(),
        display_name: req.display_name.as_deref(),
        default_country: req.default_country.as_deref(),
        privileged: req.privileged.unwrap_or(false),
    };
    let user = users::put_user(&state, &caller.tenant_id, caller.key_id.as_str(), &user_id, given).await?;
    Ok(Json(user_response(user, state.clock.now())))
}

/// One user.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_user(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(user_id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = state.store.user(&caller.tenant_id, &user_id).await?;
    Ok(Json(user_response(user, state.clock.now())))
}

/// Deletes a user with every authenticator and challenge.
#[utoipa::path(
    delete,
    path = "/v1/users/{user_id}",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_user(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    users::delete_user(&state, &caller.tenant_id, caller.key_id.as_str(), &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enrolls an authenticator. TOTP answers its secret, `otpauth://` URI
/// and QR code once (confirm it with a first code); recovery codes
/// answer their 10 codes once and replace any earlier set.
#[utoipa::path(
    post,
    path = "/v1/users/{user_id}/authenticators",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path)),
    request_body = CreateAuthenticatorRequest,
    responses(
        (status = 201, body = AuthenticatorResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "conflict: the user has 20 authenticators, unconfirmed ones among them"),
        (status = 429, body = ErrorBody, description = "rate_limited: every slow-hash thread is busy (recovery codes; with Retry-After)")
    )
)]
pub async fn create_authenticator(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<CreateAuthenticatorRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let created = users::create_authenticator(
        &state,
        &caller.tenant_id,
        caller.key_id.as_str(),
        &user_id,
        &new_authenticator(&req),
    )
    .await?;
    let body = match created {
        Created::Passkey(a, options) => {
            let mut body = authenticator_response(&a, None);
            body.options = Some(options);
            body
        }
        Created::Enrolled(enrolled) => {
            let enrolled = *enrolled;
            let remaining = enrolled.codes.as_ref().map(|c| c.len() as u32);
            let mut body = authenticator_response(&enrolled.authenticator, remaining);
            body.secret = enrolled.secret_base32;
            body.otpauth_uri = enrolled.otpauth_uri;
            body.qr_svg = enrolled.qr_svg;
            body.codes = enrolled.codes;
            body
        }
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// The user's authenticators (never their secrets).
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/authenticators",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path)),
    responses((status = 200, body = AuthenticatorList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_authenticators(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path(user_id): Path<String>,
) -> Result<Json<AuthenticatorList>, ApiError> {
    state.store.user(&caller.tenant_id, &user_id).await?;
    let mut out = Vec::new();
    for a in state.store.authenticators(&caller.tenant_id, &user_id).await? {
        let remaining = if a.kind == AuthenticatorKind::RecoveryCodes {
            Some(state.store.unspent_recovery_codes(&a.id, None).await?.len() as u32)
        } else {
            None
        };
        out.push(authenticator_response(&a, remaining));
    }
    Ok(Json(AuthenticatorList { authenticators: out }))
}

/// Confirms a TOTP enrollment with the first code the app shows.
#[utoipa::path(
    post,
    path = "/v1/users/{user_id}/authenticators/{id}/confirm",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path), ("id" = String, Path, description = "`auth_…`")),
    request_body = ConfirmAuthenticatorRequest,
    responses(
        (status = 200, body = AuthenticatorResponse),
        (status = 400, body = ErrorBody, description = "the code does not match"),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn confirm_authenticator(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path((user_id, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ConfirmAuthenticatorRequest>,
) -> Result<Json<AuthenticatorResponse>, ApiError> {
    let id = AuthenticatorId::parse(&id).ok_or(ApiError::NotFound)?;
    let proof = Proof { code: req.code.as_deref(), credential: req.credential.as_ref() };
    let a = confirm(&state, &caller.tenant_id, caller.key_id.as_str(), &user_id, &id, proof).await?;
    Ok(Json(authenticator_response(&a, None)))
}

/// Resynchronises a hardware HOTP token that drifted past the look-ahead
/// window, from two consecutive codes; the counter only moves forward.
#[utoipa::path(
    post,
    path = "/v1/users/{user_id}/authenticators/{id}/resync",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path), ("id" = String, Path, description = "`auth_…` of an HOTP token")),
    request_body = ResyncAuthenticatorRequest,
    responses(
        (status = 200, body = AuthenticatorResponse),
        (status = 400, body = ErrorBody, description = "the codes are not consecutive codes of this token"),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn resync_authenticator(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path((user_id, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ResyncAuthenticatorRequest>,
) -> Result<Json<AuthenticatorResponse>, ApiError> {
    let id = AuthenticatorId::parse(&id).ok_or(ApiError::NotFound)?;
    let actor = caller.key_id.as_str();
    let a = resync_token(&state, &caller.tenant_id, actor, &user_id, &id, &req.code, &req.next_code).await?;
    Ok(Json(authenticator_response(&a, None)))
}

/// Removes an authenticator.
#[utoipa::path(
    delete,
    path = "/v1/users/{user_id}/authenticators/{id}",
    tag = "users",
    security(("bearer" = []), ("basic" = [])),
    params(("user_id" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_authenticator(
    State(state): State<SharedState>,
    AgentCaller(caller): AgentCaller,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = AuthenticatorId::parse(&id).ok_or(ApiError::NotFound)?;
    users::delete_authenticator(&state, &caller.tenant_id, caller.key_id.as_str(), &user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
