//! Shared secrets of HOTP/TOTP generators and their base32 form (RFC 4648
//! §6), as authenticator apps and `otpauth://` URIs write them.

use data_encoding::{BASE32_NOPAD, Encoding};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of a generated secret: 160 bits, the length RFC 4226 §4 recommends.
pub const GENERATED_SECRET_BYTES: usize = 20;

/// An HOTP/TOTP key. Wiped from memory when dropped; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret is empty")]
    Empty,
    #[error("secret is not valid base32 (letters A-Z and digits 2-7)")]
    InvalidBase32,
    #[error("the operating system's random number generator failed")]
    Rng,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Lenient base32 reading: lower case, spaces and `=` padding are accepted
/// (people copy secrets from screens), and unused trailing bits are ignored
/// as Google Authenticator and pyotp ignore them.
fn lenient_base32() -> Encoding {
    let mut spec = BASE32_NOPAD.specification();
    spec.check_trailing_bits = false;
    spec.ignore.push_str(" \t\r\n-");
    spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    // The specification is a constant one known to be valid; fall back to
    // the strict decoder rather than panic if that ever changed.
    spec.encoding().unwrap_or_else(|_| BASE32_NOPAD.clone())
}

impl Secret {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A new random 160-bit secret from the OS CSPRNG.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|_| SecretError::Rng)?;
        Ok(Self(bytes))
    }

    /// Reads base32: case-insensitive, spaces and padding tolerated.
    pub fn parse_base32(text: &str) -> Result<Self, SecretError> {
        let trimmed = text.trim().trim_end_matches('=');
        if trimmed.chars().all(|c| c.is_whitespace() || c == '-') {
            return Err(SecretError::Empty);
        }
        let bytes = lenient_base32().decode(trimmed.as_bytes()).map_err(|_| SecretError::InvalidBase32)?;
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(bytes))
    }

    /// Canonical base32: upper case, no padding.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_seed_round_trips() {
        let s = Secret::parse_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(s.as_bytes(), b"12345678901234567890");
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn lower_case_spaces_and_padding_are_tolerated() {
        let want = Secret::parse_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA").unwrap();
        let got = Secret::parse_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq gezd gnbv gy3t qojq geza====").unwrap();
        assert_eq!(want, got);
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(Secret::parse_base32(""), Err(SecretError::Empty));
        assert_eq!(Secret::parse_base32("   "), Err(SecretError::Empty));
        assert_eq!(Secret::parse_base32("GEZDGNB1"), Err(SecretError::InvalidBase32));
        assert_eq!(Secret::parse_base32("GEZ!"), Err(SecretError::InvalidBase32));
    }

    #[test]
    fn generated_secrets_have_160_bits_and_differ() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.as_bytes().len(), 20);
        assert_eq!(a.to_base32().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Secret::parse_base32("GEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
    }

    proptest! {
        #[test]
        fn base32_round_trip(bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
            let s = Secret::from_bytes(bytes.clone());
            let text = s.to_base32();
            prop_assert!(!text.contains('='));
            prop_assert_eq!(Secret::parse_base32(&text).unwrap().as_bytes().to_vec(), bytes.clone());
            prop_assert_eq!(Secret::parse_base32(&text.to_lowercase()).unwrap().as_bytes().to_vec(), bytes);
        }

        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = Secret::parse_base32(&text);
        }
    }
}
