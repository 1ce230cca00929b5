//! Starting, checking and ending verifications (API.md, "Verifications").
//!
//! A start makes a fresh code and either opens a verification or puts the
//! code on the pending one (which then accepts only the newest code); the
//! store applies cooldown, send window and fraud limits in the same
//! transaction. A check compares the code's keyed hash in constant time,
//! then lets one conditional statement approve (or count a wrong code),
//! so a code is approved at most once across any number of nodes.

use serde_json::json;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::destination::Country;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::fraud::counters_for;
use vouchsafe_core::ids::{TenantId, VerificationId};
use vouchsafe_core::otp::random_numeric_code;
use vouchsafe_core::store::{ReadForCheck, Resend, SettingsAndService, StoreError};
use vouchsafe_core::verification::{
    Destination, DestinationError, OtpPolicy, Verification, VerificationStatus, plausible_code, same_hash,
};
use vouchsafe_delivery::provider::OutgoingMessage;
use vouchsafe_delivery::templates::{Values, render};

use super::Engine;
use super::error::{EngineError, EngineResult};
use super::send::{SendRequest, send};
use super::{parse_locale, sender_name, settings_and_service};
use vouchsafe_core::field_error::FieldError;

/// How many rounds a start makes: the first opens a verification without
/// reading, each later one reads after a conflict (a pending one, or a race
/// lost to another start for the same destination).
const START_RACES: u32 = 6;

pub struct StartRequest<'a> {
    pub tenant_id: &'a TenantId,
    pub to: &'a str,
    pub channel: &'a str,
    pub service_id: Option<&'a str>,
    pub locale: Option<&'a str>,
    /// Where a number written without `+` is read (else the tenant's).
    pub default_country: Option<&'a str>,
}

/// Parses a destination for a channel; a number written nationally is
/// read in `country` (see `Settings::number_country`).
pub fn destination(channel: Channel, field: &str, to: &str, country: Option<Country>) -> EngineResult<Destination> {
    Destination::parse_in(channel, field, to, country).map_err(|e| match e {
        DestinationError::Invalid(e) if channel == Channel::Email => EngineError::Invalid(e),
        DestinationError::Invalid(e) => EngineError::InvalidPhoneNumber(e),
        DestinationError::Landline => EngineError::Landline,
    })
}

/// The metrics label of a verification's country: its code, or `none`.
fn country_label(country: Option<&str>) -> String {
    country.unwrap_or("none").to_owned()
}

