//! The users of a login flow and their authenticators, as integrators
//! manage them: a user's contacts read in the tenant's country, enrollment
//! (TOTP, HOTP, YubiKey, recovery codes behind the slow-hash gate, passkey
//! registration), removal. Each change is one audited write.

use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::AuthenticatorKind;
use vouchsafe_core::ids::{AuthenticatorId, TenantId};
use vouchsafe_core::store::StoreError;
use vouchsafe_core::user::{User, normalise_contacts, validate_user_id};

use super::Engine;
use super::authenticators::{Enrolled, NewAuthenticator, enroll, hash_recovery_codes, slow_hash_permit};
use super::error::{EngineError, EngineResult};
use super::passkeys::start_registration;

/// A user's contacts as given.
pub struct UserContacts<'a> {
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    /// Where a phone written without `+` is read (else the tenant's).
    pub default_country: Option<&'a str>,
    pub privileged: bool,
}

/// Creates or updates a user.
pub async fn put_user(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    user_id: &str,
    given: UserContacts<'_>,
) -> EngineResult<User> {
    validate_user_id(user_id).map_err(EngineError::Refused)?;
    let settings = engine.store.settings(tenant).await?.value;
    let country = settings.number_country(given.default_country).map_err(EngineError::Refused)?;
    let contacts = normalise_contacts(given.phone, given.email, given.display_name, country)?;
    let now = engine.clock.now();
    let audit = AuditEntry::success(actor, "user.put", format!("user:{user_id}"), now);
    Ok(engine.store.put_user(tenant, user_id, &contacts, given.privileged, now, &audit).await?)
}

/// Deletes a user with every authenticator and challenge.
pub async fn delete_user(engine: &Engine, tenant: &TenantId, actor: &str, user_id: &str) -> EngineResult<()> {
    let audit = AuditEntry::success(actor, "user.deleted", format!("user:{user_id}"), engine.clock.now());
    Ok(engine.store.delete_user(tenant, user_id, &audit).await?)
}

/// A new authenticator and what to show of it once.
pub enum Created {
    /// Enrolled: the secret, URI, QR code or recovery codes to show once.
    Enrolled(Box<Enrolled>),
    /// A passkey registration: the WebAuthn creation options for the browser.
    Passkey(Box<vouchsafe_core::authenticator::Authenticator>, serde_json::Value),
}

/// Enrolls an authenticator for an existing user. Recovery codes take a
/// slow-hash permit before anything else, so a flood of enrollments is
/// refused quickly instead of hashing on the async workers, and a new set
/// replaces the old one.
pub async fn create_authenticator(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    user_id: &str,
    req: &NewAuthenticator<'_>,
) -> EngineResult<Created> {
    let user = engine.store.user(tenant, user_id).await?;
    let label = user.display_name.clone().unwrap_or_else(|| user.id.clone());
    if req.kind == AuthenticatorKind::Passkey.as_str() {
        let (a, options) = start_registration(engine, tenant, user_id, &label, req.label.map(str::to_owned)).await?;
        let audit = AuditEntry::new(actor, "authenticator.created", a.id.as_str(), "passkey", a.created_at);
        engine.store.create_authenticator(&a, &[], false, &audit).await?;
        return Ok(Created::Passkey(Box::new(a), options));
    }
    let permit =
        if req.kind == AuthenticatorKind::RecoveryCodes.as_str() { Some(slow_hash_permit(engine)?) } else { None };
    let settings = engine.store.settings(tenant).await?.value;
    let enrolled = enroll(engine, tenant, user_id, &settings.branding.name, &label, req)?;
    let a = &enrolled.authenticator;
    let stored = match (permit, &enrolled.codes) {
        (Some(permit), Some(codes)) => hash_recovery_codes(engine, permit, a.id.as_str(), codes).await?,
        _ => Vec::new(),
    };
    let replace = a.kind == AuthenticatorKind::RecoveryCodes;
    let audit = AuditEntry::new(actor, "authenticator.created", a.id.as_str(), a.kind.as_str(), a.created_at);
    engine.store.create_authenticator(a, &stored, replace, &audit).await?;
    tracing::info!(authenticator_id = %a.id, kind = a.kind.as_str(), "authenticator enrolled");
    Ok(Created::Enrolled(Box::new(enrolled)))
}

/// Removes an authenticator (with its recovery codes).
pub async fn delete_authenticator(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    user_id: &str,
    id: &AuthenticatorId,
) -> EngineResult<()> {
    let audit = AuditEntry::success(actor, "authenticator.deleted", id.as_str(), engine.clock.now());
    engine.store.delete_authenticator(tenant, user_id, id, &audit).await.map_err(|e| match e {
        StoreError::NotFound => EngineError::NotFound,
        other => other.into(),
    })
}
