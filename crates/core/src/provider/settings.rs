//! Each provider type's settings, parsed once into a typed value: from the
//! API's JSON when a provider is saved ([`ProviderSettings::parse`], which
//! names the first bad member as a field error), and from a stored row
//! (where a row that no longer parses is an error, never defaults). The
//! providers in the delivery crate read these types, not JSON by key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ProviderKind;
use crate::field_error::FieldError;

/// How long one send may take before failover, unless `timeout_ms` says.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// The settings of a provider, by its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSettings {
    Console(ConsoleSettings),
    Http(HttpSettings),
    Twilio(TwilioSettings),
    Telesign(TelesignSettings),
    Smtp(SmtpSettings),
}

/// The console provider takes only the common `timeout_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Any gateway with an HTTP API: one request per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    pub body_template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpMethod {
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
    /// Twilio's API host unless set (for tests and regional hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelesignSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

impl ProviderSettings {
    /// Parses `value` as the settings of a `kind` provider: every member
    /// checked, nothing unknown allowed, so a typo is caught when the
    /// provider is saved, not when a code must go out.
    pub fn parse(kind: ProviderKind, value: &Value) -> Result<Self, FieldError> {
        validate_settings(kind, value)?;
        Ok(match kind {
            ProviderKind::Console => Self::Console(typed(value)?),
            ProviderKind::Http => Self::Http(typed(value)?),
            ProviderKind::Twilio => Self::Twilio(typed(value)?),
            ProviderKind::Telesign => Self::Telesign(typed(value)?),
            ProviderKind::Smtp => Self::Smtp(typed(value)?),
        })
    }

    /// No settings: the console provider's.
    pub fn console() -> Self {
        Self::Console(ConsoleSettings::default())
    }

    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::Console(_) => ProviderKind::Console,
            Self::Http(_) => ProviderKind::Http,
            Self::Twilio(_) => ProviderKind::Twilio,
            Self::Telesign(_) => ProviderKind::Telesign,
            Self::Smtp(_) => ProviderKind::Smtp,
        }
    }

    /// The settings as the API shows and the store keeps them.
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::Console(s) => serde_json::to_value(s),
            Self::Http(s) => serde_json::to_value(s),
            Self::Twilio(s) => serde_json::to_value(s),
            Self::Telesign(s) => serde_json::to_value(s),
            Self::Smtp(s) => serde_json::to_value(s),
        };
        // Plain structs of strings and numbers always serialize.
        value.unwrap_or_default()
    }

    /// How long one send may take before failover.
    pub fn timeout(&self) -> Duration {
        let ms = match self {
            Self::Console(s) => s.timeout_ms,
            Self::Http(s) => s.timeout_ms,
            Self::Twilio(s) => s.timeout_ms,
            Self::Telesign(s) => s.timeout_ms,
            Self::Smtp(s) => s.timeout_ms,
        };
        Duration::from_millis(ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    /// The URLs among the settings, with their field names, for the
    /// outbound-address check.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Http(s) => vec![("settings.url", s.url.as_str())],
            Self::Twilio(TwilioSettings { base_url: Some(url), .. })
            | Self::Telesign(TelesignSettings { base_url: Some(url), .. }) => vec![("settings.base_url", url.as_str())],
            _ => Vec::new(),
        }
    }
}

/// `value` as `T`, once [`validate_settings`] accepted it.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    serde_json::from_value(value.clone()).map_err(|e| FieldError::new("settings", e.to_string()))
}

fn str_member<'a>(settings: &'a Value, key: &str) -> Result<Option<&'a str>, FieldError> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(FieldError::new(format!("settings.{key}"), "must be a string")),
    }
}

fn required<'a>(settings: &'a Value, key: &str) -> Result<&'a str, FieldError> {
    str_member(settings, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| FieldError::new(format!("settings.{key}"), "is required"))
}

