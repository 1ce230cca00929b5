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
use vouchsafe_core::store::{Store, StoreError};
use vouchsafe_core::webhook::{EventFilter, WebhookEndpoint, WebhookSecret};
use vouchsafe_delivery::outbound::OutboundClient;

use crate::dispatcher::secret_context;

/// Why an endpoint was not created.
#[derive(Debug)]
pub enum EndpointError {
    /// A field is refused (`422` in the API).
    Invalid(FieldError),
    Store(StoreError),
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

/// Creates the endpoint; its secret is returned once and never stored in
/// the clear.
pub async fn create_endpoint(
    outbound: &OutboundClient,
    store: &dyn Store,
    sealer: &Sealer,
    now: OffsetDateTime,
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
    store.create_webhook_endpoint(&endpoint, &seal(sealer, &endpoint.id, &secret)?, &audit).await?;
    Ok((endpoint, secret))
}
