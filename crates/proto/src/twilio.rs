//! The Twilio-Verify-shaped bodies of the `/v2` surface: snake_case JSON
//! with Twilio's field names, so Twilio's own SDKs read them unchanged.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Twilio's error body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TwilioError {
    /// Twilio's numeric error code (`60200`, `60202`, `20404`, …).
    pub code: u32,
    pub message: String,
    pub more_info: String,
    pub status: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TwilioService {
    /// `VA…`
    pub sid: String,
    /// `AC…`
    pub account_sid: String,
    pub friendly_name: String,
    pub code_length: u32,
    pub lookup_enabled: bool,
    pub psd2_enabled: bool,
    pub skip_sms_to_landlines: bool,
    pub dtmf_input_required: bool,
    pub tts_name: Option<String>,
    pub do_not_share_warning_enabled: bool,
    pub custom_code_enabled: bool,
    #[schema(value_type = Object)]
    pub push: Value,
    #[schema(value_type = Object)]
    pub totp: Value,
    pub default_template_sid: Option<String>,
    pub verify_event_subscription_enabled: bool,
    pub date_created: String,
    pub date_updated: String,
    pub url: String,
    #[schema(value_type = Object)]
    pub links: Value,
}

/// Twilio's paging block of list responses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TwilioMeta {
    pub page: u32,
    pub page_size: u32,
    pub first_page_url: String,
    pub previous_page_url: Option<String>,
    pub url: String,
    pub next_page_url: Option<String>,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TwilioServiceList {
    pub services: Vec<TwilioService>,
    pub meta: TwilioMeta,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TwilioSendCodeAttempt {
    /// `VL…`
    pub attempt_sid: String,
    pub channel: String,
    pub time: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TwilioVerification {
    /// `VE…`
    pub sid: String,
    pub service_sid: String,
    pub account_sid: String,
    pub to: String,
    /// `sms`, `call` or `email`.
    pub channel: String,
    /// `pending`, `approved`, `canceled`, `max_attempts_reached` or `expired`.
    pub status: String,
    pub valid: bool,
    #[schema(value_type = Object)]
    pub lookup: Value,
    pub amount: Option<String>,
    pub payee: Option<String>,
    pub send_code_attempts: Vec<TwilioSendCodeAttempt>,
    pub date_created: String,
    pub date_updated: String,
    #[schema(value_type = Object)]
    pub sna: Option<Value>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TwilioVerificationCheck {
    /// `VE…` (the verification checked)
    pub sid: String,
    pub service_sid: String,
    pub account_sid: String,
    pub to: String,
    pub channel: String,
    pub status: String,
    pub valid: bool,
    pub amount: Option<String>,
    pub payee: Option<String>,
    pub date_created: String,
    pub date_updated: String,
    #[schema(value_type = Object)]
    pub sna_attempts_error_codes: Vec<Value>,
}
