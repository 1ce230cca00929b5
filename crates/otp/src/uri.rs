//! `otpauth://` URIs in Google's Key Uri Format, which every authenticator
//! app reads from a QR code: `otpauth://TYPE/ISSUER:ACCOUNT?secret=…&issuer=…`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::{Algorithm, DIGITS_RANGE, Secret};

/// Characters left as they are in labels and values; everything else is
/// percent-encoded (a space becomes `%20`, never `+`, as the format asks).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'@');

/// Counter- or time-based, with the parameter that belongs to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    Totp { period: u64 },
    Hotp { counter: u64 },
}

/// The parts of an `otpauth://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpauthUri {
    pub kind: OtpKind,
    pub issuer: Option<String>,
    pub account: String,
    pub secret: Secret,
    pub algorithm: Algorithm,
    pub digits: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("not a URI: {0}")]
    Syntax(String),
    #[error("scheme must be otpauth")]
    Scheme,
    #[error("type must be totp or hotp")]
    Type,
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("invalid parameter {0}")]
    Invalid(&'static str),
}

impl OtpauthUri {
    /// The URI text, parameters in the order apps show them.
    pub fn to_uri(&self) -> String {
        let enc = |s: &str| utf8_percent_encode(s, ENCODE).to_string();
        let (kind, extra) = match self.kind {
            OtpKind::Totp { period } => ("totp", format!("period={period}")),
            OtpKind::Hotp { counter } => ("hotp", format!("counter={counter}")),
        };
        let label = match &self.issuer {
            Some(issuer) => format!("{}:{}", enc(issuer), enc(&self.account)),
            None => enc(&self.account),
        };
        let mut uri = format!("otpauth://{kind}/{label}?secret={}", self.secret.to_base32());
        if let Some(issuer) = &self.issuer {
            uri.push_str(&format!("&issuer={}", enc(issuer)));
        }
        uri.push_str(&format!("&algorithm={}&digits={}&{extra}", self.algorithm.as_str(), self.digits));
        uri
    }

