//! Second-factor challenges: the policy picks a factor, a code factor
//! sends its code through the verification engine, an answer is checked
//! against the user's authenticators (or the verification), and the store
//! applies the outcome in one transaction — the authenticator used up,
//! the challenge approved or counted, the user's lockout counters, the
//! events. SECURITY: an answer is counted (the challenge's attempt and the
//! user's failure, in one conditional transaction) before what it proves
//! is acted on, so parallel or expensive answers cannot outrun the limits:
//! a passkey, a recovery code (a slow hash) or a sent code is evaluated
//! only once counted; a TOTP, HOTP or YubiKey code, whose check costs
//! less than the count, is checked as the challenge is read and, when
//! right, counted and approved in one write. A user locked out gets `423`
//! whatever the answer was, and approval requires the user to be unlocked
//! in the statement that approves.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::{Authenticator, AuthenticatorKind, AuthenticatorStatus, AuthenticatorUse};
use vouchsafe_core::challenge::{Challenge, ChallengeStatus, Factor, PolicyError, choose, parse_redirect_url};
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::ids::{ChallengeId, TenantId};
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{AnswerGate, ApprovalOutcome, ChallengeToAnswer, FailureEffects, Lockout};
use vouchsafe_core::user::User;

use super::Engine;
use super::authenticators::{match_code, match_recovery_code, slow_hash_permit};
use super::error::{EngineError, EngineResult};
use super::passkeys;
use super::slow_hash::Permit;
use super::verifications::{self, StartRequest, Target};

/// Errors of challenges beyond the engine's common ones.
#[derive(Debug)]
pub enum ChallengeError {
    Engine(EngineError),
    /// The user is locked out until then.
    Locked(OffsetDateTime),
    PhishingResistantRequired,
}

impl From<EngineError> for ChallengeError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

impl From<vouchsafe_core::store::StoreError> for ChallengeError {
    fn from(e: vouchsafe_core::store::StoreError) -> Self {
        Self::Engine(e.into())
    }
}

type ChallengeResult<T> = Result<T, ChallengeError>;

fn invalid(field: &str, message: &str) -> ChallengeError {
    ChallengeError::Engine(EngineError::Invalid(FieldError::new(field, message)))
}

pub struct NewChallenge<'a> {
    pub tenant_id: &'a TenantId,
    pub actor: &'a str,
    pub user_id: &'a str,
    pub action: Option<&'a str>,
    pub factor: Option<&'a str>,
    pub redirect_url: Option<&'a str>,
    pub locale: Option<&'a str>,
}

fn locked(user: &User, now: OffsetDateTime) -> ChallengeResult<()> {
    match user.locked_until {
        Some(until) if now < until => Err(ChallengeError::Locked(until)),
        _ => Ok(()),
    }
}

/// Opens a challenge for a user, sending a code when the factor needs one.
pub async fn create(engine: &Engine, req: NewChallenge<'_>) -> ChallengeResult<Challenge> {
    let now = engine.clock.now();
    let user = engine.store.user(req.tenant_id, req.user_id).await?;
    locked(&user, now)?;
    let action = req.action.unwrap_or("login");
    if action.is_empty() || action.len() > 64 || !action.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("action", "must be 1 to 64 printable characters"));
    }
    let redirect_url = req.redirect_url.map(parse_redirect_url).transpose().map_err(EngineError::Invalid)?;
    let requested =
        req.factor.map(|f| Factor::parse(f).ok_or_else(|| invalid("factor", "is not a factor"))).transpose()?;
    let active: Vec<AuthenticatorKind> = engine
        .store
        .authenticators(req.tenant_id, req.user_id)
        .await?
        .into_iter()
        .filter(|a| a.status == AuthenticatorStatus::Active)
        .map(|a| a.kind)
        .collect();
    let factor = choose(&user, &active, requested).map_err(|e| match e {
        PolicyError::PhishingResistantRequired => ChallengeError::PhishingResistantRequired,
        PolicyError::Unavailable(f) => invalid("factor", &format!("{} is not available to this user", f.as_str())),
        PolicyError::NoFactor => invalid("factor", "the user has no authenticator, phone or email"),
    })?;
    let settings = engine.store.settings(req.tenant_id).await?.value;
    let verification_id = match factor {
        Factor::Sms | Factor::Voice | Factor::Email => {
            let to = if factor == Factor::Email { user.email.clone() } else { user.phone.clone() };
            let to = to.ok_or_else(|| invalid("factor", "the user has no destination for it"))?;
            let v = verifications::start(
                engine,
                StartRequest {
                    tenant_id: req.tenant_id,
                    to: &to,
                    channel: factor.as_str(),
                    service_id: None,
                    locale: req.locale,
                    default_country: None,
                },
            )
            .await?;
            Some(v.id)
        }
        _ => None,
    };
    let (passkey_options, passkey_state) = if factor == Factor::Passkey {
        let (options, ceremony) = passkeys::start_authentication(engine, req.tenant_id, req.user_id).await?;
        (Some(options), Some(ceremony))
    } else {
        (None, None)
    };
    let challenge = Challenge {
        passkey_options,
        passkey_state,
        id: ChallengeId::generate(),
        tenant_id: req.tenant_id.clone(),
        user_id: req.user_id.to_owned(),
        factor,
        action: action.to_owned(),
        redirect_url,
        status: ChallengeStatus::Pending,
        attempts: 0,
        max_attempts: settings.otp.max_check_attempts,
        verification_id,
        expires_at: now + Duration::seconds(i64::from(settings.otp.ttl_s)),
        verified_at: None,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditEntry::new(req.actor, "challenge.created", challenge.id.as_str(), factor.as_str(), now);
    engine.store.create_challenge(&challenge, &audit).await?;
    tracing::info!(challenge_id = %challenge.id, factor = factor.as_str(), "challenge created");
    Ok(challenge)
}

