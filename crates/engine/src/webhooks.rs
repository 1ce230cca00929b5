//! Creating a webhook endpoint: its URL under the outbound-address rule,
//! its event filter, a fresh Standard Webhooks secret sealed with the
//! master key, and the audit entry, in one place for the API and the CLI
//! (`vouchsafe webhooks create`). It takes only the parts it needs, so the
//! CLI can call it without a running server.

use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::crypto::Sealer;
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::ids::{TenantId, WebhookEndpointId};
use vouchsafe_core::store::{Store, StoreError, TestEventRefusal};
use vouchsafe_core::webhook::{EventFilter, WebhookEndpoint, WebhookSecret};
use vouchsafe_delivery::outbound::OutboundClient;

use serde_json::json;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::webhook::test_event_counter;

use super::Engine;
use super::error::{EngineError, EngineResult};

/// The sealing context of an endpoint's secrets: a sealed secret moved to
/// another endpoint's row does not open.
pub fn secret_context(endpoint: &WebhookEndpointId) -> String {
    format!("webhook-secret:{endpoint}")
}

/// Why an endpoint was not created.
#[derive(Debug)]
pub enum EndpointError {
    /// A field is refused (`422` in the API).
    Invalid(FieldError),
    Store(StoreError),
    /// The tenant has as many endpoints as it may (the limit); nothing
    /// was stored (`409` in the API).
    LimitReached(u32),
    /// Randomness or the cipher failed; the cause is kept for the log.
    Internal(vouchsafe_core::error::BoxError),
}

impl From<FieldError> for EndpointError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e)
    }
}

impl From<StoreError> for EndpointError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// What a new endpoint is made of, as given.
pub struct NewEndpoint<'a> {
    pub tenant_id: &'a TenantId,
    /// Who asks: the API key's id, or `cli`.
    pub actor: &'a str,
    pub url: &'a str,
    /// Event types; every event when `None`.
    pub events: Option<&'a [String]>,
    pub description: Option<&'a str>,
}

/// A description: trimmed, at most 200 characters.
pub fn description(text: Option<&str>) -> Result<String, FieldError> {
    let text = text.unwrap_or_default().trim().to_owned();
    if text.chars().count() > 200 {
        return Err(FieldError::new("description", "must be at most 200 characters"));
    }
    Ok(text)
}

/// Seals an endpoint's secret, bound to the endpoint.
pub fn seal(sealer: &Sealer, id: &WebhookEndpointId, secret: &WebhookSecret) -> Result<Vec<u8>, EndpointError> {
    sealer.seal(secret.as_bytes(), &secret_context(id)).map_err(|e| EndpointError::Internal(Box::new(e)))
}

/// Creates the endpoint, unless its tenant has `per_tenant` endpoints
/// already; its secret is returned once and never stored in the clear.
pub async fn create_endpoint(
    outbound: &OutboundClient,
    store: &dyn Store,
    sealer: &Sealer,
    now: OffsetDateTime,
    per_tenant: u32,
    req: NewEndpoint<'_>,
) -> Result<(WebhookEndpoint, WebhookSecret), EndpointError> {
    // The fields that cost nothing first; the URL's check resolves its host.
    let (events, description) = (EventFilter::parse(req.events)?, description(req.description)?);
    let url = outbound.check_url("url", req.url).await?;
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        tenant_id: req.tenant_id.clone(),
        url: url.as_str().to_owned(),
        description,
        events,
        enabled: true,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    let secret = WebhookSecret::generate().map_err(|e| EndpointError::Internal(Box::new(e)))?;
    let audit = AuditEntry::success(req.actor, "webhook_endpoint.created", endpoint.id.as_str(), now);
    store.create_webhook_endpoint(&endpoint, &seal(sealer, &endpoint.id, &secret)?, &audit, per_tenant).await.map_err(
        |e| match e {
            StoreError::LimitReached(_) => EndpointError::LimitReached(per_tenant),
            other => other.into(),
        },
    )?;
    Ok((endpoint, secret))
}

/// The members an update changes; `None` leaves one as it is.
#[derive(Debug, Default)]
pub struct EndpointChange<'a> {
    pub url: Option<&'a str>,
    pub events: Option<&'a [String]>,
    pub description: Option<&'a str>,
    /// Re-enabling also clears why the server disabled it.
    pub enabled: Option<bool>,
}