    /// Reads a URI. Missing `algorithm`, `digits` and `period` take the
    /// format's defaults (SHA1, 6, 30); `counter` is required for HOTP.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let url = url::Url::parse(text.trim()).map_err(|e| UriError::Syntax(e.to_string()))?;
        if url.scheme() != "otpauth" {
            return Err(UriError::Scheme);
        }
        let kind_name = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let label = percent_decode_str(url.path().trim_start_matches('/'))
            .decode_utf8()
            .map_err(|_| UriError::Invalid("label"))?
            .into_owned();
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(issuer.trim().to_owned()), account.trim().to_owned()),
            None => (None, label.trim().to_owned()),
        };

        let mut secret = None;
        let mut issuer = None;
        let mut algorithm = Algorithm::Sha1;
        let mut digits = 6;
        let mut period = 30;
        let mut counter = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "secret" => secret = Some(Secret::parse_base32(&value).map_err(|_| UriError::Invalid("secret"))?),
                "issuer" => issuer = Some(value.into_owned()),
                "algorithm" => algorithm = Algorithm::parse(&value).ok_or(UriError::Invalid("algorithm"))?,
                "digits" => digits = value.parse().map_err(|_| UriError::Invalid("digits"))?,
                "period" => period = value.parse().map_err(|_| UriError::Invalid("period"))?,
                "counter" => counter = Some(value.parse().map_err(|_| UriError::Invalid("counter"))?),
                _ => {} // Apps add their own parameters (image, color); ignore them.
            }
        }
        if !DIGITS_RANGE.contains(&digits) {
            return Err(UriError::Invalid("digits"));
        }
        let kind = match kind_name.as_str() {
            "totp" if (1..=3600).contains(&period) => OtpKind::Totp { period },
            "totp" => return Err(UriError::Invalid("period")),
            "hotp" => OtpKind::Hotp { counter: counter.ok_or(UriError::Missing("counter"))? },
            _ => return Err(UriError::Type),
        };
        Ok(Self {
            kind,
            issuer: issuer.or(label_issuer).filter(|s| !s.is_empty()),
            account,
            secret: secret.ok_or(UriError::Missing("secret"))?,
            algorithm,
            digits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `issuer` parameter is read even without an `Issuer:` label prefix.
    #[test]
    fn the_issuer_parameter_alone_names_the_issuer() {
        let uri = OtpauthUri::parse("otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme").unwrap();
        assert_eq!((uri.issuer.as_deref(), uri.account.as_str()), (Some("Acme"), "bob"));
    }
    use proptest::prelude::*;

    fn sample() -> OtpauthUri {
        OtpauthUri {
            kind: OtpKind::Totp { period: 30 },
            issuer: Some("ACME Co".into()),
            account: "john.doe@example.com".into(),
            secret: Secret::parse_base32("HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ").unwrap(),
            algorithm: Algorithm::Sha1,
            digits: 6,
        }
    }

    #[test]
    fn builds_the_key_uri_format_example() {
        assert_eq!(
            sample().to_uri(),
            "otpauth://totp/ACME%20Co:john.doe@example.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn parses_what_it_builds_and_applies_defaults() {
        assert_eq!(OtpauthUri::parse(&sample().to_uri()).unwrap(), sample());
        let minimal = OtpauthUri::parse("otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(minimal.kind, OtpKind::Totp { period: 30 });
        assert_eq!(minimal.digits, 6);
        assert_eq!(minimal.algorithm, Algorithm::Sha1);
        assert_eq!(minimal.issuer, None);
    }

    #[test]
    fn hotp_needs_a_counter() {
        assert_eq!(OtpauthUri::parse("otpauth://hotp/x?secret=GEZDGNBV"), Err(UriError::Missing("counter")));
        let h = OtpauthUri::parse("otpauth://hotp/Co:x?secret=GEZDGNBV&counter=7&digits=8&algorithm=SHA512").unwrap();
        assert_eq!(h.kind, OtpKind::Hotp { counter: 7 });
        assert_eq!(h.digits, 8);
        assert_eq!(h.algorithm, Algorithm::Sha512);
        assert_eq!(h.issuer.as_deref(), Some("Co"));
    }

    #[test]
    fn bad_uris_are_refused() {
        assert_eq!(OtpauthUri::parse("https://totp/x?secret=GEZDGNBV"), Err(UriError::Scheme));
        assert_eq!(OtpauthUri::parse("otpauth://motp/x?secret=GEZDGNBV"), Err(UriError::Type));
        assert_eq!(OtpauthUri::parse("otpauth://totp/x"), Err(UriError::Missing("secret")));
        assert_eq!(OtpauthUri::parse("otpauth://totp/x?secret=GEZDGNBV&digits=9"), Err(UriError::Invalid("digits")));
        assert_eq!(OtpauthUri::parse("otpauth://totp/x?secret=GEZDGNBV&period=0"), Err(UriError::Invalid("period")));
        assert_eq!(OtpauthUri::parse("otpauth://totp/x?secret=1111"), Err(UriError::Invalid("secret")));
    }

    proptest! {
        #[test]
        fn round_trip(issuer in "[ -~&&[^:]]{1,20}", account in "[ -~]{1,30}", counter in any::<u64>(), hotp in any::<bool>(), digits in 6u32..=8) {
            let issuer = issuer.trim().to_owned();
            let account = account.trim().to_owned();
            prop_assume!(!issuer.is_empty() && !account.is_empty());
            let uri = OtpauthUri {
                kind: if hotp { OtpKind::Hotp { counter } } else { OtpKind::Totp { period: 1 + counter % 3600 } },
                issuer: Some(issuer),
                account,
                secret: Secret::from_bytes(counter.to_be_bytes().to_vec()),
                algorithm: Algorithm::Sha256,
                digits,
            };
            prop_assert_eq!(OtpauthUri::parse(&uri.to_uri()).unwrap(), uri);
        }

        /// Arbitrary text, and text shaped like an otpauth URI with junk in
        /// every part, is refused or parsed, never a panic; what parses
        /// writes back out to a URI that parses to the same thing.
        #[test]
        fn parse_never_panics(text in ".{0,120}", shaped in "otpauth://(totp|hotp|x)/[ -~]{0,40}(\\?[ -~]{0,80})?") {
            let _ = OtpauthUri::parse(&text);
            if let Ok(uri) = OtpauthUri::parse(&shaped) {
                prop_assert_eq!(OtpauthUri::parse(&uri.to_uri()).unwrap(), uri);
            }
        }
    }
}