/// What an answer did.
pub struct Answered {
    pub challenge: Challenge,
    pub token: Option<String>,
}

fn challenge_event(c: &Challenge, kind: EventType, now: OffsetDateTime) -> Event {
    Event::new(
        c.tenant_id.clone(),
        kind,
        json!({
            "challenge_id": c.id.as_str(),
            "user_id": c.user_id,
            "factor": c.factor.as_str(),
            "action": c.action,
            "at": vouchsafe_core::clock::rfc3339(now),
        }),
        now,
    )
}

/// An answer: a code, or a WebAuthn assertion (`PublicKeyCredential.toJSON()`).
pub enum Answer<'a> {
    Code(&'a str),
    Credential(&'a serde_json::Value),
}

/// What an answer proves, as far as it is known before it is counted.
enum Proof {
    /// Checked as soon as the challenge was read, against the user's own
    /// authenticators: a TOTP, HOTP or YubiKey code, whose check (an HMAC
    /// or two, an AES block) costs less than counting it. The use it
    /// proves when right, `None` when wrong. Acted on only once counted.
    Known(Option<AuthenticatorUse>),
    /// Found only after the answer is counted: a passkey assertion, a
    /// recovery code (a slow hash) or a code sent by a verification.
    AfterCount,
}

/// What can be known of an answer before it is counted (see [`Proof`]).
fn proof_before_count(
    engine: &Engine,
    c: &Challenge,
    authenticators: &[Authenticator],
    answer: &Answer<'_>,
) -> ChallengeResult<Proof> {
    let Some(kind) = c.factor.authenticator_kind() else {
        return Ok(Proof::AfterCount);
    };
    if matches!(kind, AuthenticatorKind::Passkey | AuthenticatorKind::RecoveryCodes) || c.verification_id.is_some() {
        return Ok(Proof::AfterCount);
    }
    let Some(code) = plausible_code(answer) else {
        return Ok(Proof::Known(None));
    };
    for a in authenticators.iter().filter(|a| a.kind == kind && a.status == AuthenticatorStatus::Active) {
        if let Some(used) = match_code(engine, a, code)? {
            return Ok(Proof::Known(Some(used)));
        }
    }
    Ok(Proof::Known(None))
}

/// The code an answer gives, if it is one that could be right.
fn plausible_code<'a>(answer: &Answer<'a>) -> Option<&'a str> {
    match answer {
        Answer::Code(code) if !code.is_empty() && code.len() <= 128 => Some(code),
        _ => None,
    }
}

/// Finds what a counted answer proves for a factor of
/// [`Proof::AfterCount`], if anything. Recovery codes are checked under
/// `permit` (taken before the answer was counted).
async fn proof_after_count(
    engine: &Engine,
    c: &Challenge,
    authenticators: Vec<Authenticator>,
    actor: &str,
    answer: &Answer<'_>,
    permit: Option<Permit>,
) -> ChallengeResult<Option<Option<AuthenticatorUse>>> {
    if let (Answer::Credential(credential), Factor::Passkey) = (answer, c.factor) {
        let Some(ceremony) = &c.passkey_state else {
            return Ok(None);
        };
        // The ceremony's challenge is single-use with the challenge itself.
        let asserted = passkeys::finish_authentication(engine, &c.tenant_id, &c.user_id, ceremony, credential).await?;
        return Ok(asserted.map(|a| a.used));
    }
    let Some(code) = plausible_code(answer).filter(|_| c.factor != Factor::Passkey) else {
        return Ok(None);
    };
    if let Some(verification_id) = &c.verification_id {
        let checked =
            verifications::check(engine, &c.tenant_id, actor, Target::Id(verification_id.as_str()), code).await?;
        return Ok(checked.valid.then_some(None));
    }
    if c.factor.authenticator_kind() != Some(AuthenticatorKind::RecoveryCodes) {
        return Err(invalid("factor", "has nothing to check"));
    }
    let permit = permit.ok_or(ChallengeError::Engine(EngineError::Saturated))?;
    let sets: Vec<&Authenticator> = authenticators
        .iter()
        .filter(|a| a.kind == AuthenticatorKind::RecoveryCodes && a.status == AuthenticatorStatus::Active)
        .collect();
    Ok(match_recovery_code(engine, permit, &sets, code).await?.map(Some))
}

