//! Changing a service: read it, apply the change, validate, and write it
//! back on the condition that its version is still the one read; when
//! another writer won in between, back off a little and read again. One loop
//! for `/v1` and the Twilio-compatible `/v2`, which differ only in the
//! fields they take and how they word a refusal.

use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::ids::{ServiceId, TenantId};
use vouchsafe_core::service::Service;
use vouchsafe_core::store::StoreError;

use super::Engine;

/// Re-reads and retries a conditional update this many times before giving
/// up (another writer keeps winning).
pub const CONFLICT_RETRIES: u32 = 20;

/// Waits a little before retrying a lost conditional update: a random
/// 0–`2 × attempt` ms, so writers that collided do not collide again.
pub async fn conflict_backoff(attempt: u32) {
    let ms = vouchsafe_core::webhook::random_unit() * 2.0 * f64::from(attempt);
    tokio::time::sleep(std::time::Duration::from_secs_f64(ms / 1000.0)).await;
}

/// The members a request changes; `None` leaves a member as it is, and
/// `Some(None)` resets an optional one to the tenant's default.
#[derive(Debug, Default)]
pub struct ServiceChange {
    pub name: Option<String>,
    pub code_length: Option<Option<u32>>,
    pub ttl_s: Option<Option<u32>>,
    pub channels: Option<Vec<Channel>>,
}

/// Why a service was not changed.
#[derive(Debug)]
pub enum UpdateError {
    /// The changed service is not valid.
    Invalid(FieldError),
    /// Not found, a name another service has, or the database.
    Store(StoreError),
    /// Other writers kept winning for `CONFLICT_RETRIES` rounds.
    Busy,
}

/// Applies `change` to service `id`; the service as written.
pub async fn update(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    id: &ServiceId,
    change: &ServiceChange,
) -> Result<Service, UpdateError> {
    for attempt in 0..CONFLICT_RETRIES {
        let current = engine.store.service(tenant, id).await.map_err(UpdateError::Store)?;
        let mut next = current.value.clone();
        if let Some(name) = &change.name {
            next.name = name.trim().to_owned();
        }
        if let Some(code_length) = change.code_length {
            next.code_length = code_length;
        }
        if let Some(ttl_s) = change.ttl_s {
            next.ttl_s = ttl_s;
        }
        if let Some(channels) = &change.channels {
            next.channels = channels.clone();
        }
        next.updated_at = engine.clock.now();
        next.validate().map_err(UpdateError::Invalid)?;
        let audit = AuditEntry::success(actor, "service.updated", id.as_str(), next.updated_at);
        match engine.store.replace_service(&next, current.version, &audit).await {
            Ok(()) => {
                tracing::info!(service_id = %id, by = %actor, "service changed");
                return Ok(next);
            }
            Err(StoreError::Stale) => conflict_backoff(attempt).await,
            Err(e) => return Err(UpdateError::Store(e)),
        }
    }
    Err(UpdateError::Busy)
}
