//! API-key secrets: `vsk_` + 40 base62 characters (about 238 bits), shown
//! once and stored only as a keyed hash. Because the secret is long and
//! random, one HMAC is as safe as a slow password hash and costs ~1 µs per
//! request.

use crate::crypto::{CryptoError, KeyedHasher, MasterKey};
use crate::field_error::FieldError;
use crate::ids::{ApiKeyId, TenantId};
use crate::role::Role;
use time::OffsetDateTime;
use zeroize::Zeroizing;

pub const SECRET_PREFIX: &str = "vsk_";
const SECRET_CHARS: usize = 40;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly made secret. Only its hash is ever stored.
pub struct NewSecret(Zeroizing<String>);

impl NewSecret {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut out = String::with_capacity(SECRET_PREFIX.len() + SECRET_CHARS);
        out.push_str(SECRET_PREFIX);
        while out.len() < SECRET_PREFIX.len() + SECRET_CHARS {
            let mut bytes = Zeroizing::new([0u8; 64]);
            getrandom::fill(&mut bytes[..]).map_err(|_| CryptoError::Rng)?;
            // SECURITY: bytes of 248 and above are dropped so each of the 62
            // characters is exactly as likely (248 = 4 × 62).
            for &b in bytes.iter().filter(|&&b| b < 248) {
                if out.len() == SECRET_PREFIX.len() + SECRET_CHARS {
                    break;
                }
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
        Ok(Self(Zeroizing::new(out)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters, shown in lists so people can tell keys apart.
    pub fn hint(&self) -> String {
        self.0[self.0.len() - 4..].to_owned()
    }
}

/// Whether `text` has the shape of a secret; anything else is refused before
/// a hash is computed or the database is asked.
pub fn looks_like_secret(text: &str) -> bool {
    text.strip_prefix(SECRET_PREFIX)
        .is_some_and(|rest| rest.len() == SECRET_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The keyed hash under which a secret is stored and looked up.
#[derive(Clone)]
pub struct SecretHasher(KeyedHasher);

impl SecretHasher {
    pub fn new(master: &MasterKey) -> Self {
        Self(master.hasher("api-key"))
    }

    pub fn hash(&self, secret: &str) -> String {
        self.0.hash(secret.as_bytes())
    }
}

/// API keys a tenant may hold, revoked ones among them until they are
/// dropped [`REVOKED_KEYS_KEPT_FOR`] after their revocation. Keys are
/// listed whole (`GET /v1/api-keys`, revoked ones too), so without a bound
/// a tenant's admin could create and revoke keys until one request held
/// millions in the server's memory.
pub const API_KEYS_PER_TENANT: u32 = 1_000;

/// How long a revoked key stays listed (and counted) before it is
/// dropped: long enough to see what was revoked lately, short enough that
/// a tenant rotating its keys never meets the bound.
pub const REVOKED_KEYS_KEPT_FOR: time::Duration = time::Duration::days(30);

/// A stored API key (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: Role,
    pub hint: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What the store is given to create a key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret_hash: String,
}

/// Makes a key for `tenant`: the record to store (holding only the hash)
/// and the secret to show once. Used by the API and by `vouchsafe keys create`.
pub fn issue(
    tenant: &TenantId,
    role: Role,
    name: &str,
    hasher: &SecretHasher,
    now: OffsetDateTime,
) -> Result<(NewApiKey, NewSecret), KeyError> {
    let name = name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(KeyError::Name(FieldError::new("name", "must be at most 100 printable characters")));
    }
    let secret = NewSecret::generate().map_err(KeyError::Crypto)?;
    let key = ApiKey {
        id: ApiKeyId::generate(),
        tenant_id: tenant.clone(),
        name: if name.is_empty() { role.as_str().to_owned() } else { name.to_owned() },
        role,
        hint: secret.hint(),
        created_at: now,
        revoked_at: None,
    };
    Ok((NewApiKey { key, secret_hash: hasher.hash(secret.expose()) }, secret))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Name(FieldError),
    #[error(transparent)]
    Crypto(CryptoError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape() {
        let s = NewSecret::generate().unwrap();
        assert!(s.expose().starts_with("vsk_"));
        assert_eq!(s.expose().len(), 44);
        assert!(looks_like_secret(s.expose()));
        assert_eq!(s.hint(), &s.expose()[40..]);
        assert_ne!(s.expose(), NewSecret::generate().unwrap().expose());
    }

    /// Secrets draw on all 62 characters, about equally: a generator that
    /// shrank the alphabet (a wrong modulus, a dropped range of bytes)
    /// would cut the key space and fail here. 400 secrets are 16,000
    /// characters, about 258 of each; every one must appear at least 150 times.
    #[test]
    fn secrets_use_the_whole_alphabet_evenly() {
        let mut counts = std::collections::HashMap::new();
        for _ in 0..400 {
            let secret = NewSecret::generate().unwrap();
            for c in secret.expose()[SECRET_PREFIX.len()..].chars() {
                *counts.entry(c).or_insert(0u32) += 1;
            }
        }
        assert_eq!(counts.len(), 62, "every base62 character appears: {counts:?}");
        assert!(counts.values().all(|n| (150..=400).contains(n)), "evenly: {counts:?}");
    }

    /// A key's name may be 100 characters, not 101.
    #[test]
    fn key_names_are_at_most_a_hundred_characters() {
        let hasher = SecretHasher::new(&crate::crypto::MasterKey::generate().unwrap());
        let (tenant, now) = (TenantId::generate(), time::OffsetDateTime::UNIX_EPOCH);
        assert!(issue(&tenant, Role::Agent, &"n".repeat(100), &hasher, now).is_ok());
        assert!(matches!(issue(&tenant, Role::Agent, &"n".repeat(101), &hasher, now), Err(KeyError::Name(_))));
    }

    #[test]
    fn malformed_secrets_are_recognised() {
        assert!(!looks_like_secret("vsk_short"));
        assert!(!looks_like_secret("xyz_0123456789012345678901234567890123456789"));
        assert!(!looks_like_secret("vsk_012345678901234567890123456789012345678!"));
        assert!(!looks_like_secret("vsk_01234567890123456789012345678901234567890"), "one too many");
        assert!(looks_like_secret("vsk_0123456789012345678901234567890123456789"));
    }

    #[test]
    fn issued_keys_store_only_the_hash() {
        let hasher = SecretHasher::new(&MasterKey::generate().unwrap());
        let tenant = TenantId::generate();
        let (new, secret) = issue(&tenant, Role::Agent, " ", &hasher, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(new.key.name, "agent", "a blank name falls back to the role");
        assert_eq!(new.secret_hash, hasher.hash(secret.expose()));
        assert_eq!(new.key.hint, secret.hint());
        assert!(!format!("{new:?}").contains(secret.expose()));
        assert!(matches!(
            issue(&tenant, Role::Admin, &"x".repeat(101), &hasher, OffsetDateTime::UNIX_EPOCH),
            Err(KeyError::Name(_))
        ));
    }

    #[test]
    fn hashes_depend_on_the_master_key() {
        let secret = NewSecret::generate().unwrap();
        let a = SecretHasher::new(&MasterKey::generate().unwrap());
        let b = SecretHasher::new(&MasterKey::generate().unwrap());
        assert_ne!(a.hash(secret.expose()), b.hash(secret.expose()));
        assert!(!a.hash(secret.expose()).contains(&secret.expose()[4..]));
    }
}
