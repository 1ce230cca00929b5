//! Help-desk caller verification (API.md, "Caller verification"): a
//! message with a link and a code goes to the customer; the customer
//! approves or denies on the link's page, or reads the code to the agent.
//! A customer whose user has a second factor gets the link only and
//! approves with the factor on its page: the agent's code check cannot
//! verify them.
//! Endings are conditional writes with their event; a sweeper ends what
//! ran out of time.

use time::{Duration, OffsetDateTime};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::{AuthenticatorKind, AuthenticatorStatus, AuthenticatorUse};
use vouchsafe_core::caller::{CallerMethod, CallerStatus, CallerVerification, pick_channel};
use vouchsafe_core::channel::Channel;
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::fraud::counters_for;
use vouchsafe_core::ids::{CallerVerificationId, TenantId};
use vouchsafe_core::otp::random_numeric_code;
use vouchsafe_core::store::SettingsAndService;
use vouchsafe_core::verification::plausible_code;
use vouchsafe_delivery::provider::OutgoingMessage;
use vouchsafe_delivery::templates::{caller_template, render_caller};

use super::Engine;
use super::authenticators::match_code;
use super::error::{EngineError, EngineResult};
use super::send::{SendRequest, send};
use super::verifications::destination;
use super::{parse_locale, settings_and_service};

fn invalid(field: &str, message: &str) -> EngineError {
    EngineError::Invalid(FieldError::new(field, message))
}

fn text_field(field: &str, value: &str, max: usize) -> EngineResult<()> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(invalid(field, &format!("must be 1 to {max} printable characters")));
    }
    Ok(())
}

pub struct NewCaller<'a> {
    pub tenant_id: &'a TenantId,
    pub actor: &'a str,
    pub record_id: &'a str,
    pub record_type: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub time_allowed_s: Option<u32>,
    pub agent_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    /// Language of the message (`es`, `pt-BR`, …).
    pub locale: Option<&'a str>,
    /// Where a number written without `+` is read (else the tenant's).
    pub default_country: Option<&'a str>,
}

/// The keyed hash a link token is stored and found by.
pub fn link_hash(engine: &Engine, token: &str) -> String {
    engine.code_hasher.hash("caller-link", token)
}

/// The message for a caller who must pass a second factor: the link only.
/// SECURITY: such a caller's message carries no code to read out, so no
/// path to `verified` skips the factor (see [`check`]).
const STEP_UP_TEMPLATE: &str = "{service}: are you on a call with us? Approve on {link}";

/// Whether a caller verification's user must pass a second factor on the
/// link's page: any active TOTP, HOTP, YubiKey or passkey.
pub async fn requires_factor(engine: &Engine, tenant: &TenantId, user: Option<&str>) -> EngineResult<bool> {
    let Some(user) = user else { return Ok(false) };
    let factors =
        [AuthenticatorKind::Totp, AuthenticatorKind::Hotp, AuthenticatorKind::Yubikey, AuthenticatorKind::Passkey];
    Ok(engine
        .store
        .authenticators(tenant, user)
        .await?
        .iter()
        .any(|a| a.status == AuthenticatorStatus::Active && factors.contains(&a.kind)))
}