/// Sends a fresh code to `to`, opening a verification or resending on the
/// pending one.
pub async fn start(engine: &Engine, req: StartRequest<'_>) -> EngineResult<Verification> {
    let channel = Channel::parse(req.channel)
        .ok_or_else(|| EngineError::Invalid(FieldError::new("channel", "must be sms, voice or email")))?;
    let locale = parse_locale(req.locale)?;
    let SettingsAndService { settings, service, is_default, providers_version } =
        settings_and_service(engine, req.tenant_id, req.service_id).await?;
    let settings = settings.value;
    if !service.channels.contains(&channel) {
        return Err(EngineError::Invalid(FieldError::new("channel", "this service does not send on that channel")));
    }
    let country = settings.number_country(req.default_country).map_err(EngineError::Invalid)?;
    let to = destination(channel, "to", req.to, country)?;
    if let Some(country) = to.blocked_country(&settings) {
        return Err(EngineError::GeoNotPermitted(country.to_owned()));
    }
    let policy = OtpPolicy::resolve(&settings, &service);
    let code = random_numeric_code(policy.code_length).map_err(EngineError::internal)?;
    let mut verification = None;
    for round in 0..START_RACES {
        let now = engine.clock.now();
        let counters = counters_for(req.tenant_id, &to, &settings.fraud, now);
        // Most starts find no pending verification: the first round tries
        // to open one without reading, and only a conflict (one is pending)
        // reads it to resend on it.
        let pending = if round == 0 {
            None
        } else {
            engine
                .store
                .verification_by_to(req.tenant_id, &service.id, &to.match_key())
                .await?
                .filter(|v| v.status_at(now) == VerificationStatus::Pending)
        };
        if let Some(pending) = pending {
            let resend = Resend {
                tenant_id: req.tenant_id.clone(),
                code_hash: engine.code_hasher.hash(pending.id.as_str(), &code),
                id: pending.id,
                channel,
                locale: locale.clone(),
                now,
                expires_at: now + policy.ttl,
                max_sends: policy.max_sends,
                send_window_ms: millis(policy.send_window),
                cooldown_ms: millis(policy.resend_cooldown),
            };
            match engine.store.resend_verification(&resend, &counters).await {
                Ok(Ok(v)) => {
                    verification = Some(v);
                    break;
                }
                Ok(Err(refusal)) => return Err(EngineError::SendLimit(refusal)),
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        } else {
            let id = VerificationId::generate();
            let hash = engine.code_hasher.hash(id.as_str(), &code);
            let v = Verification::new(id, &service, &to, channel, locale.clone(), hash, &policy, now);
            match engine.store.create_verification(&v, &counters).await {
                Ok(Ok(())) => {
                    verification = Some(v);
                    break;
                }
                Ok(Err(refusal)) => return Err(EngineError::SendLimit(refusal)),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let verification = verification.ok_or(EngineError::Busy)?;
    let values = Values {
        code: &code,
        service: sender_name(&settings, &service, is_default),
        minutes: policy.ttl.as_secs().div_ceil(60),
    };
    let message = OutgoingMessage {
        channel,
        to: to.as_str().to_owned(),
        to_masked: to.masked(),
        rendered: render(channel, &settings.templates, locale.as_deref(), &values),
        code: code.clone(),
        locale: locale.clone(),
        user_id: None,
        network_id: None,
        experience_id: None,
        status_callback: None,
    };
    let delivery = send(
        engine,
        SendRequest {
            tenant_id: req.tenant_id.clone(),
            providers_version,
            verification_id: Some(verification.id.clone()),
            country: verification.country.clone(),
            message,
        },
    )
    .await?;
    metrics::counter!("vouchsafe_verification_sends_total", "channel" => channel.as_str(),
        "country" => country_label(verification.country.as_deref()), "outcome" => delivery.status.as_str())
    .increment(1);
    tracing::info!(verification_id = %verification.id, to = %to.masked(), channel = channel.as_str(),
        send_count = verification.send_count, delivery_id = %delivery.id, "verification code sent");
    if delivery.status != vouchsafe_core::delivery::DeliveryStatus::Sent {
        // Nobody got the code: let the next start try again at once (the
        // failed send still counts toward the limits).
        engine.store.clear_cooldown(req.tenant_id, &verification.id, verification.send_count).await?;
        return Err(EngineError::ProviderUnavailable);
    }
    Ok(verification)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What a check found.
pub struct Checked {
    pub verification: Verification,
    pub status: VerificationStatus,
    pub valid: bool,
    /// Whether this check was counted (approved it, or a wrong code that
    /// used up an attempt) rather than finding it already settled.
    pub counted: bool,
}

/// How a check names its verification.
pub enum Target<'a> {
    Id(&'a str),
    To { to: &'a str, service_id: Option<&'a str> },
}

pub async fn find(engine: &Engine, tenant: &TenantId, target: Target<'_>) -> EngineResult<Verification> {
    match target {
        Target::Id(id) => {
            let id = VerificationId::parse(id).ok_or(EngineError::NotFound)?;
            Ok(engine.store.verification(tenant, &id).await?)
        }
        Target::To { to, service_id } => {
            let SettingsAndService { settings, service, .. } = settings_and_service(engine, tenant, service_id).await?;
            let settings = settings.value;
            // Matched on the destination's key: E.164, or the address in lower case.
            let channel = if to.contains('@') { Channel::Email } else { Channel::Voice };
            let country = settings.number_country(None).map_err(EngineError::Invalid)?;
            let to = destination(channel, "to", to, country)?;
            engine.store.verification_by_to(tenant, &service.id, &to.match_key()).await?.ok_or(EngineError::NotFound)
        }
    }
}

/// Writes down that a pending verification's time ran out (audited once).
async fn settle_expiry(engine: &Engine, v: &Verification, actor: &str, now: OffsetDateTime) -> EngineResult<()> {
    if v.status == VerificationStatus::Pending && v.status_at(now) == VerificationStatus::Expired {
        let audit = AuditEntry::new(actor, "verification.expired", v.id.as_str(), "expired", now);
        engine.store.end_verification(&v.tenant_id, &v.id, false, now, &audit).await?;
    }
    Ok(())
}

/// Checks a code.
pub async fn check(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    target: Target<'_>,
    code: &str,
) -> EngineResult<Checked> {
    let now = engine.clock.now();
    // The code's keyed hash, made once: by id before the read, so the
    // store can count a wrong code as it finds the verification; by `to`
    // only when the code is compared (below). A code that cannot be a code
    // has none and is simply wrong.
    let hash_for = |owner: &str| plausible_code(code).then(|| engine.code_hasher.hash(owner, code));
    let (v, candidate) = match target {
        Target::Id(id) => {
            let id = VerificationId::parse(id).ok_or(EngineError::NotFound)?;
            let candidate = hash_for(id.as_str());
            match engine.store.verification_for_check(tenant, &id, candidate.as_deref(), now).await? {
                ReadForCheck::CountedWrong(after) => return Ok(counted_wrong(after)),
                ReadForCheck::Read(v) => (v, candidate),
            }
        }
        target => (find(engine, tenant, target).await?, None),
    };
    let status = v.status_at(now);
    if status.is_final() {
        settle_expiry(engine, &v, actor, now).await?;
        return Ok(finished(v, status, "final"));
    }
    // SECURITY: the hash comparison is constant-time.
    let candidate = candidate.or_else(|| hash_for(v.id.as_str()));
    if candidate.is_some_and(|candidate| same_hash(&v.code_hash, &candidate)) {
        let event = approved_event(&v, now);
        let audit = AuditEntry::new(actor, "verification.approved", v.id.as_str(), "approved", now);
        if engine.store.approve_verification(&v, now, &event, &audit).await? {
            engine.wake_dispatcher.notify_one();
            metrics::counter!("vouchsafe_verification_checks_total", "outcome" => "approved").increment(1);
            metrics::counter!("vouchsafe_verification_approvals_total", "channel" => v.channel.as_str(),
                "country" => country_label(v.country.as_deref()))
            .increment(1);
            tracing::info!(verification_id = %v.id, "verification approved");
            return Ok(Checked { status: VerificationStatus::Approved, valid: true, counted: true, verification: v });
        }
        // Another check won, or a resend replaced the code meanwhile.
        let now_v = engine.store.verification(tenant, &v.id).await?;
        if now_v.status_at(now).is_final() {
            let status = now_v.status_at(now);
            return Ok(finished(now_v, status, "raced"));
        }
    }
    let audit = AuditEntry::new(actor, "verification.max_attempts_reached", v.id.as_str(), "denied", now);
    match engine.store.record_wrong_code(tenant, &v.id, now, &audit).await? {
        Some(after) => Ok(counted_wrong(after)),
        None => {
            let now_v = engine.store.verification(tenant, &v.id).await?;
            let status = now_v.status_at(now);
            Ok(finished(now_v, status, "raced"))
        }
    }
}

/// The answer to a wrong code that was counted.
fn counted_wrong(after: Verification) -> Checked {
    metrics::counter!("vouchsafe_verification_checks_total", "outcome" => "wrong_code").increment(1);
    tracing::info!(verification_id = %after.id, attempts = after.attempts, "wrong code");
    Checked { status: after.status, valid: false, counted: true, verification: after }
}

/// The `verification.approved` event of a verification.
fn approved_event(v: &Verification, now: OffsetDateTime) -> Event {
    Event::new(
        v.tenant_id.clone(),
        EventType::VerificationApproved,
        json!({
            "verification_id": v.id.as_str(),
            "service_id": v.service_id.as_str(),
            "to": v.to,
            "channel": v.channel.as_str(),
            "send_count": v.send_count,
            "approved_at": vouchsafe_core::clock::rfc3339(now),
        }),
        now,
    )
}

/// Approves a pending verification without a code (the integrator
/// verified the person another way); a settled one is returned as it is.
pub async fn approve(engine: &Engine, tenant: &TenantId, actor: &str, id: &str) -> EngineResult<Verification> {
    let v = find(engine, tenant, Target::Id(id)).await?;
    let now = engine.clock.now();
    if v.status_at(now) == VerificationStatus::Pending {
        let audit = AuditEntry::new(actor, "verification.approved", v.id.as_str(), "approved_without_code", now);
        if engine.store.approve_verification(&v, now, &approved_event(&v, now), &audit).await? {
            engine.wake_dispatcher.notify_one();
            tracing::info!(verification_id = %v.id, "verification approved without a code");
        }
    } else {
        settle_expiry(engine, &v, actor, now).await?;
    }
    Ok(engine.store.verification(tenant, &v.id).await?)
}

fn finished(v: Verification, status: VerificationStatus, why: &'static str) -> Checked {
    metrics::counter!("vouchsafe_verification_checks_total", "outcome" => status.as_str()).increment(1);
    tracing::debug!(verification_id = %v.id, status = status.as_str(), why, "check of a settled verification");
    Checked { verification: v, status, valid: false, counted: false }
}

/// Cancels a pending verification; a settled one is returned as it is.
pub async fn cancel(engine: &Engine, tenant: &TenantId, actor: &str, id: &str) -> EngineResult<Verification> {
    let v = find(engine, tenant, Target::Id(id)).await?;
    let now = engine.clock.now();
    if v.status_at(now) == VerificationStatus::Pending {
        let audit = AuditEntry::new(actor, "verification.canceled", v.id.as_str(), "canceled", now);
        engine.store.end_verification(tenant, &v.id, true, now, &audit).await?;
    } else {
        settle_expiry(engine, &v, actor, now).await?;
    }
    Ok(engine.store.verification(tenant, &v.id).await?)
}

#[cfg(test)]
mod tests {
    use super::country_label;

    #[test]
    fn the_country_label_is_the_code_or_none() {
        assert_eq!(country_label(Some("GB")), "GB");
        assert_eq!(country_label(None), "none");
    }
}
