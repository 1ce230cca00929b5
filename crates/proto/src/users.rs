//! Requests and responses of users, authenticators and challenges
//! (API.md, "Users, authenticators, challenges").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PutUserRequest {
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub privileged: Option<bool>,
    /// ISO 3166-1 alpha-2 country a phone number written without `+` and
    /// a country code is read in (`(415) 555-2671` with `US`); the tenant's
    /// `geo.default_country` when left out.
    #[serde(default)]
    pub default_country: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub privileged: bool,
    /// Set while the user is locked out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAuthenticatorRequest {
    /// `totp`, `hotp`, `yubikey`, `recovery_codes` or `passkey`.
    #[serde(rename = "type")]
    pub kind: String,
    /// TOTP: the issuer the app shows (the tenant's brand by default).
    #[serde(default)]
    pub issuer: Option<String>,
    /// TOTP: the account name the app shows (the user's name or id by default).
    #[serde(default)]
    pub label: Option<String>,
    /// TOTP/HOTP: `SHA1` (default), `SHA256` or `SHA512`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// TOTP/HOTP: 6 (default) to 8.
    #[serde(default)]
    pub digits: Option<u32>,
    /// TOTP: seconds per step (30).
    #[serde(default)]
    pub period: Option<u64>,
    /// HOTP: the token's base32 secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// HOTP: the token's next counter (0).
    #[serde(default)]
    pub counter: Option<u64>,
    /// YubiKey: the public id (modhex).
    #[serde(default)]
    pub public_id: Option<String>,
    /// YubiKey: the private id (12 hex digits).
    #[serde(default)]
    pub private_id: Option<String>,
    /// YubiKey: the AES-128 key (32 hex digits).
    #[serde(default)]
    pub aes_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthenticatorResponse {
    /// `auth_…`
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `unconfirmed` or `active`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// TOTP only, at enrollment only: the base32 secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// TOTP only, at enrollment only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
    /// TOTP only, at enrollment only: the URI as a QR code (SVG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
    /// Recovery codes only, at creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<String>>,
    /// Passkey, at enrollment: the WebAuthn creation options, in the JSON
    /// form `PublicKeyCredential.parseCreationOptionsFromJSON` reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Value>,
    /// Recovery codes: how many are left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthenticatorList {
    pub authenticators: Vec<AuthenticatorResponse>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmAuthenticatorRequest {
    /// TOTP: the first code the app shows.
    #[serde(default)]
    pub code: Option<String>,
    /// Passkey: the browser's new credential (`PublicKeyCredential.toJSON()`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResyncAuthenticatorRequest {
    /// A code the token shows now…
    pub code: String,
    /// …and the next one (press the button again).
    pub next_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateChallengeRequest {
    /// What the user is doing (`login` by default); echoed by validation.
    #[serde(default)]
    pub action: Option<String>,
    /// `passkey`, `totp`, `hotp`, `yubikey`, `recovery_code`, `sms`, `voice`
    /// or `email`; the policy picks when left out.
    #[serde(default)]
    pub factor: Option<String>,
    /// Where the hosted page sends the user after success (`?token=…`).
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Language of a code message (sms, voice, email factors).
    #[serde(default)]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChallengeResponse {
    /// `chl_…`
    pub id: String,
    pub user_id: String,
    pub factor: String,
    pub action: String,
    /// `pending`, `approved`, `denied` or `expired`.
    pub status: String,
    pub expires_at: String,
    pub attempts_remaining: u32,
    /// The hosted page for the end user.
    pub url: String,
    /// Passkey challenges: the WebAuthn request options, in the JSON form
    /// `PublicKeyCredential.parseRequestOptionsFromJSON` reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyChallengeRequest {
    /// The code, OTP or recovery code.
    #[serde(default)]
    pub code: Option<String>,
    /// Passkey: the browser's assertion (`PublicKeyCredential.toJSON()`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyChallengeResponse {
    pub status: String,
    pub attempts_remaining: u32,
    /// On approval: the signed, single-use result token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateTokenRequest {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ValidateTokenResponse {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
}