/// The event and audit entry of `c`'s approval.
fn approval_records(c: &Challenge, actor: &str, now: OffsetDateTime) -> (Event, AuditEntry) {
    (
        challenge_event(c, EventType::ChallengeApproved, now),
        AuditEntry::new(actor, "challenge.approved", c.id.as_str(), c.factor.as_str(), now),
    )
}

/// The lockout rule for an answer of `user` (the event a lock writes is
/// built only if one is: [`Lockout::locked`]).
fn lockout(
    tenant: &TenantId,
    user: &str,
    challenge: Option<&ChallengeId>,
    settings: &Settings,
    actor: &str,
    now: OffsetDateTime,
) -> Lockout {
    Lockout {
        threshold: settings.lockout.threshold,
        lock_until: now + Duration::seconds(i64::from(settings.lockout.duration_s)),
        tenant: tenant.clone(),
        user: user.to_owned(),
        challenge: challenge.cloned(),
        actor: actor.to_owned(),
        at: now,
    }
}

/// SECURITY: counts an answer of `user` against the lockout rule before it
/// is evaluated (every path that evaluates a user's factor comes here
/// first): `Locked` if the user is, or just became, locked.
pub async fn count_answer(
    engine: &Engine,
    tenant: &TenantId,
    user: &str,
    challenge: Option<&ChallengeId>,
    actor: &str,
) -> ChallengeResult<(AnswerGate, Lockout)> {
    let settings = engine.store.settings(tenant).await?.value;
    let now = engine.clock.now();
    let lockout = lockout(tenant, user, challenge, &settings, actor, now);
    let gate = unless_locked(engine, engine.store.reserve_answer(&lockout).await?)?;
    Ok((gate, lockout))
}

/// A reservation's gate, or `Locked` when the user is, or just became,
/// locked (then this reservation may have set the lock and queued its
/// event, which the dispatcher is woken to deliver).
fn unless_locked(engine: &Engine, gate: AnswerGate) -> ChallengeResult<AnswerGate> {
    if let AnswerGate::Locked(until) = gate {
        engine.wake_dispatcher.notify_one();
        return Err(ChallengeError::Locked(until));
    }
    Ok(gate)
}

/// An answer that proves a user's factor outside a challenge (the caller
/// page's code): counted by the same lockout rule before `evaluate` runs,
/// the user's failures cleared when it passes, locked at the threshold
/// when it does not. Whether it passed.
pub async fn answer_without_challenge(
    engine: &Engine,
    tenant: &TenantId,
    user: &str,
    actor: &str,
    evaluate: impl std::future::Future<Output = bool>,
) -> ChallengeResult<bool> {
    let (gate, lockout) = count_answer(engine, tenant, user, None, actor).await?;
    let now = engine.clock.now();
    if evaluate.await {
        engine.store.clear_user_failures(tenant, user, now).await?;
        return Ok(true);
    }
    if matches!(gate, AnswerGate::Counted { failures, .. } if failures < lockout.threshold) {
        return Ok(false);
    }
    if let Some(until) = engine.store.settle_wrong_user_answer(&lockout).await? {
        engine.wake_dispatcher.notify_one();
        tracing::warn!(target: "vouchsafe::security", user_id = %user, %until, "user locked out");
    }
    Ok(false)
}

