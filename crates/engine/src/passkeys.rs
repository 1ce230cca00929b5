//! Passkeys (WebAuthn) through `webauthn-rs`: registration and
//! authentication ceremonies whose state is kept in the database (sealed
//! with the authenticator, or on the challenge), so any node can finish
//! what another started. The relying party id is the host of the public
//! URL; options go out and credentials come in in the browser's JSON forms
//! (`parseCreationOptionsFromJSON`, `toJSON()`).

use base64::Engine as _;
use serde_json::Value;
use url::Url;
use vouchsafe_core::authenticator::{
    Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorSecret, AuthenticatorStatus, AuthenticatorUse,
    check_name,
};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::ids::{AuthenticatorId, TenantId};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Uuid,
    Webauthn, WebauthnBuilder,
};

use super::Engine;
use super::authenticators::{open, seal};
use super::error::{EngineError, EngineResult};

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

fn webauthn(engine: &Engine) -> EngineResult<&Webauthn> {
    engine.webauthn.as_ref().ok_or_else(|| {
        EngineError::Invalid(FieldError::new(
            "type",
            "passkeys need VOUCHSAFE_PUBLIC_URL set to an address with a host name (not an IP address)",
        ))
    })
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> EngineError {
    EngineError::internal(e)
}

/// WebAuthn's user handle for a user: stable, opaque, derived from ids.
fn user_handle(engine: &Engine, tenant: &TenantId, user_id: &str) -> Uuid {
    let hex = engine.code_hasher.hash(&format!("webauthn-user:{tenant}"), user_id);
    Uuid::parse_str(&hex[..32]).unwrap_or_else(|_| Uuid::nil())
}

/// The user's registered passkeys, opened, with their authenticators.
async fn passkeys(engine: &Engine, tenant: &TenantId, user_id: &str) -> EngineResult<Vec<(Authenticator, Passkey)>> {
    let mut out = Vec::new();
    for a in engine.store.authenticators(tenant, user_id).await? {
        if a.kind != AuthenticatorKind::Passkey || a.status != AuthenticatorStatus::Active {
            continue;
        }
        let passkey = match &open(engine, &a)? {
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
    engine: &Engine,
    tenant: &TenantId,
    user_id: &str,
    display_name: &str,
    label: Option<String>,
) -> EngineResult<(Authenticator, Value)> {
    if let Some(label) = &label {
        check_name("label", label).map_err(EngineError::Invalid)?;
    }
    let webauthn = webauthn(engine)?;
    let existing: Vec<_> =
        passkeys(engine, tenant, user_id).await?.into_iter().map(|(_, p)| p.cred_id().clone()).collect();
    let (options, registration) = webauthn
        .start_passkey_registration(user_handle(engine, tenant, user_id), user_id, display_name, Some(existing))
        .map_err(internal)?;
    let id = AuthenticatorId::generate();
    let now = engine.clock.now();
    let secret =
        AuthenticatorSecret::PasskeyRegistration { state: serde_json::to_string(&registration).map_err(internal)? };
    let a = Authenticator {
        sealed: seal(engine, tenant, &id, &secret)?,
        id,
        tenant_id: tenant.clone(),
        user_id: user_id.to_owned(),
        kind: AuthenticatorKind::Passkey,
        status: AuthenticatorStatus::Unconfirmed,
        label,
        params: AuthenticatorParams::Passkey,
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
pub fn finish_registration(engine: &Engine, a: &Authenticator, credential: &Value) -> EngineResult<Option<Vec<u8>>> {
    let webauthn = webauthn(engine)?;
    // SECURITY: the ceremony ends with its timeout; an unconfirmed
    // registration cannot be finished later.
    if engine.clock.now() - a.created_at > time::Duration::milliseconds(CEREMONY_TIMEOUT_MS) {
        tracing::info!(authenticator_id = %a.id, "passkey registration finished after its ceremony's timeout");
        return Ok(None);
    }
    if !acceptable_credential(credential) {
        return Ok(None);
    }
    let registration: PasskeyRegistration = match &open(engine, a)? {
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
            Ok(Some(seal(engine, &a.tenant_id, &a.id, &secret)?))
        }
        Err(e) => {
            tracing::info!(authenticator_id = %a.id, error = %bounded(&e), "passkey registration did not verify");
            Ok(None)
        }
    }
}

/// Starts an authentication ceremony for a challenge: (options, state).
pub async fn start_authentication(engine: &Engine, tenant: &TenantId, user_id: &str) -> EngineResult<(String, String)> {
    let webauthn = webauthn(engine)?;
    let keys: Vec<Passkey> = passkeys(engine, tenant, user_id).await?.into_iter().map(|(_, p)| p).collect();
    let (options, ceremony) = webauthn.start_passkey_authentication(&keys).map_err(internal)?;
    let options = serde_json::to_value(&options).map_err(internal)?;
    let options = options.get("publicKey").cloned().unwrap_or(options);
    Ok((options.to_string(), serde_json::to_string(&ceremony).map_err(internal)?))
}

/// What a verified assertion proves: the passkey used and, when it keeps a
/// signature counter, the counter to move to.
pub struct Asserted {
    /// The authenticator's use for the approving statement: a counter
    /// that must move forward, or `None` for a passkey without one.
    pub used: Option<AuthenticatorUse>,
}

/// Checks an assertion against a challenge's ceremony. SECURITY: the
/// signature counter is compared with the stored one inside the statement
/// that approves (`AuthenticatorUse::Counter`), not with the counter the
/// ceremony captured when the challenge was made: a cloned authenticator
/// answering an older open challenge with a lower counter is refused.
pub async fn finish_authentication(
    engine: &Engine,
    tenant: &TenantId,
    user_id: &str,
    ceremony: &str,
    credential: &Value,
) -> EngineResult<Option<Asserted>> {
    let webauthn = webauthn(engine)?;
    if !acceptable_credential(credential) {
        return Ok(None);
    }
    let ceremony: PasskeyAuthentication = serde_json::from_str(ceremony).map_err(internal)?;
    let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential.clone()) else {
        return Ok(None);
    };
    let result = match webauthn.finish_passkey_authentication(&credential, &ceremony) {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = %bounded(&e), "passkey assertion did not verify");
            return Ok(None);
        }
    };
    for (a, mut passkey) in passkeys(engine, tenant, user_id).await? {
        if passkey.cred_id() == result.cred_id() {
            if passkey.update_credential(&result) == Some(true) {
                let secret =
                    AuthenticatorSecret::Passkey { passkey: serde_json::to_string(&passkey).map_err(internal)? };
                engine.store.reseal_authenticator(tenant, &a.id, &seal(engine, tenant, &a.id, &secret)?).await?;
            }
            let counter = i64::from(result.counter());
            let used = (counter > 0).then(|| AuthenticatorUse::Counter { id: a.id.clone(), value: counter });
            return Ok(Some(Asserted { used }));
        }
    }
    Ok(None)
}

/// How long a WebAuthn ceremony may take (webauthn-rs's default timeout).
const CEREMONY_TIMEOUT_MS: i64 = 300_000;

/// The most of a credential's JSON that is looked at: a real one is a few
/// KiB; anything larger is refused before it is parsed.
const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// SECURITY: a credential small enough to look at, whose client data says
/// it was made by the relying party's own page: `crossOrigin: true` (made
/// inside a frame of another origin, with its `topOrigin`) is refused.
fn acceptable_credential(credential: &Value) -> bool {
    if credential.to_string().len() > MAX_CREDENTIAL_BYTES {
        tracing::info!("passkey credential refused: larger than {MAX_CREDENTIAL_BYTES} bytes");
        return false;
    }
    let client_data = credential
        .pointer("/response/clientDataJSON")
        .and_then(Value::as_str)
        .and_then(|b64| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    match client_data {
        Some(data) if data.get("crossOrigin").and_then(Value::as_bool) == Some(true) => {
            tracing::warn!(target: "vouchsafe::security", "passkey credential refused: made cross-origin");
            false
        }
        // Missing or unreadable client data is left to webauthn-rs to refuse.
        _ => true,
    }
}

/// An error's text, at most 200 characters (webauthn-rs errors can carry
/// what the client sent).
fn bounded(e: &impl std::fmt::Display) -> String {
    e.to_string().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_client_data(data: Value) -> Value {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data.to_string());
        json!({"id": "x", "response": {"clientDataJSON": encoded}})
    }

    #[test]
    fn cross_origin_and_oversized_credentials_are_refused() {
        let same = with_client_data(json!({"type": "webauthn.get", "origin": "https://id.example.com"}));
        assert!(acceptable_credential(&same));
        let framed = with_client_data(json!({"type": "webauthn.get", "origin": "https://id.example.com",
            "crossOrigin": true, "topOrigin": "https://evil.example"}));
        assert!(!acceptable_credential(&framed));
        let huge = json!({"id": "x", "response": {"authenticatorData": "A".repeat(30_000)}});
        assert!(!acceptable_credential(&huge));
        // The limit is 16 KiB: `{"id":"…"}` is 9 bytes around the id, so
        // this is exactly 16,384 bytes, and passes; one byte more does not.
        let at_limit = json!({"id": "x".repeat(16_384 - 9)});
        assert_eq!(at_limit.to_string().len(), 16_384);
        assert!(acceptable_credential(&at_limit));
        assert!(!acceptable_credential(&json!({"id": "x".repeat(16_384 - 8)})));
        assert_eq!(bounded(&"e".repeat(10_000)).len(), 200);
    }
}
