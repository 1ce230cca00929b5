//! The HMAC hash functions RFC 6238 allows, and the keyed HMAC state that
//! computes one HOTP value (RFC 4226 §5.3) per counter.

use std::ops::RangeInclusive;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Hash function of the HMAC (RFC 6238 §1.2). SHA1 is what every
/// authenticator app defaults to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Name as written in `otpauth://` URIs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1`, `SHA256` or `SHA512`, case-insensitively, with or
    /// without a dash (`sha-256`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// An HMAC already keyed with the secret. Keying costs as much as a hash
/// block, so verification keys once and clones the state per counter; that
/// keeps a window of three TOTP steps close to three raw HMACs.
#[derive(Clone)]
pub(crate) enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl KeyedMac {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        // HMAC accepts keys of any length (RFC 2104 §3), so these cannot fail;
        // the fallback keeps the code free of panics all the same.
        match algorithm {
            Algorithm::Sha1 => {
                Self::Sha1(Hmac::<Sha1>::new_from_slice(key).unwrap_or_else(|_| Hmac::<Sha1>::new(&Default::default())))
            }
            Algorithm::Sha256 => Self::Sha256(
                Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default())),
            ),
            Algorithm::Sha512 => Self::Sha512(
                Hmac::<Sha512>::new_from_slice(key).unwrap_or_else(|_| Hmac::<Sha512>::new(&Default::default())),
            ),
        }
    }

    /// HOTP value for `counter` before reduction modulo 10^digits: the
    /// dynamic truncation of RFC 4226 §5.3.
    pub(crate) fn truncated(&self, counter: u64) -> u32 {
        let msg = counter.to_be_bytes();
        match self {
            Self::Sha1(m) => dynamic_truncation(&finish(m.clone(), &msg)),
            Self::Sha256(m) => dynamic_truncation(&finish(m.clone(), &msg)),
            Self::Sha512(m) => dynamic_truncation(&finish(m.clone(), &msg)),
        }
    }
}

fn finish<M: Mac>(mut mac: M, msg: &[u8]) -> impl AsRef<[u8]> {
    mac.update(msg);
    mac.finalize().into_bytes()
}

/// RFC 4226 §5.3: the low nibble of the last byte picks four bytes; the top
/// bit is masked so the value is the same signed or unsigned.
fn dynamic_truncation(digest: &impl AsRef<[u8]>) -> u32 {
    let d = digest.as_ref();
    let offset = usize::from(d[d.len() - 1] & 0x0f);
    (u32::from(d[offset] & 0x7f) << 24)
        | (u32::from(d[offset + 1]) << 16)
        | (u32::from(d[offset + 2]) << 8)
        | u32::from(d[offset + 3])
}

impl KeyedMac {
    /// The first counter in `counters` whose `digits`-digit code is
    /// `wanted`. SECURITY: every counter of the window is computed and
    /// compared in constant time, so timing tells neither where nor whether
    /// it matched.
    pub(crate) fn find_counter(&self, counters: RangeInclusive<u64>, wanted: u32, digits: u32) -> Option<u64> {
        let modulus = 10u32.pow(digits);
        let mut found = None;
        for counter in counters {
            let hit = (self.truncated(counter) % modulus).ct_eq(&wanted);
            if bool::from(hit) && found.is_none() {
                found = Some(counter);
            }
        }
        found
    }
}

/// Formats `truncated mod 10^digits` with leading zeros kept.
pub(crate) fn format_code(truncated: u32, digits: u32) -> String {
    let modulus = 10u32.pow(digits);
    format!("{:0width$}", truncated % modulus, width = digits as usize)
}
