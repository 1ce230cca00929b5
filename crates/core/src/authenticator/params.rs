//! An authenticator's non-secret parameters, typed by its kind: how its
//! codes are made (algorithm, digits, period), the YubiKey's public id,
//! how many recovery codes it holds. Parsed once at the row boundary
//! ([`AuthenticatorParams::from_stored`]); a row whose parameters do not
//! parse as its kind's is an error, never a silent SHA1/6-digit default.

use serde::{Deserialize, Serialize};
use serde_json::json;
use vouchsafe_otp::Algorithm;

use super::AuthenticatorKind;

/// The non-secret parameters of one authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticatorParams {
    Totp {
        issuer: Option<String>,
        algorithm: Algorithm,
        digits: u32,
        period: u64,
    },
    Hotp {
        algorithm: Algorithm,
        digits: u32,
    },
    Yubikey {
        public_id: String,
    },
    RecoveryCodes {
        count: usize,
    },
    /// Everything a passkey needs is in its sealed credential.
    Passkey,
}

/// The stored JSON of the code-making kinds (`issuer` only for TOTP).
#[derive(Serialize, Deserialize)]
struct Otp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    algorithm: String,
    digits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Yubikey {
    public_id: String,
}

#[derive(Serialize, Deserialize)]
struct RecoveryCodes {
    count: usize,
}

impl AuthenticatorParams {
    /// The kind these parameters belong to.
    pub fn kind(&self) -> AuthenticatorKind {
        match self {
            Self::Totp { .. } => AuthenticatorKind::Totp,
            Self::Hotp { .. } => AuthenticatorKind::Hotp,
            Self::Yubikey { .. } => AuthenticatorKind::Yubikey,
            Self::RecoveryCodes { .. } => AuthenticatorKind::RecoveryCodes,
            Self::Passkey => AuthenticatorKind::Passkey,
        }
    }

    /// The parameters as stored: one JSON object, the same shape as ever.
    pub fn to_stored(&self) -> String {
        let value = match self {
            Self::Totp { issuer, algorithm, digits, period } => json!({
                "issuer": issuer, "algorithm": algorithm.as_str(), "digits": digits, "period": period,
            }),
            Self::Hotp { algorithm, digits } => json!({"algorithm": algorithm.as_str(), "digits": digits}),
            Self::Yubikey { public_id } => json!({"public_id": public_id}),
            Self::RecoveryCodes { count } => json!({"count": count}),
            Self::Passkey => json!({}),
        };
        value.to_string()
    }

    /// Reads stored parameters of a `kind` authenticator; what does not
    /// parse as that kind's, or names an unknown algorithm, is an error.
    pub fn from_stored(kind: AuthenticatorKind, text: &str) -> Result<Self, String> {
        let bad = |e: &dyn std::fmt::Display| format!("{} parameters: {e}", kind.as_str());
        let otp = || -> Result<(Algorithm, u32, Otp), String> {
            let otp: Otp = serde_json::from_str(text).map_err(|e| bad(&e))?;
            let algorithm = Algorithm::parse(&otp.algorithm).ok_or_else(|| bad(&"unknown algorithm"))?;
            if !vouchsafe_otp::DIGITS_RANGE.contains(&otp.digits) {
                return Err(bad(&"digits out of range"));
            }
            Ok((algorithm, otp.digits, otp))
        };
        Ok(match kind {
            AuthenticatorKind::Totp => {
                let (algorithm, digits, otp) = otp()?;
                let period = otp.period.filter(|p| *p > 0).ok_or_else(|| bad(&"no period"))?;
                Self::Totp { issuer: otp.issuer, algorithm, digits, period }
            }
            AuthenticatorKind::Hotp => {
                let (algorithm, digits, _) = otp()?;
                Self::Hotp { algorithm, digits }
            }
            AuthenticatorKind::Yubikey => {
                let y: Yubikey = serde_json::from_str(text).map_err(|e| bad(&e))?;
                Self::Yubikey { public_id: y.public_id }
            }
            AuthenticatorKind::RecoveryCodes => {
                let r: RecoveryCodes = serde_json::from_str(text).map_err(|e| bad(&e))?;
                Self::RecoveryCodes { count: r.count }
            }
            AuthenticatorKind::Passkey => {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).map_err(|e| bad(&e))?;
                Self::Passkey
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_stored_form() {
        let all = [
            AuthenticatorParams::Totp {
                issuer: Some("Acme".into()),
                algorithm: Algorithm::Sha256,
                digits: 8,
                period: 60,
            },
            AuthenticatorParams::Totp { issuer: None, algorithm: Algorithm::Sha1, digits: 6, period: 30 },
            AuthenticatorParams::Hotp { algorithm: Algorithm::Sha512, digits: 7 },
            AuthenticatorParams::Yubikey { public_id: "cccccccccccb".into() },
            AuthenticatorParams::RecoveryCodes { count: 10 },
            AuthenticatorParams::Passkey,
        ];
        for params in all {
            assert_eq!(AuthenticatorParams::from_stored(params.kind(), &params.to_stored()), Ok(params.clone()));
        }
    }

    /// A damaged row is an error, not SHA1 with six digits.
    #[test]
    fn damaged_parameters_are_errors() {
        for (kind, text) in [
            (AuthenticatorKind::Totp, r#"{"algorithm":"SHA1","digits":6}"#),
            (AuthenticatorKind::Totp, r#"{"algorithm":"MD5","digits":6,"period":30}"#),
            (AuthenticatorKind::Totp, r#"{"algorithm":"SHA1","digits":6,"period":0}"#),
            (AuthenticatorKind::Hotp, r#"{"algorithm":"SHA1","digits":"6"}"#),
            (AuthenticatorKind::Hotp, r#"{"algorithm":"SHA1","digits":12}"#),
            (AuthenticatorKind::Hotp, "not json"),
            (AuthenticatorKind::Yubikey, "{}"),
            (AuthenticatorKind::RecoveryCodes, r#"{"count":-1}"#),
            (AuthenticatorKind::Passkey, "[]"),
        ] {
            assert!(AuthenticatorParams::from_stored(kind, text).is_err(), "{kind:?} {text}");
        }
    }
}
