//! Enrolling authenticators and checking a code against them. Secrets are
//! sealed before they are stored and opened only here, for one check; a
//! match names the counter value the store must move to (so the same code,
//! or an older one, is never accepted again).

use vouchsafe_core::authenticator::{
    Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorSecret, AuthenticatorStatus, AuthenticatorUse,
    check_name, recovery,
};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::ids::{AuthenticatorId, TenantId};
use vouchsafe_core::otp::{
    Algorithm, DEFAULT_LOOK_AHEAD, DEFAULT_WINDOW, Hotp, OtpKind, OtpauthUri, Secret, Totp, qr_svg,
};
use vouchsafe_core::yubikey;

use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::store::StoreError;

use super::Engine;
use super::error::{EngineError, EngineResult};
use super::slow_hash::{Permit, Saturated};
use vouchsafe_core::authenticator::recovery::StoredCode;

fn invalid(field: &str, message: &str) -> EngineError {
    EngineError::Invalid(FieldError::new(field, message))
}

/// Seals an authenticator's secret, bound to it.
pub fn seal(
    engine: &Engine,
    tenant: &TenantId,
    id: &AuthenticatorId,
    secret: &AuthenticatorSecret,
) -> EngineResult<Vec<u8>> {
    secret.seal(&engine.sealer, tenant, id).map_err(EngineError::internal)
}

/// Opens an authenticator's secret for one check.
pub fn open(engine: &Engine, a: &Authenticator) -> EngineResult<AuthenticatorSecret> {
    AuthenticatorSecret::open(&engine.sealer, a)
        .map_err(|_| EngineError::internal(format!("authenticator {} does not open with this master key", a.id)))
}

/// What enrollment produced: the authenticator and what to show once
/// (recovery codes are hashed apart, by [`hash_recovery_codes`]).
pub struct Enrolled {
    pub authenticator: Authenticator,
    pub secret_base32: Option<String>,
    pub otpauth_uri: Option<String>,
    pub qr_svg: Option<String>,
    pub codes: Option<Vec<String>>,
}

/// An authenticator to enroll, as asked for; what a kind does not use is
/// ignored.
#[derive(Debug, Default)]
pub struct NewAuthenticator<'a> {
    /// `totp`, `hotp`, `yubikey`, `recovery_codes` or `passkey`.
    pub kind: &'a str,
    /// TOTP: the issuer the app shows (the tenant's brand by default).
    pub issuer: Option<&'a str>,
    /// The account name the app shows (the user's name or id by default).
    pub label: Option<&'a str>,
    /// TOTP/HOTP: `SHA1` (default), `SHA256` or `SHA512`.
    pub algorithm: Option<&'a str>,
    pub digits: Option<u32>,
    /// TOTP: seconds per step (30).
    pub period: Option<u64>,
    /// HOTP: the token's base32 secret.
    pub secret: Option<&'a str>,
    /// HOTP: the token's next counter (0).
    pub counter: Option<u64>,
    /// YubiKey: public id (modhex), private id and AES key (hex).
    pub public_id: Option<&'a str>,
    pub private_id: Option<&'a str>,
    pub aes_key: Option<&'a str>,
}

fn algorithm(req: &NewAuthenticator<'_>) -> EngineResult<Algorithm> {
    match req.algorithm {
        None => Ok(Algorithm::Sha1),
        Some(a) => Algorithm::parse(a).ok_or_else(|| invalid("algorithm", "must be SHA1, SHA256 or SHA512")),
    }
}

fn digits(req: &NewAuthenticator<'_>) -> EngineResult<u32> {
    let d = req.digits.unwrap_or(6);
    if (6..=8).contains(&d) { Ok(d) } else { Err(invalid("digits", "must be 6, 7 or 8")) }
}

fn hex_bytes<const N: usize>(field: &str, text: Option<&str>) -> EngineResult<[u8; N]> {
    let text = text.ok_or_else(|| invalid(field, "is required"))?.trim();
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(field, &format!("must be {} hex digits", 2 * N)));
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| invalid(field, "is not hex"))?;
    }
    Ok(out)
}