/// Checks an answer to a challenge: counted first (the challenge's attempt
/// and the user's failure, refused when locked or out of attempts), then
/// evaluated, then approved (only while the user is unlocked) or settled
/// as wrong.
pub async fn verify(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    id: &ChallengeId,
    answer: Answer<'_>,
) -> ChallengeResult<Answered> {
    // One read: the challenge, the settings its answer is counted under and
    // the authenticators it is checked against.
    let ChallengeToAnswer { challenge: c, settings, authenticators } =
        engine.store.challenge_to_answer(tenant, id).await?;
    let now = engine.clock.now();
    match c.status_at(now) {
        ChallengeStatus::Pending => {}
        ChallengeStatus::Expired if c.status == ChallengeStatus::Pending => {
            engine.store.expire_challenge(tenant, id, now).await?;
            return Ok(Answered { challenge: engine.store.challenge(tenant, id).await?, token: None });
        }
        _ => return Ok(Answered { challenge: c, token: None }),
    }
    // SECURITY: a slow proof takes its permit before anything is counted,
    // so a refusal (429) changes nothing.
    let permit = if c.factor == Factor::RecoveryCode { Some(slow_hash_permit(engine)?) } else { None };
    let lockout = lockout(tenant, &c.user_id, Some(&c.id), &settings.value, actor, now);
    // SECURITY: what is known before the count is acted on only after it;
    // a right code known here is counted and approved in one write.
    let proof = proof_before_count(engine, &c, &authenticators, &answer)?;
    let (gate, approval) = match &proof {
        Proof::Known(Some(used)) => {
            let (event, audit) = approval_records(&c, actor, now);
            engine.store.reserve_and_approve(&c, &lockout, Some(used), (&event, &audit)).await?
        }
        _ => (engine.store.reserve_answer(&lockout).await?, None),
    };
    let AnswerGate::Counted { attempt, failures } = unless_locked(engine, gate)? else {
        return Ok(Answered { challenge: engine.store.challenge(tenant, id).await?, token: None });
    };
    let approval = match (approval, proof) {
        (Some(outcome), _) => Some(outcome),
        (None, Proof::AfterCount) => match proof_after_count(engine, &c, authenticators, actor, &answer, permit).await?
        {
            Some(used) => {
                let (event, audit) = approval_records(&c, actor, now);
                Some(engine.store.approve_challenge(&c, used.as_ref(), now, &event, &audit).await?)
            }
            None => None,
        },
        (None, Proof::Known(_)) => None,
    };
    match approval {
        Some(ApprovalOutcome::Approved(approved)) => {
            engine.wake_dispatcher.notify_one();
            metrics::counter!("vouchsafe_challenge_answers_total", "factor" => c.factor.as_str(), "outcome" => "approved").increment(1);
            let approved = *approved;
            let token = engine.token_signer.sign(&approved, now);
            tracing::info!(challenge_id = %c.id, factor = c.factor.as_str(), "challenge approved");
            return Ok(Answered { challenge: approved, token: Some(token) });
        }
        Some(ApprovalOutcome::NotPending) => {
            // Denied, expired, or the user was locked meanwhile.
            let after = engine.store.challenge(tenant, id).await?;
            let user = engine.store.user(tenant, &c.user_id).await?;
            if let Some(until) = user.locked_until.filter(|until| *until > now) {
                return Err(ChallengeError::Locked(until));
            }
            return Ok(Answered { challenge: after, token: None });
        }
        Some(ApprovalOutcome::Replayed) => {
            tracing::warn!(target: "vouchsafe::security", challenge_id = %c.id, "a code was replayed");
        }
        None => {}
    }
    metrics::counter!("vouchsafe_challenge_answers_total", "factor" => c.factor.as_str(), "outcome" => "wrong")
        .increment(1);
    // The reservation already counted this answer: only the one that took
    // the last attempt or reached the threshold has more to write.
    if attempt < c.max_attempts && failures < lockout.threshold {
        let mut after = c;
        after.attempts = attempt;
        after.updated_at = now;
        return Ok(Answered { challenge: after, token: None });
    }
    let effects = FailureEffects {
        lockout,
        denied: (
            challenge_event(&c, EventType::ChallengeDenied, now),
            AuditEntry::new(actor, "challenge.denied", c.id.as_str(), "denied", now),
        ),
    };
    let outcome = engine.store.settle_wrong_answer(&c, attempt, now, &effects).await?;
    if outcome.locked_until.is_some() || outcome.challenge.status == ChallengeStatus::Denied {
        engine.wake_dispatcher.notify_one();
    }
    if let Some(until) = outcome.locked_until {
        tracing::warn!(target: "vouchsafe::security", user_id = %c.user_id, %until, "user locked out");
    }
    Ok(Answered { challenge: outcome.challenge, token: None })
}

/// Validates a challenge's result token, once: `None` when it is not
/// valid here (forged, expired, another tenant's) or was used before.
pub async fn redeem_token(engine: &Engine, tenant: &TenantId, token: &str) -> EngineResult<Option<Challenge>> {
    let now = engine.clock.now();
    let Some(claims) = engine.token_signer.verify(token, now) else {
        return Ok(None);
    };
    let Some(id) = ChallengeId::parse(&claims.cid) else {
        return Ok(None);
    };
    // Another tenant's token is simply not valid here.
    if claims.tid != tenant.as_str() {
        return Ok(None);
    }
    Ok(engine.store.redeem_challenge_token(tenant, &id, now).await?)
}
