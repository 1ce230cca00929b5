//! Authentication and roles. A request carries an API-key secret either as
//! `Authorization: Bearer vsk_…` or as `Basic base64(key_…:vsk_…)` (the form
//! CRM named credentials use). The secret is hashed with the server's key
//! and looked up; a revoked key stops working with the next request.
//!
//! Handlers name the role they need by their extractor: [`AdminCaller`],
//! [`AgentCaller`] (admins pass too).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use vouchsafe_core::api_key::{ApiKey, looks_like_secret};
use vouchsafe_core::ids::{ApiKeyId, TenantId};
use vouchsafe_core::role::Role;
use vouchsafe_core::store::StoreError;

use crate::error::ApiError;
use crate::state::SharedState;

/// Who is calling: the key, its tenant and its role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: ApiKeyId,
    pub tenant_id: TenantId,
    pub role: Role,
}

enum Presented {
    Bearer(String),
    Basic { user: String, secret: String },
}

fn presented(parts: &Parts) -> Option<Presented> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Presented::Bearer(rest.to_owned()))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(STANDARD.decode(rest).ok()?).ok()?;
        let (user, secret) = decoded.split_once(':')?;
        Some(Presented::Basic { user: user.to_owned(), secret: secret.to_owned() })
    } else {
        None
    }
}

/// The live (unrevoked) API key whose secret this is; `None`, logged, for
/// anything else. Both API versions authenticate through here.
pub async fn key_by_secret(state: &SharedState, secret: &str) -> Result<Option<ApiKey>, StoreError> {
    if !looks_like_secret(secret) {
        return Ok(None);
    }
    // SECURITY: the lookup is by keyed hash; the secret itself is never
    // compared, stored or logged.
    let key = state.store.api_key_by_secret_hash(&state.key_hasher.hash(secret)).await?;
    if key.is_none() {
        tracing::info!(target: "vouchsafe::security", "rejected unknown or revoked API key");
    }
    Ok(key)
}

/// Authenticates the request. Every failure is the same `401`, so a caller
/// learns nothing about which part was wrong.
pub async fn authenticate(parts: &Parts, state: &SharedState) -> Result<Caller, ApiError> {
    let (secret, basic_user) = match presented(parts).ok_or(ApiError::Unauthorized)? {
        Presented::Bearer(secret) => (secret, None),
        Presented::Basic { user, secret } => (secret, Some(user)),
    };
    let key = key_by_secret(state, &secret).await?.ok_or(ApiError::Unauthorized)?;
    if basic_user.is_some_and(|user| user != key.id.as_str()) {
        tracing::info!(target: "vouchsafe::security", key_id = %key.id, "basic auth user does not match the key");
        return Err(ApiError::Unauthorized);
    }
    Ok(Caller { key_id: key.id, tenant_id: key.tenant_id, role: key.role })
}

async fn require(parts: &Parts, state: &SharedState, needed: Role) -> Result<Caller, ApiError> {
    let caller = authenticate(parts, state).await?;
    if caller.role.grants(needed) {
        tracing::Span::current().record("tenant_id", tracing::field::display(&caller.tenant_id));
        Ok(caller)
    } else {
        tracing::info!(
            target: "vouchsafe::security",
            key_id = %caller.key_id,
            role = caller.role.as_str(),
            needed = needed.as_str(),
            "role may not do that"
        );
        Err(ApiError::Forbidden)
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl FromRequestParts<SharedState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
                require(parts, state, $role).await.map($name)
            }
        }
    };
}

role_extractor!(
    /// A key with the `admin` role.
    AdminCaller,
    Role::Admin
);
role_extractor!(
    /// A key with the `agent` role (or `admin`).
    AgentCaller,
    Role::Agent
);
