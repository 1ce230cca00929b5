//! Handing one message to the tenant's providers: pick the enabled ones
//! of the channel, fail over between them (opening a provider's credential
//! only when it is tried), and record the delivery (with `delivery.failed`
//! when every provider failed).

use serde_json::json;
use vouchsafe_core::delivery::{Delivery, DeliveryResult, DeliveryStatus};
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::ids::{DeliveryId, TenantId, VerificationId};
use vouchsafe_core::provider::{Credential, ProviderKind, send_order};
use vouchsafe_delivery::failover::{OpenCredential, Outcome};
use vouchsafe_delivery::provider::OutgoingMessage;

use super::Engine;
use super::error::EngineResult;

/// A credential in the clear, for a provider about to send.
pub async fn open_credential(engine: &Engine, tenant: &TenantId, name: &str) -> Result<Credential, String> {
    let sealed = engine.store.sealed_credential(tenant, name).await.map_err(|e| e.to_string())?;
    open_sealed(engine, tenant, name, &sealed)
}

/// Opens credential `name` of `tenant` from its sealed bytes.
fn open_sealed(engine: &Engine, tenant: &TenantId, name: &str, sealed: &[u8]) -> Result<Credential, String> {
    let opened = engine
        .sealer
        .open(sealed, &Credential::seal_context(tenant, name))
        .map_err(|_| "the credential does not open with this master key".to_owned())?;
    serde_json::from_slice(&opened).map_err(|_| "the credential is unreadable".to_owned())
}

/// Where Twilio should post receipts for this delivery.
fn status_callback(engine: &Engine, id: &DeliveryId) -> String {
    format!("{}/v1/provider-callbacks/twilio?delivery_id={id}", engine.public_url.trim_end_matches('/'))
}

/// What a send is for, so the delivery record can say.
pub struct SendRequest {
    pub tenant_id: TenantId,
    /// The version of the tenant's providers this request's read of its
    /// settings found (`SettingsAndService::providers_version`): the send
    /// uses them as they were then, served without a read when kept.
    pub providers_version: i64,
    pub verification_id: Option<VerificationId>,
    pub country: Option<String>,
    pub message: OutgoingMessage,
}

/// Sends through failover and records the outcome as a delivery.
pub async fn send(engine: &Engine, mut request: SendRequest) -> EngineResult<Delivery> {
    let id = DeliveryId::generate();
    let channel = request.message.channel;
    let providers = engine.store.providers_to_send(&request.tenant_id, request.providers_version).await?;
    let candidates = send_order(&providers.providers, channel);
    if candidates.iter().any(|c| c.kind() == ProviderKind::Twilio) {
        request.message.status_callback = Some(status_callback(engine, &id));
    }
    let tenant = &request.tenant_id;
    let sealed = &providers.sealed;
    let open: &OpenCredential<'_> = &|name: String| {
        Box::pin(async move {
            // A provider names only a credential that exists (the store
            // refuses it otherwise, and refuses to delete one in use).
            let sealed = sealed.get(&name).ok_or_else(|| format!("credential {name} is missing"))?;
            open_sealed(engine, tenant, &name, sealed)
        })
    };
    let outcome = engine.failover.send(&candidates, open, &request.message).await;
    let now = engine.clock.now();
    let mut delivery = Delivery {
        id,
        tenant_id: request.tenant_id.clone(),
        verification_id: request.verification_id.clone(),
        channel,
        to: request.message.to.clone(),
        country: request.country.clone(),
        status: DeliveryStatus::Sent,
        result: DeliveryResult::Success,
        provider: None,
        provider_message_id: None,
        error: None,
        created_at: now,
        updated_at: now,
    };
    let event = match outcome {
        Outcome::Accepted { provider, provider_message_id, tried } => {
            if !tried.is_empty() {
                tracing::info!(provider = %provider, failed_over = tried.len(), "sent after failover");
            }
            delivery.provider = Some(provider);
            delivery.provider_message_id = provider_message_id;
            None
        }
        Outcome::Failed { tried } => {
            delivery.status = DeliveryStatus::Failed;
            delivery.result = DeliveryResult::ProviderError;
            delivery.provider = tried.last().map(|t| t.provider.clone());
            delivery.error = Some(if tried.is_empty() {
                format!("no enabled provider carries {}", channel.as_str())
            } else {
                tried.iter().map(|t| format!("{}: {}", t.provider, t.error)).collect::<Vec<_>>().join("; ")
            });
            Some(failed_event(&delivery, now))
        }
    };
    engine.store.record_delivery(&delivery, event.as_ref()).await?;
    if event.is_some() {
        engine.wake_dispatcher.notify_one();
    }
    Ok(delivery)
}

/// The `delivery.failed` event of a delivery.
pub fn failed_event(d: &Delivery, now: time::OffsetDateTime) -> Event {
    Event::new(
        d.tenant_id.clone(),
        EventType::DeliveryFailed,
        json!({
            "delivery_id": d.id.as_str(),
            "verification_id": d.verification_id.as_ref().map(VerificationId::as_str),
            "channel": d.channel.as_str(),
            "to": d.to,
            "status": d.status.as_str(),
            "provider": d.provider,
            "provider_message_id": d.provider_message_id,
            "error": d.error,
        }),
        now,
    )
}
