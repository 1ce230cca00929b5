//! The verification engine: the rules of API.md's Verifications and
//! Deliveries sections, applied through the store's conditional writes and
//! the delivery crate's failover. Handlers of `/v1` (and, later, the
//! Twilio-compatible `/v2` and the challenges of a login flow) call these
//! functions; there is no second implementation of the rules.

pub mod authenticators;
pub mod callers;
pub mod challenges;
pub mod error;
pub mod passkeys;
pub mod send;
pub mod services;
pub mod slow_hash;
pub mod verifications;
pub mod webhooks;

use vouchsafe_core::ids::{ServiceId, TenantId};
use vouchsafe_core::service::Service;
use vouchsafe_core::settings::Settings;

use crate::state::SharedState;
use error::{EngineError, EngineResult};
use vouchsafe_core::field_error::FieldError;

/// A tenant's settings and one of its services (the default one when
/// `service_id` is not given).
pub async fn settings_and_service(
    state: &SharedState,
    tenant: &TenantId,
    service_id: Option<&str>,
) -> EngineResult<(Settings, Service, bool)> {
    let settings = state.store.settings(tenant).await?.value;
    let default_id = state.store.tenant(tenant).await?.default_service_id;
    let id = match service_id {
        Some(text) => ServiceId::parse(text).ok_or(EngineError::NotFound)?,
        None => default_id.clone(),
    };
    let service = state.store.service(tenant, &id).await?.value;
    let is_default = service.id == default_id;
    Ok((settings, service, is_default))
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
