//! Passkeys (WebAuthn) through `webauthn-rs`: registration and
//! authentication ceremonies whose state is kept in the database (sealed
//! with the authenticator, or on the challenge), so any node can finish
//! what another started. The relying party id is the host of the public
//! URL; options go out and credentials come in in the browser's JSON forms
//! (`parseCreationOptionsFromJSON`, `toJSON()`).

use serde_json::Value;
use url::Url;
use vouchsafe_core::authenticator::{Authenticator, AuthenticatorKind, AuthenticatorSecret, AuthenticatorStatus};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::ids::{AuthenticatorId, TenantId};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Uuid,
    Webauthn, WebauthnBuilder,
};

use super::authenticators::{open, seal};
use super::error::{EngineError, EngineResult};
use crate::state::SharedState;

/// The relying party for a public URL, when its host is a name (WebAuthn
/// does not allow IP addresses as relying party ids).
pub fn relying_party(public_url: &str) -> Option<Webauthn> {
    let url = Url::parse(public_url).ok()?;
    let host = url.domain()?.to_owned();
    match WebauthnBuilder::new(&host, &url).and_then(|b| b.rp_name("vouchsafe").build()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "passkeys are off: VOUCHSAFE_PUBLIC_URL does not make a relying party");
            None
        }
    }
}

fn webauthn(state: &SharedState) -> EngineResult<&Webauthn> {
    state.webauthn.as_ref().ok_or_else(|| {
        EngineError::Invalid(FieldError::new(
            "type",
            "passkeys need VOUCHSAFE_PUBLIC_URL set to an address with a host name (not an IP address)",
        ))
    })
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

/// WebAuthn's user handle for a user: stable, opaque, derived from ids.
fn user_handle(state: &SharedState, tenant: &TenantId, user_id: &str) -> Uuid {
    let hex = state.code_hasher.hash(&format!("webauthn-user:{tenant}"), user_id);
    Uuid::parse_str(&hex[..32]).unwrap_or_else(|_| Uuid::nil())
}

/// The user's registered passkeys, opened, with their authenticators.
async fn passkeys(
    state: &SharedState,
    tenant: &TenantId,
    user_id: &str,
) -> EngineResult<Vec<(Authenticator, Passkey)>> {
    let mut out = Vec::new();
    for a in state.store.authenticators(tenant, user_id).await? {
        if a.kind != AuthenticatorKind::Passkey || a.status != AuthenticatorStatus::Active {
            continue;
        }
        let passkey = match &open(state, &a)? {
            AuthenticatorSecret::Passkey { passkey } => serde_json::from_str(passkey).map_err(internal)?,
            _ => continue,
        };
        out.push((a, passkey));
    }
    Ok(out)
}

/// Starts registering a passkey: the unconfirmed authenticator (holding the
/// ceremony state) and the creation options for the browser.
pub async fn start_registration(
    state: &SharedState,
    tenant: &TenantId,
    user_id: &str,
    display_name: &str,
    label: Option<String>,
) -> EngineResult<(Authenticator, Value)> {
    let webauthn = webauthn(state)?;
    let existing: Vec<_> =
        passkeys(state, tenant, user_id).await?.into_iter().map(|(_, p)| p.cred_id().clone()).collect();
    let (options, registration) = webauthn
        .start_passkey_registration(user_handle(state, tenant, user_id), user_id, display_name, Some(existing))
        .map_err(internal)?;
    let id = AuthenticatorId::generate();
    let now = state.clock.now();
    let secret =
        AuthenticatorSecret::PasskeyRegistration { state: serde_json::to_string(&registration).map_err(internal)? };
    let a = Authenticator {
        sealed: seal(state, tenant, &id, &secret)?,
        id,
        tenant_id: tenant.clone(),
        user_id: user_id.to_owned(),
        kind: AuthenticatorKind::Passkey,
        status: AuthenticatorStatus::Unconfirmed,
        label,
        params: serde_json::json!({}),
        counter: -1,
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    let options = serde_json::to_value(&options).map_err(internal)?;
    Ok((a, options.get("publicKey").cloned().unwrap_or(options)))
}

/// Finishes a registration with the browser's credential; the sealed
/// passkey to store, or `None` if the credential does not verify.
pub fn finish_registration(
    state: &SharedState,
    a: &Authenticator,
    credential: &Value,
) -> EngineResult<Option<Vec<u8>>> {
    let webauthn = webauthn(state)?;
    let registration: PasskeyRegistration = match &open(state, a)? {
        AuthenticatorSecret::PasskeyRegistration { state: ceremony } => {
            serde_json::from_str(ceremony).map_err(internal)?
        }
        _ => return Ok(None),
    };
    let Ok(credential) = serde_json::from_value::<RegisterPublicKeyCredential>(credential.clone()) else {
        return Ok(None);
    };
    match webauthn.finish_passkey_registration(&credential, &registration) {
        Ok(passkey) => {
            let secret = AuthenticatorSecret::Passkey { passkey: serde_json::to_string(&passkey).map_err(internal)? };
            Ok(Some(seal(state, &a.tenant_id, &a.id, &secret)?))
        }
        Err(e) => {
            tracing::info!(authenticator_id = %a.id, error = %e, "passkey registration did not verify");
            Ok(None)
        }
    }
}

/// Starts an authentication ceremony for a challenge: (options, state).
pub async fn start_authentication(
    state: &SharedState,
    tenant: &TenantId,
    user_id: &str,
) -> EngineResult<(String, String)> {
    let webauthn = webauthn(state)?;
    let keys: Vec<Passkey> = passkeys(state, tenant, user_id).await?.into_iter().map(|(_, p)| p).collect();
    let (options, ceremony) = webauthn.start_passkey_authentication(&keys).map_err(internal)?;
    let options = serde_json::to_value(&options).map_err(internal)?;
    let options = options.get("publicKey").cloned().unwrap_or(options);
    Ok((options.to_string(), serde_json::to_string(&ceremony).map_err(internal)?))
}

/// Checks an assertion against a challenge's ceremony; on success the
/// passkey's signature counter is brought up to date. `true` if it verifies.
pub async fn finish_authentication(
    state: &SharedState,
    tenant: &TenantId,
    user_id: &str,
    ceremony: &str,
    credential: &Value,
) -> EngineResult<bool> {
    let webauthn = webauthn(state)?;
    let ceremony: PasskeyAuthentication = serde_json::from_str(ceremony).map_err(internal)?;
    let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential.clone()) else {
        return Ok(false);
    };
    let result = match webauthn.finish_passkey_authentication(&credential, &ceremony) {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = %e, "passkey assertion did not verify");
            return Ok(false);
        }
    };
    for (a, mut passkey) in passkeys(state, tenant, user_id).await? {
        if passkey.cred_id() == result.cred_id() {
            if passkey.update_credential(&result) == Some(true) {
                let secret =
                    AuthenticatorSecret::Passkey { passkey: serde_json::to_string(&passkey).map_err(internal)? };
                state.store.reseal_authenticator(tenant, &a.id, &seal(state, tenant, &a.id, &secret)?).await?;
            }
            return Ok(true);
        }
    }
    Ok(false)
}