/// The settings each type takes (API.md), with nothing unknown allowed so
/// a typo is caught when the provider is saved, not when a code must go out.
pub fn validate_settings(kind: ProviderKind, settings: &Value) -> Result<(), FieldError> {
    let Value::Object(map) = settings else {
        return Err(FieldError::new("settings", "must be an object"));
    };
    let allowed: &[&str] = match kind {
        ProviderKind::Console => &[],
        ProviderKind::Http => &["url", "method", "headers", "body_template"],
        ProviderKind::Twilio => &["from", "messaging_service_sid", "base_url"],
        ProviderKind::Telesign => &["base_url"],
        ProviderKind::Smtp => &["host", "port", "tls", "from"],
    };
    if let Some(key) = map.keys().find(|k| k.as_str() != "timeout_ms" && !allowed.contains(&k.as_str())) {
        return Err(FieldError::new(format!("settings.{key}"), format!("is not a setting of {}", kind.as_str())));
    }
    if let Some(ms) = map.get("timeout_ms") {
        let ok = ms.as_u64().is_some_and(|ms| (100..=60_000).contains(&ms));
        if !ok {
            return Err(FieldError::new("settings.timeout_ms", "must be between 100 and 60000"));
        }
    }
    match kind {
        ProviderKind::Console => {}
        ProviderKind::Http => {
            required(settings, "url")?;
            required(settings, "body_template")?;
            if let Some(method) = str_member(settings, "method")?
                && !matches!(method, "POST" | "PUT" | "PATCH")
            {
                return Err(FieldError::new("settings.method", "must be POST, PUT or PATCH"));
            }
            if let Some(headers) = map.get("headers") {
                let ok = headers.as_object().is_some_and(|h| {
                    h.iter().all(|(k, v)| {
                        !k.is_empty()
                            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                            && v.as_str().is_some_and(|v| !v.contains(['\r', '\n']))
                    })
                });
                if !ok {
                    return Err(FieldError::new("settings.headers", "must map header names to one-line strings"));
                }
            }
        }
        ProviderKind::Twilio => {
            let from = str_member(settings, "from")?;
            let service = str_member(settings, "messaging_service_sid")?;
            if from.is_none() && service.is_none() {
                return Err(FieldError::new("settings.from", "from or messaging_service_sid is required"));
            }
        }
        ProviderKind::Telesign => {}
        ProviderKind::Smtp => {
            required(settings, "host")?;
            let from = required(settings, "from")?;
            if !from.contains('@') {
                return Err(FieldError::new("settings.from", "must be an email address"));
            }
            if let Some(port) = map.get("port") {
                let ok = port.as_u64().is_some_and(|p| (1..=65_535).contains(&p));
                if !ok {
                    return Err(FieldError::new("settings.port", "must be a port number"));
                }
            }
            if let Some(tls) = str_member(settings, "tls")?
                && !matches!(tls, "none" | "starttls" | "tls")
            {
                return Err(FieldError::new("settings.tls", "must be none, starttls or tls"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_checked_per_type() {
        let ok = [
            (ProviderKind::Console, json!({})),
            (ProviderKind::Http, json!({"url": "https://x.test", "body_template": "{\"to\":\"{to}\"}"})),
            (ProviderKind::Twilio, json!({"from": "+15005550006"})),
            (ProviderKind::Smtp, json!({"host": "smtp.x.test", "port": 587, "tls": "starttls", "from": "a@x.test"})),
        ];
        for (kind, settings) in ok {
            let parsed = ProviderSettings::parse(kind, &settings).unwrap();
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.to_value(), settings, "kept as given");
        }
        let bad = [
            (ProviderKind::Http, json!({"url": "https://x.test"}), "settings.body_template"),
            (ProviderKind::Http, json!({"url": "u", "body_template": "b", "method": "GET"}), "settings.method"),
            (
                ProviderKind::Http,
                json!({"url": "u", "body_template": "b", "headers": {"A": "x\ny"}}),
                "settings.headers",
            ),
            (ProviderKind::Twilio, json!({}), "settings.from"),
            (ProviderKind::Twilio, json!({"from": "+1", "form": "x"}), "settings.form"),
            (ProviderKind::Twilio, json!({"from": 7}), "settings.from"),
            (ProviderKind::Smtp, json!({"host": "h", "from": "a@b", "tls": "ssl"}), "settings.tls"),
            (ProviderKind::Smtp, json!({"host": "h", "from": "a@b", "port": 70000}), "settings.port"),
            (ProviderKind::Smtp, json!({"host": "h", "from": "nobody"}), "settings.from"),
            (ProviderKind::Console, json!({"timeout_ms": 5}), "settings.timeout_ms"),
            (ProviderKind::Console, json!([]), "settings"),
        ];
        for (kind, settings, field) in bad {
            assert_eq!(ProviderSettings::parse(kind, &settings).unwrap_err().field, field, "{settings}");
        }
    }

    /// SECURITY: a gateway's extra headers are header names and one-line
    /// values, so no setting can smuggle a header or a request into a send.
    #[test]
    fn gateway_headers_are_names_and_one_line_values() {
        let with = |headers: serde_json::Value| json!({"url": "u", "body_template": "b", "headers": headers});
        assert!(ProviderSettings::parse(ProviderKind::Http, &with(json!({"X-Api_Key2": "v"}))).is_ok());
        for headers in [
            json!({"X Key": "v"}),
            json!({"X:Key": "v"}),
            json!({"": "v"}),
            json!({"X.Key": "v"}),
            json!({"X-Key": "a\rb"}),
            json!({"X-Key": 7}),
            json!(["X-Key"]),
        ] {
            let refused = ProviderSettings::parse(ProviderKind::Http, &with(headers.clone()));
            assert_eq!(refused.unwrap_err().field, "settings.headers", "{headers}");
        }
    }

    #[test]
    fn typed_settings_answer_timeouts_and_urls() {
        let http = json!({"url": "https://gw.test/send", "body_template": "{}", "timeout_ms": 250});
        let http = ProviderSettings::parse(ProviderKind::Http, &http).unwrap();
        assert_eq!(http.timeout(), Duration::from_millis(250));
        assert_eq!(http.urls(), [("settings.url", "https://gw.test/send")]);
        let twilio =
            ProviderSettings::parse(ProviderKind::Twilio, &json!({"from": "+1", "base_url": "https://t.test"}));
        assert_eq!(twilio.unwrap().urls(), [("settings.base_url", "https://t.test")]);
        assert_eq!(ProviderSettings::console().timeout(), Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert!(ProviderSettings::console().urls().is_empty());
    }
}
