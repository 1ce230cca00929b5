//! Second-factor challenges in a login flow: which factor a user is asked
//! for (the policy of API.md), the challenge's states, and the signed,
//! short-lived, single-use result token an integrator validates after.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::authenticator::AuthenticatorKind;
use crate::crypto::MasterKey;
use crate::destination::LineType;
use crate::ids::{ChallengeId, TenantId, VerificationId};
use crate::user::User;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Factor {
    Passkey,
    Totp,
    Hotp,
    Yubikey,
    RecoveryCode,
    Sms,
    Voice,
    Email,
}

impl Factor {
    pub const ALL: [Self; 8] =
        [Self::Passkey, Self::Totp, Self::Hotp, Self::Yubikey, Self::RecoveryCode, Self::Sms, Self::Voice, Self::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Totp => "totp",
            Self::Hotp => "hotp",
            Self::Yubikey => "yubikey",
            Self::RecoveryCode => "recovery_code",
            Self::Sms => "sms",
            Self::Voice => "voice",
            Self::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// The authenticator kind a factor is answered with, if any (code
    /// factors are answered with a code sent by the verification engine).
    pub fn authenticator_kind(self) -> Option<AuthenticatorKind> {
        match self {
            Self::Passkey => Some(AuthenticatorKind::Passkey),
            Self::Totp => Some(AuthenticatorKind::Totp),
            Self::Hotp => Some(AuthenticatorKind::Hotp),
            Self::Yubikey => Some(AuthenticatorKind::Yubikey),
            Self::RecoveryCode => Some(AuthenticatorKind::RecoveryCodes),
            Self::Sms | Self::Voice | Self::Email => None,
        }
    }
}

/// Why no factor could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// A privileged user without a passkey, or asked for something else.
    PhishingResistantRequired,
    /// The factor asked for is not available to this user.
    Unavailable(Factor),
    /// The user has no factor at all.
    NoFactor,
}

/// The factors available to a user: active authenticators, then phone
/// and email.
pub fn available(user: &User, active: &[AuthenticatorKind]) -> Vec<Factor> {
    let mut out: Vec<Factor> = [Factor::Passkey, Factor::Totp, Factor::Hotp, Factor::Yubikey, Factor::RecoveryCode]
        .into_iter()
        .filter(|f| f.authenticator_kind().is_some_and(|k| active.contains(&k)))
        .collect();
    if let Some(phone) = user.phone_number() {
        if phone.line_type() != LineType::FixedLine {
            out.push(Factor::Sms);
        }
        out.push(Factor::Voice);
    }
    if user.email.is_some() {
        out.push(Factor::Email);
    }
    out
}

/// API.md's policy: privileged users only `passkey`; otherwise passkey >
/// totp > hotp/yubikey > sms (mobile) > voice (fixed line) > email. Recovery
/// codes are only used when asked for. An explicit factor overrides the
/// order if the user has it.
pub fn choose(user: &User, active: &[AuthenticatorKind], requested: Option<Factor>) -> Result<Factor, PolicyError> {
    let available = available(user, active);
    if user.privileged {
        return match requested {
            None | Some(Factor::Passkey) if available.contains(&Factor::Passkey) => Ok(Factor::Passkey),
            _ => Err(PolicyError::PhishingResistantRequired),
        };
    }
    if let Some(factor) = requested {
        return if available.contains(&factor) { Ok(factor) } else { Err(PolicyError::Unavailable(factor)) };
    }
    let landline = user.phone_number().is_some_and(|p| p.line_type() == LineType::FixedLine);
    let order: &[Factor] = if landline {
        &[Factor::Passkey, Factor::Totp, Factor::Hotp, Factor::Yubikey, Factor::Voice, Factor::Email]
    } else {
        &[Factor::Passkey, Factor::Totp, Factor::Hotp, Factor::Yubikey, Factor::Sms, Factor::Voice, Factor::Email]
    };
    order.iter().copied().find(|f| available.contains(f)).ok_or(PolicyError::NoFactor)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ChallengeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Expired].into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: ChallengeId,
    pub tenant_id: TenantId,
    pub user_id: String,
    pub factor: Factor,
    pub action: String,
    pub redirect_url: Option<String>,
    pub status: ChallengeStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    /// The verification carrying the code of an sms/voice/email factor.
    pub verification_id: Option<VerificationId>,
    /// A passkey challenge's WebAuthn request options (what the browser
    /// gets) and ceremony state (what the server checks against), JSON.
    pub passkey_options: Option<String>,
    pub passkey_state: Option<String>,
    pub expires_at: OffsetDateTime,
    pub verified_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Challenge {
    pub fn status_at(&self, now: OffsetDateTime) -> ChallengeStatus {
        if self.status == ChallengeStatus::Pending && now >= self.expires_at {
            ChallengeStatus::Expired
        } else {
            self.status
        }
    }

    pub fn attempts_remaining(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts)
    }
}

