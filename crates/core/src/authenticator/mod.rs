//! Authenticators a user enrolls: TOTP apps, HOTP and YubiKey hardware
//! tokens, a set of recovery codes, passkeys. Secret material is sealed
//! with the master key (bound to the authenticator) before it is stored;
//! the `counter` column is what makes every code single-use — the last
//! TOTP step accepted, the next HOTP counter, the last YubiKey counter —
//! and it only ever moves forward, by a conditional write.

use serde::Serialize;
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{CryptoError, Sealer};
use crate::field_error::FieldError;
use crate::ids::{AuthenticatorId, TenantId};

mod params;
mod sealed_form;
pub use params::AuthenticatorParams;

/// The longest issuer or label, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 100;

/// Authenticators a user may have, of every kind, unconfirmed ones among
/// them. Every answer to a challenge reads all of its user's, and each
/// enrollment adds one (its secret shown to whoever enrolled it, who can
/// then confirm it), so without a bound an agent key could make every
/// answer of a user read, unseal and try as many as it liked, on threads
/// every tenant uses.
pub const AUTHENTICATORS_PER_USER: u32 = 20;

/// An authenticator's issuer or label, wherever it comes from (enrollment,
/// passkey registration, an imported token): 1 to 100 bytes, no `:` (it
/// separates issuer and account in an otpauth URI) and no control
/// characters. Bytes, not characters: the QR code holds the
/// percent-encoded URI, where a four-byte character takes twelve (100 of
/// them overflowed it and answered 500).
pub fn check_name(field: &str, text: &str) -> Result<(), FieldError> {
    if text.is_empty() || text.len() > MAX_NAME_BYTES || text.contains(':') || text.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must be 1 to 100 bytes (UTF-8) without ':' or control characters"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthenticatorKind {
    Totp,
    Hotp,
    Yubikey,
    RecoveryCodes,
    Passkey,
}

impl AuthenticatorKind {
    pub const ALL: [Self; 5] = [Self::Totp, Self::Hotp, Self::Yubikey, Self::RecoveryCodes, Self::Passkey];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Hotp => "hotp",
            Self::Yubikey => "yubikey",
            Self::RecoveryCodes => "recovery_codes",
            Self::Passkey => "passkey",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticatorStatus {
    /// Enrolled but not yet proven (a TOTP app before its first code).
    Unconfirmed,
    Active,
}

impl AuthenticatorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unconfirmed => "unconfirmed",
            Self::Active => "active",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unconfirmed" => Some(Self::Unconfirmed),
            "active" => Some(Self::Active),
            _ => None,
        }
    }
}

/// The secret part of an authenticator, sealed as JSON (read back by
/// `sealed_form`). Wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Zeroize, ZeroizeOnDrop)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthenticatorSecret {
    /// TOTP and HOTP: the shared seed.
    Seed { seed: Vec<u8> },
    /// YubiKey (Yubico OTP mode): private id and AES-128 key.
    Yubikey { private_id: [u8; 6], aes_key: [u8; 16] },
    /// A passkey's registration ceremony in progress (webauthn-rs state, JSON).
    PasskeyRegistration { state: String },
    /// A registered passkey (webauthn-rs `Passkey`, JSON): public key,
    /// credential id, signature counter.
    Passkey { passkey: String },
    /// Nothing secret kept here (recovery codes are hashed elsewhere).
    None,
}

impl AuthenticatorSecret {
    /// Seals the secret for authenticator `id` of `tenant`, bound to it:
    /// moved to another row, it no longer opens. The one way an
    /// authenticator's secret is sealed (enrollment, import, passkeys).
    pub fn seal(&self, sealer: &Sealer, tenant: &TenantId, id: &AuthenticatorId) -> Result<Vec<u8>, CryptoError> {
        // A plain enum of bytes and strings always serializes.
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(self).map_err(|_| CryptoError::Open)?);
        sealer.seal(&plain, &Authenticator::seal_context(tenant, id))
    }

    /// Opens the sealed secret of `a`.
    pub fn open(sealer: &Sealer, a: &Authenticator) -> Result<Self, CryptoError> {
        let plain = sealer.open(&a.sealed, &Authenticator::seal_context(&a.tenant_id, &a.id))?;
        sealed_form::read(&plain).ok_or(CryptoError::Open)
    }
}

