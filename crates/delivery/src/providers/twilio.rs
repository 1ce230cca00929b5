//! Twilio: SMS through the Messages resource, voice through the Calls
//! resource with a TwiML `<Say>`; form-encoded, Basic auth with the
//! account SID and auth token (a `basic` credential). `base_url` exists so
//! tests and proxies can stand in for Twilio's API host.
//!
//! Delivery receipts come back to `/v1/provider-callbacks/twilio`, signed
//! with Twilio's `X-Twilio-Signature` scheme, which [`signature`] computes.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::provider::{Credential, TwilioSettings};

use super::error_status;
use crate::outbound::{OutboundClient, read_json};
use crate::provider::{Accepted, OutgoingMessage, Provider, ProviderError};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

pub struct Twilio {
    pub client: OutboundClient,
    pub settings: TwilioSettings,
    pub credential: Option<Credential>,
    pub timeout: std::time::Duration,
}

/// Twilio's `<Say language>` for a locale: the region given, or the most
/// common one for the language.
fn say_language(locale: Option<&str>) -> &str {
    match locale {
        Some(l) if l.contains('-') => l,
        Some("es") => "es-ES",
        Some("fr") => "fr-FR",
        Some("de") => "de-DE",
        Some("pt") => "pt-BR",
        _ => "en-US",
    }
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The TwiML a voice call plays.
pub fn say_twiml(text: &str, locale: Option<&str>) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say language=\"{}\">{}</Say></Response>",
        escape_xml(say_language(locale)),
        escape_xml(text)
    )
}

/// `X-Twilio-Signature`: base64 of HMAC-SHA1 under the auth token, over the
/// full URL Twilio called followed by every POST parameter, sorted by
/// name, as name then value.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[async_trait]
impl Provider for Twilio {
    async fn send(&self, m: &OutgoingMessage) -> Result<Accepted, ProviderError> {
        let Some(Credential::Basic { username, password }) = &self.credential else {
            return Err(ProviderError("twilio needs a basic credential (account SID and auth token)".into()));
        };
        let base = self.settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let mut form: Vec<(&str, String)> = vec![("To", m.to.clone())];
        match (&self.settings.messaging_service_sid, &self.settings.from) {
            (Some(sid), _) if m.channel == Channel::Sms => form.push(("MessagingServiceSid", sid.clone())),
            (_, Some(from)) => form.push(("From", from.clone())),
            _ => return Err(ProviderError("twilio needs settings.from for voice".into())),
        }
        let resource = match m.channel {
            Channel::Sms => {
                form.push(("Body", m.rendered.text.clone()));
                "Messages"
            }
            Channel::Voice => {
                form.push(("Twiml", say_twiml(&m.rendered.text, m.locale.as_deref())));
                "Calls"
            }
            Channel::Email => return Err(ProviderError("twilio does not carry email".into())),
        };
        if let Some(callback) = &m.status_callback {
            form.push(("StatusCallback", callback.clone()));
        }
        let url = format!("{base}/2010-04-01/Accounts/{username}/{resource}.json");
        let request = self
            .client
            .request(reqwest::Method::POST, &url)
            .map_err(|e| ProviderError(e.to_string()))?
            .timeout(self.timeout)
            .basic_auth(username, Some(password))
            .form(&form);
        let response = self.client.execute(request).await.map_err(|e| ProviderError(e.to_string()))?;
        let status = response.status();
        let body: Value = read_json(response).await;
        if !status.is_success() {
            // Twilio's error body names a numeric code; its message may
            // quote the number, so only the code is kept.
            return Err(match body.get("code").and_then(Value::as_i64) {
                Some(code) => ProviderError(format!("twilio answered {} (error {code})", status.as_u16())),
                None => error_status(status),
            });
        }
        let sid = body.get("sid").and_then(Value::as_str).map(str::to_owned);
        Ok(Accepted { provider_message_id: sid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_twilios_documented_example() {
        // The example of Twilio's "Webhooks security" page.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let sig = signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params);
        // Cross-checked with the `twilio` package's RequestValidator.
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn twiml_escapes_the_script() {
        let twiml = say_twiml("Code 1, 2 <& \"x\">", Some("es"));
        assert!(twiml.contains("<Say language=\"es-ES\">Code 1, 2 &lt;&amp; &quot;x&quot;&gt;</Say>"), "{twiml}");
    }
}