/// Starts a caller verification and sends its message.
pub async fn create(engine: &Engine, req: NewCaller<'_>) -> EngineResult<CallerVerification> {
    text_field("record_id", req.record_id, 200)?;
    let record_type = req.record_type.unwrap_or("case");
    text_field("record_type", record_type, 64)?;
    if let Some(agent) = req.agent_id {
        text_field("agent_id", agent, 200)?;
    }
    // The settings with the providers' version the send may use its kept
    // providers at (the default service comes along, unused).
    let SettingsAndService { settings, providers_version, .. } =
        settings_and_service(engine, req.tenant_id, None).await?;
    let settings = settings.value;
    let requested =
        req.channel.map(|c| Channel::parse(c).ok_or_else(|| invalid("channel", "must be sms, voice or email")));
    let channel = pick_channel(
        requested.transpose()?,
        req.phone.is_some_and(|p| !p.is_empty()),
        req.email.is_some_and(|e| !e.is_empty()),
        settings.caller_verification.channel,
    );
    let locale = parse_locale(req.locale)?;
    let time_allowed_s = req.time_allowed_s.unwrap_or(settings.caller_verification.time_allowed_s);
    if !(10..=3_600).contains(&time_allowed_s) {
        return Err(invalid("time_allowed_s", "must be between 10 and 3600"));
    }
    let (field, given) = if channel == Channel::Email { ("email", req.email) } else { ("phone", req.phone) };
    let given = given.ok_or_else(|| invalid(field, "is required for this channel"))?;
    let country = settings.number_country(req.default_country).map_err(EngineError::Invalid)?;
    let to = destination(channel, field, given, country)?;
    if let Some(country) = to.blocked_country(&settings) {
        return Err(EngineError::GeoNotPermitted(country.to_owned()));
    }
    if let Some(user) = req.user_id {
        engine.store.user(req.tenant_id, user).await.map_err(|_| invalid("user_id", "no user by that id"))?;
    }
    let now = engine.clock.now();
    if let Err(refusal) = engine.store.count_sends(&counters_for(req.tenant_id, &to, &settings.fraud, now), now).await?
    {
        return Err(EngineError::SendLimit(refusal));
    }
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let code = random_numeric_code(6).map_err(EngineError::internal)?;
    let id = CallerVerificationId::generate();
    let cv = CallerVerification {
        code_hash: engine.code_hasher.hash(id.as_str(), &code),
        link_hash: link_hash(engine, &token),
        id,
        tenant_id: req.tenant_id.clone(),
        record_id: req.record_id.to_owned(),
        record_type: record_type.to_owned(),
        user_id: req.user_id.map(str::to_owned),
        destination: to.as_str().to_owned(),
        channel,
        agent_id: req.agent_id.map(str::to_owned),
        status: CallerStatus::Pending,
        attempts: 0,
        max_attempts: settings.otp.max_check_attempts,
        time_allowed_s,
        expires_at: now + Duration::seconds(i64::from(time_allowed_s)),
        completed_at: None,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditEntry::new(req.actor, "caller_verification.created", cv.id.as_str(), channel.as_str(), now);
    engine.store.create_caller_verification(&cv, &audit).await?;
    let link = format!("{}/caller/{token}", engine.public_url.trim_end_matches('/'));
    let (template, code) = if requires_factor(engine, req.tenant_id, req.user_id).await? {
        (STEP_UP_TEMPLATE, String::new())
    } else {
        (caller_template(&settings.templates, locale.as_deref()), code)
    };
    let message = OutgoingMessage {
        channel,
        to: to.as_str().to_owned(),
        to_masked: to.masked(),
        rendered: render_caller(channel, template, &settings.branding.name, &link, &code),
        code,
        locale: locale.clone(),
        user_id: req.user_id.map(str::to_owned),
        network_id: None,
        experience_id: None,
        status_callback: None,
    };
    let delivery = send(
        engine,
        SendRequest {
            tenant_id: req.tenant_id.clone(),
            providers_version,
            verification_id: None,
            country: cv.country(),
            message,
        },
    )
    .await?;
    if delivery.status != vouchsafe_core::delivery::DeliveryStatus::Sent {
        let audit = AuditEntry::new(req.actor, "caller_verification.failed", cv.id.as_str(), "not_delivered", now);
        end(engine, &cv, CallerStatus::Failed, None, &audit).await?;
        return Err(EngineError::ProviderUnavailable);
    }
    tracing::info!(caller_verification_id = %cv.id, to = %to.masked(), channel = channel.as_str(), "caller verification sent");
    Ok(cv)
}

/// Ends a pending verification (with its event); the row as it stands after.
pub async fn end(
    engine: &Engine,
    cv: &CallerVerification,
    status: CallerStatus,
    method: Option<CallerMethod>,
    audit: &AuditEntry,
) -> EngineResult<CallerVerification> {
    let now = engine.clock.now();
    let ended = engine.store.end_caller_verification(&cv.tenant_id, &cv.id, status, now, method, audit).await?;
    if ended.is_some() {
        engine.wake_dispatcher.notify_one();
    }
    Ok(engine.store.caller_verification(&cv.tenant_id, &cv.id).await?)
}

/// The code the customer read to the agent.
pub async fn check(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    id: &CallerVerificationId,
    code: &str,
) -> EngineResult<(CallerVerification, bool)> {
    let cv = engine.store.caller_verification(tenant, id).await?;
    let now = engine.clock.now();
    if cv.status_at(now) != CallerStatus::Pending {
        return Ok((cv, false));
    }
    // SECURITY: a caller with a second factor approves on the link with it;
    // a read-out code (none was sent) can never verify them.
    if requires_factor(engine, tenant, cv.user_id.as_deref()).await? {
        return Err(EngineError::FactorRequired);
    }
    // SECURITY: constant-time comparison inside `matches`.
    let code = code.trim();
    if plausible_code(code) && engine.code_hasher.matches(&cv.code_hash, cv.id.as_str(), code) {
        let audit = AuditEntry::new(actor, "caller_verification.verified", cv.id.as_str(), "code", now);
        let after = end(engine, &cv, CallerStatus::Verified, Some(CallerMethod::Code), &audit).await?;
        let valid = after.status == CallerStatus::Verified;
        return Ok((after, valid));
    }
    let audit = AuditEntry::new(actor, "caller_verification.failed", cv.id.as_str(), "wrong_codes", now);
    match engine.store.caller_wrong_code(tenant, id, now, Some(CallerMethod::Code), &audit).await? {
        Some(after) => {
            if after.status == CallerStatus::Failed {
                engine.wake_dispatcher.notify_one();
            }
            Ok((after, false))
        }
        None => Ok((engine.store.caller_verification(tenant, id).await?, false)),
    }
}

/// Ends every pending verification whose time is up; how many it ended.
pub async fn sweep(store: &dyn vouchsafe_core::store::Store, now: OffsetDateTime) -> EngineResult<usize> {
    let mut ended = 0;
    for cv in store.due_caller_verifications(now, 200).await? {
        let audit = AuditEntry::new("sweeper", "caller_verification.expired", cv.id.as_str(), "expired", now);
        if store
            .end_caller_verification(&cv.tenant_id, &cv.id, CallerStatus::Expired, now, None, &audit)
            .await?
            .is_some()
        {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Whether `code` passes one of the caller's active code authenticators
/// (TOTP, HOTP, YubiKey); the authenticator's counter moves forward in the
/// same audited write, so the code is spent.
pub async fn passes_factor(engine: &Engine, cv: &CallerVerification, actor: &str, code: &str) -> bool {
    let Some(user) = &cv.user_id else { return false };
    let Ok(list) = engine.store.authenticators(&cv.tenant_id, user).await else { return false };
    let now = engine.clock.now();
    for a in list.iter().filter(|a| a.status == AuthenticatorStatus::Active) {
        if let Ok(Some(AuthenticatorUse::Counter { id, value })) = match_code(engine, a, code) {
            let audit = AuditEntry::new(actor, "authenticator.used", id.as_str(), "caller_verification", now);
            return engine.store.advance_authenticator(&cv.tenant_id, &id, value, now, &audit).await.unwrap_or(false);
        }
    }
    false
}

/// Counts a wrong factor code on the customer's page; the last allowed one
/// fails the verification (with its event). The verification after.
pub async fn factor_failed(engine: &Engine, cv: &CallerVerification, actor: &str) -> CallerVerification {
    let now = engine.clock.now();
    let audit = AuditEntry::new(actor, "caller_verification.failed", cv.id.as_str(), "wrong_codes", now);
    let counted = engine.store.caller_wrong_code(&cv.tenant_id, &cv.id, now, Some(CallerMethod::Factor), &audit).await;
    if matches!(counted, Ok(Some(ref after)) if after.status == CallerStatus::Failed) {
        engine.wake_dispatcher.notify_one();
    }
    engine.store.caller_verification(&cv.tenant_id, &cv.id).await.unwrap_or_else(|_| cv.clone())
}