impl std::fmt::Debug for AuthenticatorSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthenticatorSecret(..)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Authenticator {
    pub id: AuthenticatorId,
    pub tenant_id: TenantId,
    pub user_id: String,
    pub kind: AuthenticatorKind,
    pub status: AuthenticatorStatus,
    pub label: Option<String>,
    /// Non-secret parameters: algorithm, digits, period, issuer; the
    /// YubiKey's public id; the count of recovery codes.
    pub params: AuthenticatorParams,
    /// [`AuthenticatorSecret`], sealed.
    pub sealed: Vec<u8>,
    /// See the module doc; `-1` before the first use.
    pub counter: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

impl Authenticator {
    /// The context its sealed secret is bound to.
    pub fn seal_context(tenant: &TenantId, id: &AuthenticatorId) -> String {
        format!("authenticator:{tenant}:{id}")
    }
}

/// How a successful answer used its authenticator, applied in the same
/// transaction as the approval so a code is never accepted twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticatorUse {
    /// Move `counter` to `value`, only if it is below it.
    Counter { id: AuthenticatorId, value: i64 },
    /// Spend recovery code number `index`, only if unspent.
    RecoveryCode { id: AuthenticatorId, index: i64 },
}

/// Recovery codes: 10 per set, `xxxx-xxxx` from an unambiguous alphabet
/// (40 bits each), shown once and stored only as Argon2id hashes.
pub mod recovery {
    use argon2::password_hash::phc::{Output, ParamsString, Salt};
    use argon2::{
        ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    };

    pub const COUNT: usize = 10;
    const ALPHABET: &[u8; 32] = b"23456789abcdefghjkmnpqrstuvwxyz0";