/// Builds a new authenticator from an enrollment request.
pub fn enroll(
    engine: &Engine,
    tenant: &TenantId,
    user_id: &str,
    default_issuer: &str,
    default_label: &str,
    req: &NewAuthenticator<'_>,
) -> EngineResult<Enrolled> {
    let kind = AuthenticatorKind::parse(req.kind)
        .ok_or_else(|| invalid("type", "must be totp, hotp, yubikey, recovery_codes or passkey"))?;
    if let Some(label) = req.label {
        check_name("label", label).map_err(EngineError::Invalid)?;
    }
    let id = AuthenticatorId::generate();
    let now = engine.clock.now();
    let mut a = Authenticator {
        id: id.clone(),
        tenant_id: tenant.clone(),
        user_id: user_id.to_owned(),
        kind,
        status: AuthenticatorStatus::Active,
        label: req.label.map(str::to_owned),
        // Set below with the secret, from the kind's own parameters.
        params: AuthenticatorParams::Passkey,
        sealed: Vec::new(),
        counter: -1,
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    let mut out =
        Enrolled { authenticator: a.clone(), secret_base32: None, otpauth_uri: None, qr_svg: None, codes: None };
    let (params, secret) = match kind {
        AuthenticatorKind::Totp => {
            let (algorithm, digits) = (algorithm(req)?, digits(req)?);
            let period = req.period.unwrap_or(30);
            if !(15..=120).contains(&period) {
                return Err(invalid("period", "must be 15 to 120 seconds"));
            }
            let secret = Secret::generate().map_err(EngineError::internal)?;
            let issuer = req.issuer.unwrap_or(default_issuer).to_owned();
            let label = req.label.unwrap_or(default_label).to_owned();
            check_name("issuer", &issuer).and_then(|()| check_name("label", &label)).map_err(EngineError::Invalid)?;
            let uri = OtpauthUri {
                kind: OtpKind::Totp { period },
                issuer: Some(issuer.clone()),
                account: label.clone(),
                secret: secret.clone(),
                algorithm,
                digits,
            }
            .to_uri();
            out.qr_svg = Some(qr_svg(&uri).map_err(|_| EngineError::internal("cannot draw the QR code"))?);
            out.otpauth_uri = Some(uri);
            out.secret_base32 = Some(secret.to_base32());
            a.status = AuthenticatorStatus::Unconfirmed;
            a.label = Some(label);
            let params = AuthenticatorParams::Totp { issuer: Some(issuer), algorithm, digits, period };
            (params, AuthenticatorSecret::Seed { seed: secret.as_bytes().to_vec() })
        }
        AuthenticatorKind::Hotp => {
            let (algorithm, digits) = (algorithm(req)?, digits(req)?);
            let text = req.secret.ok_or_else(|| invalid("secret", "is required (base32)"))?;
            let secret = Secret::parse_base32(text).map_err(|e| invalid("secret", &e.to_string()))?;
            if secret.as_bytes().len() < 10 {
                return Err(invalid("secret", "must be at least 80 bits"));
            }
            a.counter = i64::try_from(req.counter.unwrap_or(0)).map_err(|_| invalid("counter", "is too large"))?;
            (
                AuthenticatorParams::Hotp { algorithm, digits },
                AuthenticatorSecret::Seed { seed: secret.as_bytes().to_vec() },
            )
        }
        AuthenticatorKind::Yubikey => {
            let public_id = req.public_id.unwrap_or_default().to_ascii_lowercase();
            if public_id.is_empty() || public_id.len() > 16 || yubikey::modhex_decode(&public_id).is_none() {
                return Err(invalid("public_id", "must be the token's modhex public id (up to 16 characters)"));
            }
            let private_id = hex_bytes::<6>("private_id", req.private_id)?;
            let aes_key = hex_bytes::<16>("aes_key", req.aes_key)?;
            (AuthenticatorParams::Yubikey { public_id }, AuthenticatorSecret::Yubikey { private_id, aes_key })
        }
        AuthenticatorKind::RecoveryCodes => {
            // Hashed by `hash_recovery_codes`, on the slow-hash threads.
            let codes = recovery::generate().map_err(EngineError::internal)?;
            let params = AuthenticatorParams::RecoveryCodes { count: codes.len() };
            out.codes = Some(codes);
            (params, AuthenticatorSecret::None)
        }
        AuthenticatorKind::Passkey => {
            return Err(invalid("type", "passkey enrollment is not available yet"));
        }
    };
    a.params = params;
    a.sealed = seal(engine, tenant, &id, &secret)?;
    out.authenticator = a;
    Ok(out)
}

/// The authenticator use a code proves, if it matches this authenticator.
/// Recovery codes are checked elsewhere (their hashes are slow on purpose).
pub fn match_code(engine: &Engine, a: &Authenticator, code: &str) -> EngineResult<Option<AuthenticatorUse>> {
    let now = engine.clock.now();
    let secret = open(engine, a)?;
    let used = match (&a.params, &secret) {
        (&AuthenticatorParams::Totp { algorithm, digits, period, .. }, AuthenticatorSecret::Seed { seed }) => {
            let totp = Totp::new(&Secret::from_bytes(seed.clone()), digits, period, algorithm)
                .map_err(EngineError::internal)?;
            let unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
            let last = u64::try_from(a.counter).ok();
            totp.verify(code.trim(), unix, DEFAULT_WINDOW, last).map(|step| AuthenticatorUse::Counter {
                id: a.id.clone(),
                value: i64::try_from(step).unwrap_or(i64::MAX),
            })
        }
        (&AuthenticatorParams::Hotp { algorithm, digits }, AuthenticatorSecret::Seed { seed }) => {
            let hotp =
                Hotp::new(&Secret::from_bytes(seed.clone()), digits, algorithm).map_err(EngineError::internal)?;
            let next = u64::try_from(a.counter).unwrap_or(0);
            hotp.verify(code.trim(), next, DEFAULT_LOOK_AHEAD).map(|matched| AuthenticatorUse::Counter {
                id: a.id.clone(),
                value: i64::try_from(matched + 1).unwrap_or(i64::MAX),
            })
        }
        (AuthenticatorParams::Yubikey { public_id }, AuthenticatorSecret::Yubikey { private_id, aes_key }) => {
            match yubikey::verify(code, public_id, private_id, aes_key) {
                Ok(d) if d.counter() > a.counter => {
                    Some(AuthenticatorUse::Counter { id: a.id.clone(), value: d.counter() })
                }
                Ok(_) => {
                    tracing::warn!(target: "vouchsafe::security", authenticator_id = %a.id, "a replayed YubiKey OTP");
                    None
                }
                Err(_) => None,
            }
        }
        _ => None,
    };
    Ok(used)
}

/// The TOTP step a confirmation code proves (for an unconfirmed TOTP).
pub fn confirm_step(engine: &Engine, a: &Authenticator, code: &str) -> EngineResult<Option<i64>> {
    Ok(match match_code(engine, a, code)? {
        Some(AuthenticatorUse::Counter { value, .. }) => Some(value),
        _ => None,
    })
}

thread_local! {
    /// Argon2id's working memory of this slow-hash thread, made on its
    /// first hash and reused by every later one.
    static ARGON2_MEMORY: std::cell::RefCell<Option<recovery::Memory>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's Argon2id memory (only on slow-hash threads).
fn with_argon2_memory<T>(f: impl FnOnce(&mut recovery::Memory) -> T) -> T {
    ARGON2_MEMORY.with(|cell| f(cell.borrow_mut().get_or_insert_with(recovery::Memory::new)))
}

/// A slow-hash permit now, or `Saturated` (answered `429` with
/// `Retry-After`) before anything is written.
pub fn slow_hash_permit(engine: &Engine) -> EngineResult<Permit> {
    engine.slow_hasher.try_permit().map_err(|Saturated| EngineError::Saturated)
}

/// The stored form of a new set of recovery codes (tag and Argon2id hash
/// each), hashed on the slow-hash threads under `permit`.
pub async fn hash_recovery_codes(
    engine: &Engine,
    permit: Permit,
    authenticator_id: &str,
    codes: &[String],
) -> EngineResult<Vec<StoredCode>> {
    let tags: Vec<String> =
        codes.iter().map(|c| recovery::lookup_tag(&engine.code_hasher, authenticator_id, c)).collect();
    let codes = codes.to_vec();
    let hashes = engine
        .slow_hasher
        .run(permit, move || {
            with_argon2_memory(|memory| {
                codes.iter().map(|c| recovery::hash_in(memory, c)).collect::<Result<Vec<_>, _>>()
            })
        })
        .await
        .map_err(|Saturated| EngineError::Saturated)?
        .map_err(EngineError::internal)?;
    Ok(tags.into_iter().zip(hashes).map(|(tag, hash)| StoredCode { tag, hash }).collect())
}

/// The recovery code of the sets `sets` that `code` is. SECURITY: the
/// lookup tag picks the candidates (one, nearly always; every unspent code
/// of a set made before tags), and their Argon2id hashes are checked on
/// the slow-hash threads under `permit`, never on the async workers.
pub async fn match_recovery_code(
    engine: &Engine,
    permit: Permit,
    sets: &[&Authenticator],
    code: &str,
) -> EngineResult<Option<AuthenticatorUse>> {
    let mut candidates = Vec::new();
    for a in sets {
        let tag = recovery::lookup_tag(&engine.code_hasher, a.id.as_str(), code);
        for (index, hash) in engine.store.unspent_recovery_codes(&a.id, Some(&tag)).await? {
            candidates.push((a.id.clone(), index, hash));
        }
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    let code = code.to_owned();
    engine
        .slow_hasher
        .run(permit, move || {
            with_argon2_memory(|memory| {
                candidates
                    .into_iter()
                    .find(|(_, _, hash)| recovery::matches_in(memory, hash, &code))
                    .map(|(id, index, _)| AuthenticatorUse::RecoveryCode { id, index })
            })
        })
        .await
        .map_err(|Saturated| EngineError::Saturated)
}

/// How far past its stored counter a drifted HOTP token is searched for
/// two consecutive codes (RFC 4226 §7.4).
pub const RESYNC_WINDOW: u64 = 1_000;

/// The counter after two consecutive codes of a drifted HOTP token.
pub fn resync(engine: &Engine, a: &Authenticator, first: &str, second: &str) -> EngineResult<Option<i64>> {
    let AuthenticatorParams::Hotp { algorithm, digits } = a.params else {
        return Ok(None);
    };
    let AuthenticatorSecret::Seed { seed } = &open(engine, a)? else {
        return Ok(None);
    };
    let hotp = Hotp::new(&Secret::from_bytes(seed.clone()), digits, algorithm).map_err(EngineError::internal)?;
    let from = u64::try_from(a.counter).unwrap_or(0);
    Ok(hotp
        .resync(first.trim(), second.trim(), from, RESYNC_WINDOW)
        .map(|r| i64::try_from(r.matched + 1).unwrap_or(i64::MAX)))
}

/// What confirms an unconfirmed enrollment, as given: a first code from the
/// app, or (for a passkey) the browser's new credential.
pub struct Proof<'a> {
    pub code: Option<&'a str>,
    pub credential: Option<&'a serde_json::Value>,
}

/// Confirms an enrollment: the proof must verify, and the activation is one
/// conditional write (only while still unconfirmed). An active one is
/// answered as it is.
pub async fn confirm(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    user_id: &str,
    id: &AuthenticatorId,
    proof: Proof<'_>,
) -> EngineResult<Authenticator> {
    let a = engine.store.authenticator(tenant, user_id, id).await?;
    if a.status == AuthenticatorStatus::Active {
        return Ok(a);
    }
    let (counter, sealed) = if a.kind == AuthenticatorKind::Passkey {
        let credential = proof.credential.ok_or_else(|| invalid("credential", "is required"))?;
        let sealed = super::passkeys::finish_registration(engine, &a, credential)?
            .ok_or_else(|| invalid("credential", "does not verify against this registration"))?;
        (0, Some(sealed))
    } else {
        let code = proof.code.ok_or_else(|| invalid("code", "is required"))?;
        let step = confirm_step(engine, &a, code)?
            .ok_or_else(|| invalid("code", "does not match; enter the code the app shows now"))?;
        (step, None)
    };
    let now = engine.clock.now();
    let audit = AuditEntry::success(actor, "authenticator.confirmed", a.id.as_str(), now);
    if !engine.store.activate_authenticator(tenant, &a.id, counter, sealed.as_deref(), now, &audit).await? {
        return Err(EngineError::Store(StoreError::Conflict("the authenticator changed meanwhile; try again")));
    }
    Ok(engine.store.authenticator(tenant, user_id, id).await?)
}

/// Resynchronises a drifted hardware HOTP token from two consecutive codes;
/// the counter only moves forward, in one conditional write.
pub async fn resync_token(
    engine: &Engine,
    tenant: &TenantId,
    actor: &str,
    user_id: &str,
    id: &AuthenticatorId,
    code: &str,
    next_code: &str,
) -> EngineResult<Authenticator> {
    let a = engine.store.authenticator(tenant, user_id, id).await?;
    if a.kind != AuthenticatorKind::Hotp || a.status != AuthenticatorStatus::Active {
        return Err(invalid("id", "only an active HOTP token can be resynchronised"));
    }
    let counter = resync(engine, &a, code, next_code)?
        .ok_or_else(|| invalid("code", "these are not two consecutive codes of this token"))?;
    let now = engine.clock.now();
    let audit = AuditEntry::success(actor, "authenticator.resynchronised", a.id.as_str(), now);
    if !engine.store.advance_authenticator(tenant, &a.id, counter, now, &audit).await? {
        return Err(invalid("code", "these codes were already used"));
    }
    Ok(engine.store.authenticator(tenant, user_id, id).await?)
}