/// SECURITY: where the hosted page sends the browser after success, as
/// the server writes it back (into a `Location` and the page's CSP
/// `form-action`). An http(s) URL without credentials whose host is only
/// `[a-z0-9.-]` (and a port): a `;` or a quote in a host (which WHATWG
/// parsing allows) would otherwise reach the CSP header.
pub fn parse_redirect_url(text: &str) -> Result<String, crate::field_error::FieldError> {
    let bad =
        || crate::field_error::FieldError::new("redirect_url", "must be an http(s) URL of at most 2000 characters");
    if text.len() > 2_000 || text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return Err(bad());
    }
    let url = url::Url::parse(text).map_err(|_| bad())?;
    let host = url.host_str().unwrap_or_default();
    let plain_host = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'));
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || !plain_host
    {
        return Err(crate::field_error::FieldError::new(
            "redirect_url",
            "must be an http(s) URL whose host is letters, digits, '.' and '-' (no user name or password)",
        ));
    }
    Ok(url.into())
}

/// How long a result token may be validated after approval.
pub const TOKEN_TTL_S: i64 = 300;

/// What a result token says. Signed; single use is enforced by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Challenge id.
    pub cid: String,
    /// Tenant id.
    pub tid: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Signs and checks result tokens: `vct_` + payload + `.` + HMAC-SHA256.