    /// A new set of codes (in the clear, to show once).
    pub fn generate() -> Result<Vec<String>, crate::crypto::CryptoError> {
        (0..COUNT)
            .map(|_| {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).map_err(|_| crate::crypto::CryptoError::Rng)?;
                let chars: String = bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect();
                Ok(format!("{}-{}", &chars[..4], &chars[4..]))
            })
            .collect()
    }

    /// The form codes are hashed and compared in: lower case, no dash or spaces.
    pub fn normalise(code: &str) -> String {
        code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
    }

    /// Argon2id PHC string of a code.
    pub fn hash(code: &str) -> Result<String, crate::crypto::CryptoError> {
        let hashed: Result<PasswordHash, _> = Argon2::default().hash_password(normalise(code).as_bytes());
        hashed.map(|h| h.to_string()).map_err(|_| crate::crypto::CryptoError::Rng)
    }

    /// Whether `code` is the one `stored` hashes (constant-time inside argon2).
    pub fn matches(stored: &str, code: &str) -> bool {
        Argon2::default().verify_password(normalise(code).as_bytes(), stored).is_ok()
    }

    /// Argon2id's working memory (19 MiB with the default parameters), kept
    /// by a thread and reused by every hash it runs. SECURITY: allocating
    /// it per hash left about 19 MiB behind in the allocator each time
    /// (10 hashes raised a process's peak from 4 to 180 MiB); memory kept
    /// and reused stays flat however many hashes run.
    pub struct Memory(Vec<Block>);

    impl Memory {
        pub fn new() -> Self {
            Self(vec![Block::new(); Params::DEFAULT.block_count()])
        }
    }

    impl Default for Memory {
        fn default() -> Self {
            Self::new()
        }
    }

    fn argon2id(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// [`hash`] in `memory`: the same PHC string, no allocation of its own.
    pub fn hash_in(memory: &mut Memory, code: &str) -> Result<String, crate::crypto::CryptoError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| crate::crypto::CryptoError::Rng)?;
        let params = Params::DEFAULT;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let blocks = memory.0.get_mut(..params.block_count()).ok_or(crate::crypto::CryptoError::Rng)?;
        argon2id(params.clone())
            .hash_password_into_with_memory(normalise(code).as_bytes(), &salt, &mut out, blocks)
            .map_err(|_| crate::crypto::CryptoError::Rng)?;
        let phc = PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|_| crate::crypto::CryptoError::Rng)?,
            salt: Some(Salt::new(&salt).map_err(|_| crate::crypto::CryptoError::Rng)?),
            hash: Some(Output::new(&out).map_err(|_| crate::crypto::CryptoError::Rng)?),
        };
        Ok(phc.to_string())
    }

    /// [`matches`] in `memory`. A stored hash whose parameters need more
    /// memory than `memory` holds is checked the allocating way.
    pub fn matches_in(memory: &mut Memory, stored: &str, code: &str) -> bool {
        let Ok(phc) = PasswordHash::new(stored) else { return false };
        let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return false };
        if phc.algorithm != ARGON2ID_IDENT || phc.version.is_some_and(|v| v != u32::from(Version::V0x13)) {
            return matches(stored, code);
        }
        let Ok(params) = Params::try_from(&phc) else { return false };
        let Some(blocks) = memory.0.get_mut(..params.block_count()) else {
            return matches(stored, code);
        };
        let mut out = vec![0u8; expected.len()];
        let hashed = argon2id(params).hash_password_into_with_memory(
            normalise(code).as_bytes(),
            salt.as_ref(),
            &mut out,
            blocks,
        );
        // SECURITY: constant-time comparison of the two outputs.
        hashed.is_ok() && bool::from(subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()))
    }

    /// SECURITY: a short keyed tag of a code of set `authenticator_id`,
    /// stored beside its Argon2id hash so an answer picks its one candidate
    /// before any slow hash runs. Four hex digits (16 bits): enough to
    /// tell ten codes apart, far too little to find a code from (the
    /// Argon2id hash still guards it), and keyed, so it means nothing
    /// without the master key.
    pub fn lookup_tag(hasher: &crate::verification::CodeHasher, authenticator_id: &str, code: &str) -> String {
        let mut tag = hasher.hash(authenticator_id, &format!("recovery:{}", normalise(code)));
        tag.truncate(4);
        tag
    }

    /// One stored code: its lookup tag and its Argon2id hash.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct StoredCode {
        pub tag: String,
        pub hash: String,
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn codes_are_distinct_hashed_and_matched_loosely_by_form() {
            let codes = generate().unwrap();
            assert_eq!(codes.len(), COUNT);
            let unique: std::collections::HashSet<_> = codes.iter().collect();
            assert_eq!(unique.len(), COUNT);
            let stored = hash(&codes[0]).unwrap();
            assert!(stored.starts_with("$argon2id$"));
            assert!(!stored.contains(&normalise(&codes[0])));
            assert!(matches(&stored, &codes[0].to_uppercase()));
            assert!(matches(&stored, &normalise(&codes[0])));
            assert!(!matches(&stored, &codes[1]));
        }

        #[test]
        fn hashes_made_in_kept_memory_are_the_same_phc_strings() {
            let mut memory = Memory::new();
            let codes = generate().unwrap();
            let kept = hash_in(&mut memory, &codes[0]).unwrap();
            assert!(kept.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{kept}");
            assert!(matches(&kept, &codes[0]), "argon2's own verifier reads it");
            assert!(matches_in(&mut memory, &kept, &codes[0].to_uppercase()));
            assert!(!matches_in(&mut memory, &kept, &codes[1]));
            let allocated = hash(&codes[1]).unwrap();
            assert!(matches_in(&mut memory, &allocated, &codes[1]), "hashes stored before read the same");
            assert!(!matches_in(&mut memory, "not a hash", &codes[1]));
        }
    }
}

/// Authenticators brought in from elsewhere: one line per token,
/// `USER_ID,otpauth://…` — the URI every authenticator app, token vendor
/// and OTP server (privacyIDEA, LinOTP, Keycloak) can export. Imported
/// tokens are active at once: their owners already use them.
pub mod import {
    use time::OffsetDateTime;

    use super::{
        Authenticator, AuthenticatorKind, AuthenticatorParams, AuthenticatorSecret, AuthenticatorStatus, check_name,
    };
    use crate::crypto::Sealer;
    use crate::ids::{AuthenticatorId, TenantId};
    use crate::otp::{OtpKind, OtpauthUri};
    use crate::user::validate_user_id;

