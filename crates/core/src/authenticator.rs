//! Authenticators a user enrolls: TOTP apps, HOTP and YubiKey hardware
//! tokens, a set of recovery codes, passkeys. Secret material is sealed
//! with the master key (bound to the authenticator) before it is stored;
//! the `counter` column is what makes every code single-use — the last
//! TOTP step accepted, the next HOTP counter, the last YubiKey counter —
//! and it only ever moves forward, by a conditional write.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ids::{AuthenticatorId, TenantId};

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

/// The secret part of an authenticator, sealed as JSON. Wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
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
    pub params: Value,
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

    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::as_str)
    }

    pub fn param_u64(&self, key: &str) -> Option<u64> {
        self.params.get(key).and_then(Value::as_u64)
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
    use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

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
    }
}