#[derive(Clone)]
pub struct TokenSigner(zeroize::Zeroizing<[u8; 32]>);

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    pub fn new(master: &MasterKey) -> Self {
        Self(master.derive("vouchsafe challenge result token v1"))
    }

    fn mac(&self, payload: &str) -> Vec<u8> {
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(&self.0[..]) else {
            return Vec::new();
        };
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn sign(&self, challenge: &Challenge, now: OffsetDateTime) -> String {
        let claims = TokenClaims {
            cid: challenge.id.to_string(),
            tid: challenge.tenant_id.to_string(),
            exp: now.unix_timestamp() + TOKEN_TTL_S,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        format!("vct_{payload}.{}", URL_SAFE_NO_PAD.encode(self.mac(&payload)))
    }

    /// The claims of a token with a good signature that has not expired.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Option<TokenClaims> {
        let (payload, signature) = token.strip_prefix("vct_")?.split_once('.')?;
        let given = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // SECURITY: constant-time comparison of the signature.
        if !bool::from(self.mac(payload).ct_eq(&given)) {
            return None;
        }
        let claims: TokenClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > now.unix_timestamp()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(phone: Option<&str>, email: Option<&str>, privileged: bool) -> User {
        User {
            tenant_id: TenantId::generate(),
            id: "u1".into(),
            phone: phone.map(str::to_owned),
            email: email.map(str::to_owned),
            display_name: None,
            privileged,
            failures: 0,
            locked_until: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn pending(expires_at: OffsetDateTime, attempts: u32, max_attempts: u32) -> Challenge {
        Challenge {
            id: ChallengeId::generate(),
            tenant_id: TenantId::generate(),
            user_id: "u1".into(),
            factor: Factor::Totp,
            action: "login".into(),
            redirect_url: None,
            status: ChallengeStatus::Pending,
            attempts,
            max_attempts,
            verification_id: None,
            passkey_options: None,
            passkey_state: None,
            expires_at,
            verified_at: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// A pending challenge is expired from its expiry instant on (not a
    /// moment before); a settled one keeps its state whatever the time.
    #[test]
    fn a_challenge_expires_at_its_instant_and_settled_ones_stay_settled() {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(600);
        let mut c = pending(t, 0, 5);
        assert_eq!(c.status_at(t - time::Duration::milliseconds(1)), ChallengeStatus::Pending);
        assert_eq!(c.status_at(t), ChallengeStatus::Expired);
        for settled in [ChallengeStatus::Approved, ChallengeStatus::Denied] {
            c.status = settled;
            assert_eq!(c.status_at(t + time::Duration::hours(1)), settled);
        }
    }

    #[test]
    fn attempts_remaining_count_down_and_stop_at_zero() {
        let t = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(pending(t, 0, 5).attempts_remaining(), 5);
        assert_eq!(pending(t, 2, 5).attempts_remaining(), 3);
        assert_eq!(pending(t, 5, 5).attempts_remaining(), 0);
        assert_eq!(pending(t, 7, 5).attempts_remaining(), 0, "never below zero");
    }

    /// What is stored reads back as itself, and nothing else reads.
    #[test]
    fn factors_and_statuses_round_trip_through_their_names() {
        for f in Factor::ALL {
            assert_eq!(Factor::parse(f.as_str()), Some(f));
        }
        let names: std::collections::HashSet<_> = Factor::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(names.len(), Factor::ALL.len(), "names are distinct");
        for s in
            [ChallengeStatus::Pending, ChallengeStatus::Approved, ChallengeStatus::Denied, ChallengeStatus::Expired]
        {
            assert_eq!(ChallengeStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(Factor::parse("TOTP"), None);
        assert_eq!(ChallengeStatus::parse(""), None);
    }

    #[test]
    fn redirect_urls_have_plain_hosts() {
        assert_eq!(
            parse_redirect_url("https://App.Example.com:8443/done?x=1").unwrap(),
            "https://app.example.com:8443/done?x=1"
        );
        for bad in [
            "https://a;b.example.com/",
            "https://a'b.example.com/",
            "https://user:pw@example.com/",
            "javascript:alert(1)",
            "https://[::1]/",
            "https://exa mple.com/",
            "https://example.com\\@evil.com/",
            "ftp://example.com/",
            "https://user@example.com/",
            "https://:pw@example.com/",
            "https://example.com/a b",
            "https://example.com/\u{1}",
        ] {
            assert!(parse_redirect_url(bad).is_err(), "{bad}");
        }
        let at_most = format!("https://example.com/{}", "a".repeat(2_000 - 20));
        assert_eq!(at_most.len(), 2_000);
        assert!(parse_redirect_url(&at_most).is_ok(), "2000 characters");
        assert!(parse_redirect_url(&format!("{at_most}a")).is_err(), "2001 characters");
    }

    #[test]
    fn the_token_signer_hides_its_key() {
        let signer = TokenSigner::new(&crate::crypto::MasterKey::generate().unwrap());
        assert_eq!(format!("{signer:?}"), "TokenSigner(..)");
    }

    #[test]
    fn the_policy_prefers_the_strongest_factor() {
        use AuthenticatorKind as K;
        let mobile = user(Some("+447400123456"), Some("a@b.co"), false);
        assert_eq!(choose(&mobile, &[K::Passkey, K::Totp], None), Ok(Factor::Passkey));
        assert_eq!(choose(&mobile, &[K::Hotp, K::Totp], None), Ok(Factor::Totp));
        assert_eq!(choose(&mobile, &[K::Yubikey], None), Ok(Factor::Yubikey));
        assert_eq!(choose(&mobile, &[K::RecoveryCodes], None), Ok(Factor::Sms), "recovery codes only on request");
        let landline = user(Some("+442079460018"), Some("a@b.co"), false);
        assert_eq!(choose(&landline, &[], None), Ok(Factor::Voice));
        assert_eq!(choose(&landline, &[], Some(Factor::Sms)), Err(PolicyError::Unavailable(Factor::Sms)));
        assert_eq!(choose(&user(None, Some("a@b.co"), false), &[], None), Ok(Factor::Email));
        assert_eq!(choose(&user(None, None, false), &[], None), Err(PolicyError::NoFactor));
        assert_eq!(choose(&mobile, &[K::Totp], Some(Factor::Email)), Ok(Factor::Email), "an explicit factor overrides");
    }

    #[test]
    fn privileged_users_need_a_passkey() {
        use AuthenticatorKind as K;
        let admin = user(Some("+447400123456"), None, true);
        assert_eq!(choose(&admin, &[K::Totp], None), Err(PolicyError::PhishingResistantRequired));
        assert_eq!(
            choose(&admin, &[K::Passkey, K::Totp], Some(Factor::Totp)),
            Err(PolicyError::PhishingResistantRequired)
        );
        assert_eq!(choose(&admin, &[K::Passkey], None), Ok(Factor::Passkey));
    }

    #[test]
    fn tokens_are_signed_and_expire() {
        let signer = TokenSigner::new(&MasterKey::generate().unwrap());
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let c = Challenge {
            id: ChallengeId::generate(),
            tenant_id: TenantId::generate(),
            user_id: "u".into(),
            factor: Factor::Totp,
            action: "login".into(),
            redirect_url: None,
            status: ChallengeStatus::Approved,
            attempts: 0,
            max_attempts: 5,
            verification_id: None,
            passkey_options: None,
            passkey_state: None,
            expires_at: now,
            verified_at: Some(now),
            created_at: now,
            updated_at: now,
        };
        let token = signer.sign(&c, now);
        let claims = signer.verify(&token, now).unwrap();
        assert_eq!(claims.cid, c.id.as_str());
        assert!(signer.verify(&token, now + time::Duration::seconds(TOKEN_TTL_S)).is_none(), "expired");
        let other = TokenSigner::new(&MasterKey::generate().unwrap());
        assert!(other.verify(&token, now).is_none(), "another key");
        let (head, sig) = token.split_once('.').unwrap();
        let forged = format!("{head}x.{sig}");
        assert!(signer.verify(&forged, now).is_none(), "a changed payload");
    }
}
