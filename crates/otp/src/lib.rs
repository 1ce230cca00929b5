//! One-time-password algorithms, pure: HOTP (RFC 4226), TOTP (RFC 6238),
//! uniformly random numeric codes, base32 secrets, `otpauth://` URIs (Google's
//! Key Uri Format) and their QR codes as SVG.
//!
//! This crate owns the arithmetic and the encodings, nothing else. It must not
//! do I/O, read the clock or keep state: callers pass the time (or counter) in
//! and store what verification returns (the matched counter or time step) so
//! that they can refuse replays. Randomness comes only from the OS CSPRNG.

mod algorithm;
mod code;
mod hotp;
mod qr;
mod secret;
mod totp;
mod uri;

pub use algorithm::Algorithm;
pub use code::{CODE_LENGTH_RANGE, CodeLengthError, random_numeric_code};
pub use hotp::{DEFAULT_LOOK_AHEAD, Hotp, Resync};
pub use qr::{QrError, qr_svg};
pub use secret::{Secret, SecretError};
pub use totp::{DEFAULT_WINDOW, Totp};
pub use uri::{OtpKind, OtpauthUri, UriError};

/// Digits an HOTP/TOTP code may have. RFC 4226 §5.3 requires at least 6;
/// 8 is the most any authenticator app shows.
pub const DIGITS_RANGE: std::ops::RangeInclusive<u32> = 6..=8;

/// Errors in the parameters of an HOTP/TOTP generator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("digits must be between 6 and 8, got {0}")]
    Digits(u32),
    #[error("period must be between 1 and 3600 seconds, got {0}")]
    Period(u64),
}
