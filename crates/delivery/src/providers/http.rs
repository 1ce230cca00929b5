//! Any provider with an HTTP API (the custom-provider case): a request to
//! the tenant's URL with a body made from their template. Values go in
//! escaped for a JSON string literal — the template writes the quotes, as
//! in `{"to": "{to}", "text": "{message}"}` — so a message cannot break
//! out of its string. Any 2xx answer means accepted.

use async_trait::async_trait;
use serde_json::Value;
use vouchsafe_core::provider::{Credential, HttpMethod, HttpSettings};

use super::{apply_credential, error_status};
use crate::outbound::{OutboundClient, read_json};
use crate::provider::{Accepted, OutgoingMessage, Provider, ProviderError};

pub struct Http {
    pub client: OutboundClient,
    pub settings: HttpSettings,
    pub credential: Option<Credential>,
    pub timeout: std::time::Duration,
}

/// `text` escaped for use inside a JSON string literal.
pub fn json_escape(text: &str) -> String {
    let quoted = Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The body template with every placeholder filled in, escaped.
pub fn fill_body(template: &str, m: &OutgoingMessage) -> String {
    let values: [(&str, &str); 7] = [
        ("{to}", &m.to),
        ("{code}", &m.code),
        ("{message}", &m.rendered.text),
        ("{channel}", m.channel.as_str()),
        ("{user_id}", m.user_id.as_deref().unwrap_or("")),
        ("{network_id}", m.network_id.as_deref().unwrap_or("")),
        ("{experience_id}", m.experience_id.as_deref().unwrap_or("")),
    ];
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'scan: while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        for (name, value) in values {
            if let Some(tail) = after.strip_prefix(name) {
                out.push_str(&json_escape(value));
                rest = tail;
                continue 'scan;
            }
        }
        out.push('{');
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

#[async_trait]
impl Provider for Http {
    async fn send(&self, m: &OutgoingMessage) -> Result<Accepted, ProviderError> {
        let method = match self.settings.method.unwrap_or(HttpMethod::Post) {
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
        };
        let body = fill_body(&self.settings.body_template, m);
        let mut request = self
            .client
            .request(method, &self.settings.url)
            .map_err(|e| ProviderError(e.to_string()))?
            .timeout(self.timeout)
            .header("content-type", "application/json");
        for (name, value) in self.settings.headers.iter().flatten() {
            request = request.header(name.as_str(), value.as_str());
        }
        request = apply_credential(request, self.credential.as_ref());
        let response = self.client.execute(request.body(body)).await.map_err(|e| ProviderError(e.to_string()))?;
        if !response.status().is_success() {
            return Err(error_status(response.status()));
        }
        // A JSON answer with an `id` names the message for receipts.
        let id = match read_json(response).await.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Accepted { provider_message_id: id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::render_custom;
    use vouchsafe_core::channel::Channel;

    #[test]
    fn values_are_escaped_so_they_stay_inside_their_json_strings() {
        let m = OutgoingMessage {
            channel: Channel::Sms,
            to: "+447400123456".into(),
            to_masked: "+44*********56".into(),
            rendered: render_custom(Channel::Sms, "Say \"hi\"\n{code}", "1234"),
            code: "1234".into(),
            locale: None,
            user_id: Some("005xx\\0001".into()),
            network_id: None,
            experience_id: None,
            status_callback: None,
        };
        let body = fill_body(
            r#"{"to":"{to}","text":"{message}","code":"{code}","u":"{user_id}","n":"{network_id}","x":"{other}"}"#,
            &m,
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["to"], "+447400123456");
        assert_eq!(parsed["text"], "Say \"hi\"\n1234");
        assert_eq!(parsed["code"], "1234");
        assert_eq!(parsed["u"], "005xx\\0001");
        assert_eq!(parsed["n"], "");
        assert_eq!(parsed["x"], "{other}", "unknown placeholders stay as written");
    }

    proptest::proptest! {
        #[test]
        fn any_value_stays_inside_its_json_string(text in "\\PC{0,80}") {
            let parsed: Value = serde_json::from_str(&format!("\"{}\"", json_escape(&text))).unwrap();
            proptest::prop_assert_eq!(parsed.as_str().unwrap(), text.as_str());
        }
    }
}
