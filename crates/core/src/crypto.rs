//! Cryptography for data at rest. One 32-byte master key (from
//! `VOUCHSAFE_MASTER_KEY` or the key file) is never used directly: purpose
//! keys are derived from it with HMAC-SHA256, so a key that hashes API keys
//! can never decrypt a seed. Seeds and credentials are sealed with
//! XChaCha20-Poly1305 (random 192-bit nonces, safe to draw at random), bound
//! by associated data to the row they belong to.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Format byte of sealed values, so the scheme can change later.
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 32 bytes of base64 (e.g. `openssl rand -base64 32`)")]
    BadMasterKey,
    #[error("sealed value is corrupt or was sealed with another master key")]
    Open,
    #[error("the operating system's random number generator failed")]
    Rng,
}

/// The server's master key. Wiped on drop; `Debug` hides it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| CryptoError::Rng)?;
        Ok(Self(bytes))
    }

    /// Reads the base64 text of the environment variable or key file.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadMasterKey)?);
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Self(array))
    }

    /// Base64 text for the key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// A key for one purpose: HMAC-SHA256(master, purpose).
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hmac_sha256(&self.0, purpose.as_bytes()))
    }

    /// A short public fingerprint of the key, stored in the database so a
    /// server started with the wrong key refuses to run instead of writing
    /// data nobody can decrypt.
    pub fn check_value(&self) -> String {
        let derived = self.derive("vouchsafe key-check v1");
        hex(&derived[..16])
    }

    /// The keyed hash used for API-key secrets and OTP codes.
    pub fn hasher(&self, purpose: &str) -> KeyedHasher {
        KeyedHasher(self.derive(&format!("vouchsafe hash v1 {purpose}")))
    }

    /// The cipher that seals secrets at rest.
    pub fn sealer(&self) -> Sealer {
        Sealer(self.derive("vouchsafe seal v1"))
    }
}

/// HMAC-SHA256 under a derived key, hex-encoded: how high-entropy secrets
/// (API keys) and short codes (with a per-row context) are stored.
#[derive(Clone)]
pub struct KeyedHasher(Zeroizing<[u8; 32]>);

impl KeyedHasher {
    pub fn hash(&self, data: &[u8]) -> String {
        hex(&hmac_sha256(&self.0[..], data))
    }
}

/// Seals and opens secrets with XChaCha20-Poly1305.
#[derive(Clone)]
pub struct Sealer(Zeroizing<[u8; 32]>);

impl Sealer {
    fn cipher(&self) -> Result<XChaCha20Poly1305, CryptoError> {
        XChaCha20Poly1305::new_from_slice(&self.0[..]).map_err(|_| CryptoError::BadMasterKey)
    }

    /// `version || nonce || ciphertext+tag`. `context` (say
    /// `"credential:ten_…:name"`) is authenticated, so a sealed value moved
    /// to another row no longer opens.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Rng)?;
        let sealed = self
            .cipher()?
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Open)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (version, rest) = sealed.split_first().ok_or(CryptoError::Open)?;
        if *version != SEAL_VERSION || rest.len() < NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Open)?;
        self.cipher()?
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; the error branch cannot happen.
    let Ok(mut mac) = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key) else {
        return [0u8; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex of `bytes`. Every API request's key lookup and every
/// code hash is one: formatting each byte through `write!` took 1.7% of
/// the server's workers in the TOTP answer's profile (`bench/RESULTS.md`),
/// and `hex::encode`, which collects a `String` one `char` at a time, still
/// 0.9% of the wrong TOTP answer's instructions; its slice encoder writes
/// bytes from a table.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    // Cannot fail: `out` is exactly twice as long as `bytes`, and hex
    // digits are ASCII.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored hashes are lowercase hex, two digits a byte, zeros kept:
    /// the keys and codes already stored must keep matching.
    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = MasterKey::generate().unwrap();
        let sealer = key.sealer();
        let sealed = sealer.seal(b"seed bytes", "authenticator:1").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"seed bytes"));
        assert_eq!(&sealer.open(&sealed, "authenticator:1").unwrap()[..], b"seed bytes");
        assert_eq!(sealer.open(&sealed, "authenticator:2"), Err(CryptoError::Open));
        let other = MasterKey::generate().unwrap().sealer();
        assert_eq!(other.open(&sealed, "authenticator:1"), Err(CryptoError::Open));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(sealer.open(&tampered, "authenticator:1"), Err(CryptoError::Open));
    }

    /// A value of another format version, or too short to hold a nonce,
    /// is refused before decryption (and never panics): the version byte
    /// is not covered by the tag, so only this check stops a relabelled one.
    #[test]
    fn other_versions_and_short_values_do_not_open() {
        let sealer = MasterKey::generate().unwrap().sealer();
        let sealed = sealer.seal(b"seed", "c").unwrap();
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 4 + 16, "version, nonce, text, tag");
        let mut relabelled = sealed.clone();
        relabelled[0] = SEAL_VERSION + 1;
        assert_eq!(sealer.open(&relabelled, "c"), Err(CryptoError::Open));
        for len in [0, 1, NONCE_LEN, NONCE_LEN + 1, NONCE_LEN + 16] {
            assert_eq!(sealer.open(&sealed[..len], "c"), Err(CryptoError::Open), "{len} bytes");
        }
        assert_eq!(&sealer.open(&sealed, "c").unwrap()[..], b"seed");
    }

    /// The check value is the key's public fingerprint: the same for one
    /// key, different for another, and not the key.
    #[test]
    fn the_check_value_tells_keys_apart() {
        let key = MasterKey::generate().unwrap();
        let value = key.check_value();
        assert_eq!(value.len(), 32);
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(value, key.clone().check_value());
        assert_ne!(value, MasterKey::generate().unwrap().check_value());
    }

    #[test]
    fn two_seals_of_the_same_text_differ() {
        let sealer = MasterKey::generate().unwrap().sealer();
        assert_ne!(sealer.seal(b"x", "c").unwrap(), sealer.seal(b"x", "c").unwrap());
    }

    #[test]
    fn master_key_text_must_be_32_bytes_of_base64() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.check_value(), again.check_value());
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").err(), Some(CryptoError::BadMasterKey));
        assert_eq!(MasterKey::from_base64("not base64!").err(), Some(CryptoError::BadMasterKey));
    }

    #[test]
    fn purpose_keys_are_independent() {
        let key = MasterKey::generate().unwrap();
        assert_ne!(key.hasher("api-key").hash(b"x"), key.hasher("otp-code").hash(b"x"));
        assert_eq!(key.hasher("api-key").hash(b"x"), key.hasher("api-key").hash(b"x"));
        assert_eq!(key.hasher("api-key").hash(b"x").len(), 64);
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", MasterKey::generate().unwrap()), "MasterKey([REDACTED])");
    }
}
