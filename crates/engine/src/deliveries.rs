//! Delivering a code the CRM made (a custom OTP delivery handler): the
//! destination read in the tenant's country, geo permissions, the send
//! limits, the message (the caller's text or the channel's template with
//! the policy's time to live), then the providers' failover. Refusals are
//! recorded deliveries with Salesforce's result, not errors, so a handler
//! can pass the result straight through. The code is never stored.

use vouchsafe_core::channel::Channel;
use vouchsafe_core::delivery::{Delivery, DeliveryResult, DeliveryStatus};
use vouchsafe_core::fraud::counters_for;
use vouchsafe_core::ids::{DeliveryId, TenantId};
use vouchsafe_core::store::SettingsAndService;
use vouchsafe_core::verification::{Destination, DestinationError, OtpPolicy};
use vouchsafe_delivery::provider::OutgoingMessage;
use vouchsafe_delivery::templates::{Values, render, render_custom};

use super::error::EngineResult;
use super::send::{SendRequest, send};
use super::{Engine, sender_name, settings_and_service};

/// A code to deliver, as the CRM gave it (already checked for shape).
pub struct NewDelivery {
    pub tenant_id: TenantId,
    pub channel: Channel,
    pub to: String,
    pub code: String,
    /// The CRM's own text (it contains the code); else the template.
    pub message: Option<String>,
    pub locale: Option<String>,
    /// For a number written without `+`.
    pub default_country: Option<String>,
    pub user_id: Option<String>,
    pub network_id: Option<String>,
    pub experience_id: Option<String>,
}

/// How a delivery ended.
pub enum Delivered {
    /// Sent or refused: the delivery as recorded, with its result.
    Recorded(Box<Delivery>),
    /// Sending failed inside the server (logged); the CRM is told
    /// `EXCEPTION` so its handler still has a result to pass on.
    Failed,
}

/// Delivers `new`.
pub async fn deliver(engine: &Engine, new: NewDelivery) -> EngineResult<Delivered> {
    let tenant = &new.tenant_id;
    let channel = new.channel;
    let SettingsAndService { settings, service, is_default, providers_version } =
        settings_and_service(engine, tenant, None).await?;
    let settings = settings.value;
    let country = settings.number_country(new.default_country.as_deref())?;
    let to = match Destination::parse_in(channel, "to", &new.to, country) {
        Ok(to) => to,
        Err(DestinationError::Invalid(_)) => {
            let why = "not a valid destination";
            return refused(engine, tenant, channel, &new.to, None, DeliveryResult::InvalidPhoneNumber, why).await;
        }
        Err(DestinationError::Landline) => {
            let why = "a landline cannot receive SMS";
            return refused(engine, tenant, channel, &new.to, None, DeliveryResult::InvalidPhoneNumber, why).await;
        }
    };
    let country = to.country().map(str::to_owned);
    if to.blocked_country(&settings).is_some() {
        let why = "country not permitted";
        return refused(engine, tenant, channel, to.as_str(), country, DeliveryResult::CountryBlock, why).await;
    }
    let now = engine.clock.now();
    if let Err(refusal) = engine.store.count_sends(&counters_for(tenant, &to, &settings.fraud, now), now).await? {
        tracing::info!(to = %to.masked(), ?refusal, "delivery refused by a send limit");
        let (why, result) = ("send limit reached", DeliveryResult::MessageLimitExceeded);
        return refused(engine, tenant, channel, to.as_str(), country, result, why).await;
    }
    let rendered = match &new.message {
        Some(message) if !message.is_empty() => render_custom(channel, message, &new.code),
        _ => {
            let minutes = OtpPolicy::resolve(&settings, &service).ttl.as_secs().div_ceil(60);
            let values = Values { code: &new.code, service: sender_name(&settings, &service, is_default), minutes };
            render(channel, &settings.templates, new.locale.as_deref(), &values)
        }
    };
    let message = OutgoingMessage {
        channel,
        to: to.as_str().to_owned(),
        to_masked: to.masked(),
        rendered,
        code: new.code,
        locale: new.locale,
        user_id: new.user_id,
        network_id: new.network_id,
        experience_id: new.experience_id,
        status_callback: None,
    };
    let request = SendRequest { tenant_id: tenant.clone(), providers_version, verification_id: None, country, message };
    let delivery = match send(engine, request).await {
        Ok(delivery) => delivery,
        Err(e) => {
            tracing::error!(error = %vouchsafe_core::error::chain(&e), "delivery failed inside the server");
            return Ok(Delivered::Failed);
        }
    };
    count(&delivery);
    tracing::info!(delivery_id = %delivery.id, to = %to.masked(), result = delivery.result.as_str(), "delivery");
    Ok(Delivered::Recorded(Box::new(delivery)))
}

/// Records a delivery refused before any provider was asked.
async fn refused(
    engine: &Engine,
    tenant: &TenantId,
    channel: Channel,
    to: &str,
    country: Option<String>,
    result: DeliveryResult,
    why: &str,
) -> EngineResult<Delivered> {
    let now = engine.clock.now();
    let d = Delivery {
        id: DeliveryId::generate(),
        tenant_id: tenant.clone(),
        verification_id: None,
        channel,
        to: to.chars().take(64).collect(),
        country,
        status: DeliveryStatus::Rejected,
        result,
        provider: None,
        provider_message_id: None,
        error: Some(why.to_owned()),
        created_at: now,
        updated_at: now,
    };
    engine.store.record_delivery(&d, None).await?;
    count(&d);
    Ok(Delivered::Recorded(Box::new(d)))
}

fn count(d: &Delivery) {
    metrics::counter!("vouchsafe_deliveries_total", "channel" => d.channel.as_str(), "result" => d.result.as_str())
        .increment(1);
}

/// Settles a sent delivery with its provider's receipt, once: a late or
/// replayed receipt changes nothing. `undelivered` records the provider's
/// error code and emits `delivery.failed`. Whether this receipt settled it.
pub async fn record_receipt(
    engine: &Engine,
    delivery: &Delivery,
    settled: DeliveryStatus,
    error: Option<String>,
    provider: &'static str,
) -> EngineResult<bool> {
    let now = engine.clock.now();
    let mut updated = delivery.clone();
    updated.status = settled;
    updated.updated_at = now;
    if settled == DeliveryStatus::Undelivered {
        updated.error = error;
    }
    let event = (settled == DeliveryStatus::Undelivered).then(|| super::send::failed_event(&updated, now));
    if !engine.store.record_receipt(&updated, event.as_ref()).await? {
        return Ok(false);
    }
    if event.is_some() {
        engine.wake_dispatcher.notify_one();
    }
    metrics::counter!("vouchsafe_delivery_receipts_total", "provider" => provider, "status" => settled.as_str())
        .increment(1);
    tracing::info!(delivery_id = %delivery.id, status = settled.as_str(), "delivery receipt");
    Ok(true)
}