/// Changes an endpoint: its URL under the outbound-address rule, its
/// filter, description, enabled flag; audited, and the dispatcher woken
/// (a re-enabled endpoint has messages waiting).
pub async fn update_endpoint(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    id: &WebhookEndpointId,
    change: EndpointChange<'_>,
) -> EngineResult<WebhookEndpoint> {
    let mut endpoint = engine.store.webhook_endpoint(tenant, id).await?;
    if let Some(url) = change.url {
        endpoint.url = engine.outbound.check_url("url", url).await.map_err(EngineError::Refused)?.as_str().to_owned();
    }
    if let Some(events) = change.events {
        endpoint.events = EventFilter::parse(Some(events)).map_err(EngineError::Refused)?;
    }
    if change.description.is_some() {
        endpoint.description = description(change.description).map_err(EngineError::Refused)?;
    }
    if let Some(enabled) = change.enabled {
        endpoint.enabled = enabled;
        if enabled {
            endpoint.disabled_reason = None;
        }
    }
    endpoint.updated_at = engine.clock.now();
    let audit = AuditEntry::success(actor, "webhook_endpoint.updated", endpoint.id.as_str(), endpoint.updated_at);
    engine.store.update_webhook_endpoint(&endpoint, &audit).await?;
    engine.wake_dispatcher.notify_one();
    Ok(endpoint)
}

/// Deletes an endpoint with its pending messages and delivery log.
pub async fn delete_endpoint(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    id: &WebhookEndpointId,
) -> EngineResult<()> {
    let audit = AuditEntry::success(actor, "webhook_endpoint.deleted", id.as_str(), engine.clock.now());
    Ok(engine.store.delete_webhook_endpoint(tenant, id, &audit).await?)
}

/// How long the old secret keeps signing after a rotation, unless asked.
pub const DEFAULT_ROTATION_GRACE_S: u32 = 86_400;

/// Makes a new secret; the old one keeps signing beside it for `grace_s`
/// (at most a week). The new secret, shown once, and when the old one stops.
pub async fn rotate_secret(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    id: &WebhookEndpointId,
    grace_s: Option<u32>,
) -> EngineResult<(WebhookSecret, OffsetDateTime)> {
    let endpoint = engine.store.webhook_endpoint(tenant, id).await?;
    let grace = grace_s.unwrap_or(DEFAULT_ROTATION_GRACE_S);
    vouchsafe_core::field_error::check_range("grace_s", grace, 0..=604_800).map_err(EngineError::Refused)?;
    let now = engine.clock.now();
    let until = now + time::Duration::seconds(i64::from(grace));
    let secret = WebhookSecret::generate().map_err(EngineError::internal)?;
    let sealed = engine.sealer.seal(secret.as_bytes(), &secret_context(&endpoint.id)).map_err(EngineError::internal)?;
    let audit = AuditEntry::success(actor, "webhook_endpoint.secret_rotated", endpoint.id.as_str(), now);
    engine.store.rotate_webhook_secret(tenant, &endpoint.id, &sealed, until, &audit).await?;
    Ok((secret, until))
}

/// Why a test event was not queued.
#[derive(Debug)]
pub enum TestEventError {
    /// The endpoint is disabled.
    Disabled,
    /// The hourly limit of test events per endpoint is reached.
    Limited {
        retry_after_s: u64,
    },
    Engine(EngineError),
}

impl<E: Into<EngineError>> From<E> for TestEventError {
    fn from(e: E) -> Self {
        Self::Engine(e.into())
    }
}

/// Queues a signed `ping` for one endpoint through the outbox (retried and
/// logged like every event), whatever its filter; counted against the
/// endpoint's hourly limit of test events in the same store as send limits.
pub async fn send_test_event(
    engine: &Engine,
    tenant: &TenantId,
    id: &WebhookEndpointId,
) -> Result<Event, TestEventError> {
    // The endpoint is found, and its being enabled checked, inside the
    // write that counts and queues: not read before it.
    let now = engine.clock.now();
    let counter = test_event_counter(tenant, id, now);
    let body = json!({"endpoint_id": id.as_str(), "test": true});
    let event = Event::new(tenant.clone(), EventType::Ping, body, now);
    let queued = match engine.store.queue_test_event(&counter, &event, id, now).await? {
        Ok(queued) => queued,
        Err(TestEventRefusal::Disabled) => return Err(TestEventError::Disabled),
        Err(TestEventRefusal::Limited(refusal)) => {
            tracing::info!(endpoint_id = %id, ?refusal, "test event refused: hourly limit");
            return Err(TestEventError::Limited { retry_after_s: counter.retry_after_s(now) });
        }
    };
    metrics::counter!("vouchsafe_webhook_events_enqueued_total", "type" => event.event_type.as_str())
        .increment(queued as u64);
    engine.wake_dispatcher.notify_one();
    Ok(event)
}
