//! A tenant's configuration, changed by its admins: API keys, credentials,
//! providers, services, settings. Each use case stamps the time, writes one
//! audited change and logs it; the surfaces (`/v1`, `/v2`) only parse the
//! request, authorize the caller and word the outcome.

use serde_json::Value;
use vouchsafe_core::api_key::{ApiKey, KeyError, NewSecret, issue};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::ids::{ApiKeyId, ServiceId, TenantId};
use vouchsafe_core::provider::{Credential, CredentialInfo, ProviderConfig};
use vouchsafe_core::role::Role;
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::StoreError;

use super::Engine;
use super::error::{EngineError, EngineResult};
use super::services::{CONFLICT_RETRIES, conflict_backoff};

/// Who asks: the caller's tenant and its key (the audit actor).
pub struct Admin<'a> {
    pub tenant: &'a TenantId,
    pub actor: &'a str,
}

/// Issues an API key; its secret is answered this once and stored only
/// as a keyed hash.
pub async fn create_api_key(
    engine: &Engine,
    by: &Admin<'_>,
    role: Role,
    name: &str,
) -> EngineResult<(ApiKey, NewSecret)> {
    let (new, secret) = issue(by.tenant, role, name, &engine.key_hasher, engine.clock.now()).map_err(|e| match e {
        KeyError::Name(field) => EngineError::Refused(field),
        KeyError::Crypto(e) => EngineError::internal(e),
    })?;
    let audit = AuditEntry::success(by.actor, "api_key.created", new.key.id.as_str(), new.key.created_at);
    engine.store.create_api_key(&new, &audit).await?;
    tracing::info!(target: "vouchsafe::security", key_id = %new.key.id, role = role.as_str(), by = by.actor, "API key created");
    Ok((new.key, secret))
}

/// Revokes a key at once: its next request answers 401.
pub async fn revoke_api_key(engine: &Engine, by: &Admin<'_>, id: &ApiKeyId) -> EngineResult<()> {
    let audit = AuditEntry::success(by.actor, "api_key.revoked", id.as_str(), engine.clock.now());
    engine.store.revoke_api_key(by.tenant, id, &audit).await?;
    tracing::info!(target: "vouchsafe::security", key_id = %id, by = by.actor, "API key revoked");
    Ok(())
}

/// Stores a credential sealed with the master key, bound to its tenant and
/// name; it is never answered back.
pub async fn put_credential(
    engine: &Engine,
    by: &Admin<'_>,
    name: &str,
    credential: &Credential,
) -> EngineResult<CredentialInfo> {
    credential.validate().map_err(EngineError::Refused)?;
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(credential).map_err(EngineError::internal)?);
    let sealed =
        engine.sealer.seal(&plain, &Credential::seal_context(by.tenant, name)).map_err(EngineError::internal)?;
    let now = engine.clock.now();
    let audit = AuditEntry::success(by.actor, "credential.put", format!("credential:{name}"), now);
    let info = engine.store.put_credential(by.tenant, name, credential.kind(), &sealed, now, &audit).await?;
    tracing::info!(credential = %name, kind = credential.kind(), by = by.actor, "credential stored");
    Ok(info)
}

/// Deletes a credential no provider uses (the store refuses otherwise).
pub async fn delete_credential(engine: &Engine, by: &Admin<'_>, name: &str) -> EngineResult<()> {
    let audit = AuditEntry::success(by.actor, "credential.deleted", format!("credential:{name}"), engine.clock.now());
    engine.store.delete_credential(by.tenant, name, &audit).await?;
    tracing::info!(credential = %name, by = by.actor, "credential deleted");
    Ok(())
}

/// Saves a provider whose settings are valid and whose URLs and SMTP host
/// pass the outbound-address rule. `StoreError::NotFound`: no credential
/// by the name it gives.
pub async fn put_provider(engine: &Engine, by: &Admin<'_>, provider: &ProviderConfig) -> EngineResult<ProviderConfig> {
    provider.validate().map_err(EngineError::Refused)?;
    for (field, url) in provider.urls() {
        engine.outbound.check_url(field, url).await.map_err(EngineError::Refused)?;
    }
    if let vouchsafe_core::provider::ProviderSettings::Smtp(smtp) = &provider.settings {
        engine.outbound.check_host("settings.host", &smtp.host).await.map_err(EngineError::Refused)?;
    }
    let audit =
        AuditEntry::success(by.actor, "provider.put", format!("provider:{}", provider.name), provider.updated_at);
    let saved = engine.store.put_provider(provider, &audit).await.map_err(EngineError::Store)?;
    tracing::info!(provider = %provider.name, kind = provider.kind().as_str(), by = by.actor, "provider saved");
    Ok(saved)
}

pub async fn delete_provider(engine: &Engine, by: &Admin<'_>, name: &str) -> EngineResult<()> {
    let audit = AuditEntry::success(by.actor, "provider.deleted", format!("provider:{name}"), engine.clock.now());
    engine.store.delete_provider(by.tenant, name, &audit).await?;
    tracing::info!(provider = %name, by = by.actor, "provider deleted");
    Ok(())
}

/// Creates a service. `StoreError::Conflict`: the name is taken.
pub async fn create_service(
    engine: &Engine,
    by: &Admin<'_>,
    name: &str,
    code_length: Option<u32>,
    ttl_s: Option<u32>,
    channels: Option<Vec<vouchsafe_core::channel::Channel>>,
) -> EngineResult<Service> {
    let service = Service::new(by.tenant.clone(), name, code_length, ttl_s, channels, engine.clock.now())
        .map_err(EngineError::Refused)?;
    let audit = AuditEntry::success(by.actor, "service.created", service.id.as_str(), service.created_at);
    engine.store.create_service(&service, &audit).await.map_err(EngineError::Store)?;
    tracing::info!(service_id = %service.id, by = by.actor, "service created");
    Ok(service)
}

/// Why a service was not deleted.
#[derive(Debug)]
pub enum DeleteServiceError {
    /// The tenant's default service stays.
    IsDefault,
    Engine(EngineError),
}

impl<E: Into<EngineError>> From<E> for DeleteServiceError {
    fn from(e: E) -> Self {
        Self::Engine(e.into())
    }
}

/// Deletes a service other than the tenant's default.
pub async fn delete_service(engine: &Engine, by: &Admin<'_>, id: &ServiceId) -> Result<(), DeleteServiceError> {
    if *id == engine.store.tenant(by.tenant).await?.default_service_id {
        return Err(DeleteServiceError::IsDefault);
    }
    let audit = AuditEntry::success(by.actor, "service.deleted", id.as_str(), engine.clock.now());
    engine.store.delete_service(by.tenant, id, &audit).await?;
    tracing::info!(service_id = %id, by = by.actor, "service deleted");
    Ok(())
}

/// Applies a JSON merge patch to the tenant's settings on the condition
/// that they are still the version read, retrying when another writer won.
/// `StoreError::Stale` once it kept losing.
pub async fn patch_settings(engine: &Engine, by: &Admin<'_>, patch: &Value) -> EngineResult<Settings> {
    for attempt in 0..CONFLICT_RETRIES {
        let current = engine.store.settings(by.tenant).await?;
        let next = current.value.patched(patch).map_err(EngineError::Refused)?;
        let audit = AuditEntry::success(by.actor, "settings.updated", "settings", engine.clock.now());
        match engine.store.replace_settings(by.tenant, &next, current.version, &audit).await {
            Ok(()) => {
                tracing::info!(by = by.actor, "settings changed");
                return Ok(next);
            }
            Err(StoreError::Stale) => conflict_backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(EngineError::Store(StoreError::Stale))
}
