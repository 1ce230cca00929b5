//! The engine: each use case (start and check a verification, deliver a
//! code, enroll and answer with an authenticator, verify a caller, update a
//! service, create a webhook endpoint, …) as one function over an
//! [`Engine`], applying the rules of `vouchsafe_core` through the store's
//! conditional writes and the delivery crate's failover. The HTTP surfaces
//! (`/v1`, the Twilio-compatible `/v2`, the pages, the console) and the CLI
//! call these functions; there is no second implementation of a rule.
//!
//! The engine knows nothing of HTTP: it takes domain values and answers
//! domain values or an [`error::EngineError`]. It is a crate of its own so
//! that this is the compiler's rule, not a convention: its manifest has no
//! HTTP crate and no wire types, and it cannot name the server's state,
//! routes or mapping. (Being small, it also builds quickly alone, which is
//! what makes mutation testing of the use cases practical.)

pub mod admin;
pub mod authenticators;
pub mod callers;
pub mod challenges;
pub mod console;
pub mod deliveries;
pub mod error;
pub mod passkeys;
pub mod send;
pub mod services;
pub mod slow_hash;
pub mod users;
pub mod verifications;
pub mod webhooks;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::Notify;
use vouchsafe_core::api_key::SecretHasher;
use vouchsafe_core::audit::AuditKey;
use vouchsafe_core::challenge::TokenSigner;
use vouchsafe_core::clock::Clock;
use vouchsafe_core::crypto::{MasterKey, Sealer};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::ids::{ServiceId, TenantId};
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{SettingsAndService, Store};
use vouchsafe_core::verification::CodeHasher;
use vouchsafe_delivery::failover::{BreakerPolicy, Failover};
use vouchsafe_delivery::outbound::OutboundClient;

use error::{EngineError, EngineResult};
use slow_hash::SlowHasher;

/// What the rules need, and only that: storage, time, the keys derived
/// from the master key, the providers' failover, the outbound client for
/// tenant-given URLs, the WebAuthn relying party and the dispatcher's
/// wake-up. One per process, shared by every surface.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Base of the absolute links the engine writes into messages.
    pub public_url: String,
    pub key_hasher: SecretHasher,
    pub sealer: Sealer,
    pub code_hasher: CodeHasher,
    /// Checks the audit chain's HMACs (the store makes them with the same key).
    pub audit_key: AuditKey,
    /// The WebAuthn relying party (the public URL's host), if it has one.
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Signs the result tokens of approved challenges.
    pub token_signer: TokenSigner,
    /// The providers' failover and circuit breakers (per process).
    pub failover: Failover,
    /// For tenant-given URLs, under the outbound-address rule.
    pub outbound: OutboundClient,
    /// Wakes this process's dispatcher when an event was just queued.
    pub wake_dispatcher: Arc<Notify>,
    /// The threads that run Argon2id (recovery codes), behind their gate.
    pub slow_hasher: SlowHasher,
}

impl Engine {
    /// `outbound` carries the outbound-address rule and the HTTP timeout
    /// the providers and webhooks use.
    pub fn new(
        public_url: String,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master_key: &MasterKey,
        outbound: OutboundClient,
    ) -> Self {
        let failover = Failover::new(outbound.clone(), clock.clone(), BreakerPolicy::default());
        Self {
            code_hasher: CodeHasher::new(master_key),
            audit_key: AuditKey::new(master_key),
            token_signer: TokenSigner::new(master_key),
            webauthn: passkeys::relying_party(&public_url),
            failover,
            public_url,
            store,
            clock,
            key_hasher: SecretHasher::new(master_key),
            sealer: master_key.sealer(),
            outbound,
            wake_dispatcher: Arc::new(Notify::new()),
            slow_hasher: SlowHasher::for_this_machine(),
        }
    }
}

/// A tenant's settings and one of its services (the default one when
/// `service_id` is not given).
pub async fn settings_and_service(
    engine: &Engine,
    tenant: &TenantId,
    service_id: Option<&str>,
) -> EngineResult<SettingsAndService> {
    let id = service_id.map(|text| ServiceId::parse(text).ok_or(EngineError::NotFound)).transpose()?;
    // One read: the settings, the service, which is the default and the
    // providers' version.
    Ok(engine.store.settings_and_service(tenant, id.as_ref()).await?)
}

/// The name messages give the sender: the service's name, or the tenant's
/// brand for the default service (whose name is just `default`).
pub fn sender_name<'a>(settings: &'a Settings, service: &'a Service, is_default: bool) -> &'a str {
    if is_default { &settings.branding.name } else { &service.name }
}

/// A locale tag as given by a client, if it is one (`es`, `pt-BR`).
pub fn parse_locale(locale: Option<&str>) -> EngineResult<Option<String>> {
    match locale {
        None => Ok(None),
        Some(l)
            if (2..=10).contains(&l.len())
                && l.split(['-', '_']).all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric())) =>
        {
            Ok(Some(l.replace('_', "-")))
        }
        Some(_) => {
            Err(EngineError::Invalid(FieldError::new("locale", "must be a locale tag such as \"es\" or \"pt-BR\"")))
        }
    }
}
