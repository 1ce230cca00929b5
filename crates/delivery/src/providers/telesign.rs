//! Telesign: SMS through its REST messaging API (`POST /v1/messaging`) and
//! voice through its voice API (`POST /v1/voice`), form-encoded, Basic
//! auth with the customer id and API key (a `basic` credential). The
//! number goes without its `+`; `message_type=OTP` routes it as a code.

use async_trait::async_trait;
use serde_json::Value;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::provider::{Credential, TelesignSettings};

use super::error_status;
use crate::outbound::{OutboundClient, read_json};
use crate::provider::{Accepted, OutgoingMessage, Provider, ProviderError};

pub const DEFAULT_BASE_URL: &str = "https://rest-ww.telesign.com";

pub struct Telesign {
    pub client: OutboundClient,
    pub settings: TelesignSettings,
    pub credential: Option<Credential>,
    pub timeout: std::time::Duration,
}

/// Telesign's voice for a locale (`f-en-US` style), when it has one.
fn voice(locale: Option<&str>) -> &'static str {
    match locale.map(|l| l.split('-').next().unwrap_or(l)) {
        Some("es") => "f-es-ES",
        Some("fr") => "f-fr-FR",
        Some("de") => "f-de-DE",
        Some("pt") => "f-pt-BR",
        _ => "f-en-US",
    }
}

#[async_trait]
impl Provider for Telesign {
    async fn send(&self, m: &OutgoingMessage) -> Result<Accepted, ProviderError> {
        let Some(Credential::Basic { username, password }) = &self.credential else {
            return Err(ProviderError("telesign needs a basic credential (customer id and API key)".into()));
        };
        let base = self.settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let phone = m.to.trim_start_matches('+').to_owned();
        let mut form =
            vec![("phone_number", phone), ("message", m.rendered.text.clone()), ("message_type", "OTP".into())];
        let path = match m.channel {
            Channel::Sms => "/v1/messaging",
            Channel::Voice => {
                form.push(("voice", voice(m.locale.as_deref()).to_owned()));
                "/v1/voice"
            }
            Channel::Email => return Err(ProviderError("telesign does not carry email".into())),
        };
        let request = self
            .client
            .request(reqwest::Method::POST, &format!("{base}{path}"))
            .map_err(|e| ProviderError(e.to_string()))?
            .timeout(self.timeout)
            .basic_auth(username, Some(password))
            .form(&form);
        let response = self.client.execute(request).await.map_err(|e| ProviderError(e.to_string()))?;
        let status = response.status();
        let body: Value = read_json(response).await;
        let telesign_code = body.pointer("/status/code").and_then(Value::as_i64);
        if !status.is_success() {
            return Err(match telesign_code {
                Some(code) => ProviderError(format!("telesign answered {} (status {code})", status.as_u16())),
                None => error_status(status),
            });
        }
        let reference = body.get("reference_id").and_then(Value::as_str).map(str::to_owned);
        Ok(Accepted { provider_message_id: reference })
    }
}