    /// A line that is not a token, with why (never the secret).
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("line {line}: {why}")]
    pub struct BadLine {
        pub line: usize,
        pub why: String,
    }

    /// Parses line `line` (1-based) into the user id and the token.
    pub fn parse_line(line: usize, text: &str) -> Result<(String, OtpauthUri), BadLine> {
        let bad = |why: &str| BadLine { line, why: why.to_owned() };
        let (user, uri) = text.split_once(',').ok_or_else(|| bad("expected USER_ID,otpauth://…"))?;
        let user = user.trim();
        // The API's own limits, so an import stores nothing the API would refuse.
        validate_user_id(user).map_err(|e| bad(&format!("the user id {}", e.message)))?;
        let uri = OtpauthUri::parse(uri.trim()).map_err(|e| bad(&format!("not an otpauth URI: {e}")))?;
        if !uri.account.is_empty() {
            check_name("label", &uri.account).map_err(|e| bad(&format!("the account label {}", e.message)))?;
        }
        if let Some(issuer) = &uri.issuer {
            check_name("issuer", issuer).map_err(|e| bad(&format!("the issuer {}", e.message)))?;
        }
        if uri.secret.as_bytes().len() < 10 {
            return Err(bad("the secret must be at least 80 bits"));
        }
        if let OtpKind::Totp { period } = uri.kind
            && !(15..=120).contains(&period)
        {
            return Err(bad("the period must be 15 to 120 seconds"));
        }
        Ok((user.to_owned(), uri))
    }

    /// The active authenticator for an imported token, its seed sealed.
    pub fn authenticator(
        tenant: &TenantId,
        user_id: &str,
        uri: &OtpauthUri,
        sealer: &Sealer,
        now: OffsetDateTime,
    ) -> Result<Authenticator, String> {
        let id = AuthenticatorId::generate();
        let (kind, params, counter) = match uri.kind {
            OtpKind::Totp { period } => (
                AuthenticatorKind::Totp,
                AuthenticatorParams::Totp {
                    issuer: uri.issuer.clone(),
                    algorithm: uri.algorithm,
                    digits: uri.digits,
                    period,
                },
                -1,
            ),
            OtpKind::Hotp { counter } => (
                AuthenticatorKind::Hotp,
                AuthenticatorParams::Hotp { algorithm: uri.algorithm, digits: uri.digits },
                i64::try_from(counter).map_err(|_| "the counter is too large".to_owned())?,
            ),
        };
        let secret = AuthenticatorSecret::Seed { seed: uri.secret.as_bytes().to_vec() };
        let sealed = secret.seal(sealer, tenant, &id).map_err(|e| e.to_string())?;
        Ok(Authenticator {
            id,
            tenant_id: tenant.clone(),
            user_id: user_id.to_owned(),
            kind,
            status: AuthenticatorStatus::Active,
            label: (!uri.account.is_empty()).then(|| uri.account.clone()),
            params,
            sealed,
            counter,
            created_at: now,
            updated_at: now,
            last_used_at: None,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn lines_are_user_and_uri_and_bad_ones_say_where_without_the_secret() {
            let (user, uri) =
                parse_line(1, "005xx01,otpauth://totp/Acme:ada?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme")
                    .unwrap();
            assert_eq!(user, "005xx01");
            assert_eq!(uri.kind, OtpKind::Totp { period: 30 });
            let (_, hotp) =
                parse_line(2, " u2 , otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=7").unwrap();
            assert_eq!(hotp.kind, OtpKind::Hotp { counter: 7 });
            let short = parse_line(3, "u3,otpauth://totp/x?secret=GEZDGNBV").unwrap_err();
            assert_eq!(short.line, 3);
            assert!(!short.to_string().contains("GEZDGNBV"), "{short}");
            assert!(parse_line(4, "no comma here").is_err());
            assert!(parse_line(5, ",otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").is_err());
        }

        /// Issue 16, item 19: an import stores nothing the API would refuse.
        #[test]
        fn lines_keep_the_apis_limits() {
            let secret = "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
            let long_label = "a".repeat(101);
            let emoji_issuer = "🔐".repeat(26);
            let long_user = "u".repeat(201);
            for line in [
                format!("u,otpauth://totp/Acme:{long_label}?{secret}"),
                format!("u,otpauth://totp/x?{secret}&issuer={emoji_issuer}"),
                format!("{long_user},otpauth://totp/x?{secret}"),
                format!("u\u{7},otpauth://totp/x?{secret}"),
            ] {
                let refused = parse_line(9, &line).unwrap_err();
                assert_eq!(refused.line, 9, "{line}");
            }
            assert!(parse_line(9, &format!("u,otpauth://totp/Acme:{}?{secret}", "a".repeat(100))).is_ok());
        }
    }
}

#[cfg(test)]
mod tests;
