//! Tenant settings: one JSON document per tenant, changed by JSON merge
//! patch (RFC 7386), defaults for every member, and the bounds of API.md.
//! A patch is applied to the stored document and the result validated as a
//! whole; nothing is stored unless every member is valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::Channel;
use crate::destination::Country;
use crate::field_error::{FieldError, check_range};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub otp: OtpSettings,
    pub lockout: LockoutSettings,
    pub geo: GeoSettings,
    pub fraud: FraudSettings,
    pub branding: BrandingSettings,
    pub caller_verification: CallerVerificationSettings,
    pub templates: Templates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtpSettings {
    pub code_length: u32,
    pub ttl_s: u32,
    pub max_check_attempts: u32,
    pub max_sends: u32,
    pub send_window_s: u32,
    pub resend_cooldown_s: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutSettings {
    pub threshold: u32,
    pub duration_s: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoSettings {
    /// ISO 3166-1 alpha-2 codes, or `"*"` for every country.
    pub allowed_countries: Vec<String>,
    /// Where a phone number written without `+` and a country code is read
    /// (alpha-2, `US`); `None`: such numbers are refused. A request's own
    /// `default_country` takes precedence.
    pub default_country: Option<String>,
}

/// Hourly send limits against SMS pumping (see `fraud.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudSettings {
    pub max_sends_per_destination_per_hour: u32,
    /// Sends to one block of numbers: the first `prefix_length` digits of
    /// the E.164 number (country code included).
    pub max_sends_per_prefix_per_hour: u32,
    pub prefix_length: u32,
    pub max_sends_per_tenant_per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrandingSettings {
    pub name: String,
    pub logo_url: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerVerificationSettings {
    pub time_allowed_s: u32,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Templates {
    pub sms: String,
    pub voice: String,
    pub email_subject: String,
    pub email_body: String,
    pub caller: String,
    /// Per-locale overrides (`"es"`, `"pt-BR"`); members left out fall back
    /// to the built-in text of that locale, then to the members above.
    pub locales: BTreeMap<String, LocaleTemplates>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocaleTemplates {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_body: Option<String>,
    /// The caller-verification message in this language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

impl Default for OtpSettings {
    fn default() -> Self {
        Self {
            code_length: 6,
            ttl_s: 600,
            max_check_attempts: 5,
            max_sends: 5,
            send_window_s: 600,
            resend_cooldown_s: 30,
        }
    }
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self { threshold: 10, duration_s: 900 }
    }
}

impl Default for GeoSettings {
    fn default() -> Self {
        Self { allowed_countries: vec!["*".into()], default_country: None }
    }
}

impl Default for FraudSettings {
    fn default() -> Self {
        Self {
            max_sends_per_destination_per_hour: 10,
            max_sends_per_prefix_per_hour: 100,
            prefix_length: 8,
            max_sends_per_tenant_per_hour: 10_000,
        }
    }
}

impl Default for BrandingSettings {
    fn default() -> Self {
        Self { name: "vouchsafe".into(), logo_url: None, message: None }
    }
}

impl Default for CallerVerificationSettings {
    fn default() -> Self {
        Self { time_allowed_s: 60, channel: Channel::Sms }
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            sms: "Your {service} verification code is: {code}".into(),
            voice: "Your {service} verification code is {code}. Again, your code is {code}.".into(),
            email_subject: "Your {service} verification code".into(),
            email_body: "Your {service} verification code is: {code}\n\nIt expires in {minutes} minutes. If you did not ask for it, ignore this message.".into(),
            caller: "{service}: are you on a call with us? {link} — or read {code} to the agent.".into(),
            locales: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Applies a JSON merge patch to these settings and validates the result.
    pub fn patched(&self, patch: &Value) -> Result<Settings, FieldError> {
        if !patch.is_object() {
            return Err(FieldError::new("body", "must be a JSON object"));
        }
        let mut doc = serde_json::to_value(self).map_err(|e| FieldError::new("body", e.to_string()))?;
        merge_patch(&mut doc, patch);
        Self::from_document(doc)
    }

    /// Reads and validates a whole settings document (as stored).
    pub fn from_document(doc: Value) -> Result<Settings, FieldError> {
        let settings: Settings = serde_path_to_error::deserialize(doc).map_err(|e| {
            let field = e.path().to_string();
            FieldError::new(if field == "." { "body".to_owned() } else { field }, e.inner().to_string())
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// The bounds of API.md, plus sane ones for members it leaves open.
    pub fn validate(&self) -> Result<(), FieldError> {
        let o = &self.otp;
        check_range("otp.code_length", o.code_length, 4..=10)?;
        check_range("otp.ttl_s", o.ttl_s, 30..=86_400)?;
        check_range("otp.max_check_attempts", o.max_check_attempts, 1..=20)?;
        check_range("otp.max_sends", o.max_sends, 1..=100)?;
        check_range("otp.send_window_s", o.send_window_s, 60..=86_400)?;
        check_range("otp.resend_cooldown_s", o.resend_cooldown_s, 0..=3_600)?;
        check_range("lockout.threshold", self.lockout.threshold, 1..=1_000)?;
        check_range("lockout.duration_s", self.lockout.duration_s, 1..=604_800)?;
        self.validate_geo()?;
        let f = &self.fraud;
        check_range("fraud.max_sends_per_destination_per_hour", f.max_sends_per_destination_per_hour, 1..=10_000)?;
        check_range("fraud.max_sends_per_prefix_per_hour", f.max_sends_per_prefix_per_hour, 1..=1_000_000)?;
        check_range("fraud.prefix_length", f.prefix_length, 3..=14)?;
        check_range("fraud.max_sends_per_tenant_per_hour", f.max_sends_per_tenant_per_hour, 1..=100_000_000)?;
        let b = &self.branding;
        check_len("branding.name", &b.name, 1, 100)?;
        if let Some(url) = &b.logo_url
            && (!(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2_000)
        {
            return Err(FieldError::new("branding.logo_url", "must be an http(s) URL of at most 2000 characters"));
        }
        if let Some(message) = &b.message {
            check_len("branding.message", message, 0, 500)?;
        }
        check_range("caller_verification.time_allowed_s", self.caller_verification.time_allowed_s, 10..=3_600)?;
        let t = &self.templates;
        for (field, text) in
            [("templates.sms", &t.sms), ("templates.voice", &t.voice), ("templates.email_body", &t.email_body)]
        {
            check_len(field, text, 1, 2_000)?;
            if !text.contains("{code}") {
                return Err(FieldError::new(field, "must contain {code}"));
            }
        }
        check_len("templates.email_subject", &t.email_subject, 1, 200)?;
        for (locale, overrides) in &t.locales {
            let valid_tag = (2..=10).contains(&locale.len())
                && locale.split('-').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !valid_tag || t.locales.len() > 100 {
                return Err(FieldError::new(
                    "templates.locales",
                    "keys must be locale tags such as \"es\" or \"pt-BR\"",
                ));
            }
            for (member, text) in
                [("sms", &overrides.sms), ("voice", &overrides.voice), ("email_body", &overrides.email_body)]
            {
                if let Some(text) = text {
                    let field = format!("templates.locales.{locale}.{member}");
                    check_len(&field, text, 1, 2_000)?;
                    if !text.contains("{code}") {
                        return Err(FieldError::new(field, "must contain {code}"));
                    }
                }
            }
            if let Some(subject) = &overrides.email_subject {
                check_len(&format!("templates.locales.{locale}.email_subject"), subject, 1, 200)?;
            }
            if let Some(caller) = &overrides.caller {
                check_caller_template(&format!("templates.locales.{locale}.caller"), caller)?;
            }
        }
        check_caller_template("templates.caller", &t.caller)
    }

    fn validate_geo(&self) -> Result<(), FieldError> {
        let countries = &self.geo.allowed_countries;
        let ok = countries.len() <= 300
            && countries.iter().all(|c| c == "*" || (c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
        if !ok {
            return Err(FieldError::new(
                "geo.allowed_countries",
                "must list \"*\" or ISO 3166-1 alpha-2 codes such as \"US\"",
            ));
        }
        if let Some(country) = &self.geo.default_country {
            Country::parse("geo.default_country", country)?;
        }
        Ok(())
    }

    /// The country national phone numbers are read in: the request's
    /// `default_country` if it names one, else the tenant's.
    pub fn number_country(&self, requested: Option<&str>) -> Result<Option<Country>, FieldError> {
        match requested {
            Some(text) => Country::parse("default_country", text).map(Some),
            None => self.geo.default_country.as_deref().map(|c| Country::parse("geo.default_country", c)).transpose(),
        }
    }

    /// Whether codes may be sent to numbers of `country` (alpha-2).
    pub fn country_allowed(&self, country: &str) -> bool {
        self.geo.allowed_countries.iter().any(|c| c == "*" || c == country)
    }
}

fn check_len(field: &str, text: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let n = text.chars().count();
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("must be {min} to {max} characters")))
    }
}

/// RFC 7386 JSON merge patch: objects merge member by member, `null`
/// removes a member (so it falls back to its default), anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A caller-verification text: it must give the customer a way to answer.
fn check_caller_template(field: &str, text: &str) -> Result<(), FieldError> {
    check_len(field, text, 1, 2_000)?;
    if !text.contains("{link}") && !text.contains("{code}") {
        return Err(FieldError::new(field, "must contain {link} or {code}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each text rule of the settings, at its edge: the field named, the
    /// value one past the limit refused and the value at it accepted.
    #[test]
    fn text_rules_are_enforced_at_their_edges() {
        let refused = |patch: Value| Settings::default().patched(&patch).unwrap_err().field;
        let accepted = |patch: Value| Settings::default().patched(&patch).unwrap();
        // Logos: an http(s) URL of at most 2000 characters.
        let logo = |len: usize| format!("https://x.test/{}", "a".repeat(len - 15));
        accepted(json!({"branding": {"logo_url": logo(2_000)}}));
        accepted(json!({"branding": {"logo_url": "http://x.test/l.png"}}));
        assert_eq!(refused(json!({"branding": {"logo_url": logo(2_001)}})), "branding.logo_url");
        assert_eq!(refused(json!({"branding": {"logo_url": "ftp://x.test/l.png"}})), "branding.logo_url");
        // Templates must carry the code.
        assert_eq!(refused(json!({"templates": {"sms": "no code here"}})), "templates.sms");
        // Locale keys are tags, and at most 100 of them.
        accepted(json!({"templates": {"locales": {"pt-BR": {"sms": "{code}"}, "es": {}}}}));
        for bad in ["e", "toolongtag1", "pt-", "pt_BR", "p t"] {
            let patch = json!({"templates": {"locales": {bad: {}}}});
            assert_eq!(refused(patch), "templates.locales", "{bad}");
        }
        let many: serde_json::Map<String, Value> = (0..101).map(|i| (format!("l{i:03}"), json!({}))).collect();
        assert_eq!(refused(json!({"templates": {"locales": many}})), "templates.locales");
        let hundred: serde_json::Map<String, Value> = (0..100).map(|i| (format!("l{i:03}"), json!({}))).collect();
        accepted(json!({"templates": {"locales": hundred}}));
        // A locale's own texts follow the same rules.
        let field = refused(json!({"templates": {"locales": {"es": {"voice": "sin código"}}}}));
        assert_eq!(field, "templates.locales.es.voice");
        let long_subject = "s".repeat(201);
        let field = refused(json!({"templates": {"locales": {"es": {"email_subject": long_subject}}}}));
        assert_eq!(field, "templates.locales.es.email_subject");
        // A caller text needs a link or a code; an empty one is refused.
        accepted(json!({"templates": {"caller": "{link}"}}));
        accepted(json!({"templates": {"caller": "{code}"}}));
        assert_eq!(refused(json!({"templates": {"caller": "call us"}})), "templates.caller");
        assert_eq!(refused(json!({"templates": {"caller": ""}})), "templates.caller");
        let field = refused(json!({"templates": {"locales": {"fr": {"caller": "rien"}}}}));
        assert_eq!(field, "templates.locales.fr.caller");
    }

    /// Allowed countries are `*` or alpha-2 codes; a number's country is
    /// allowed when listed or under `*`; the request's country comes first.
    #[test]
    fn countries_are_listed_allowed_and_chosen() {
        let refused = |patch: Value| Settings::default().patched(&patch).unwrap_err().field;
        for bad in [json!(["us"]), json!(["USA"]), json!(["U1"])] {
            assert_eq!(refused(json!({"geo": {"allowed_countries": bad}})), "geo.allowed_countries");
        }
        let listed = Settings::default().patched(&json!({"geo": {"allowed_countries": ["GB", "DE"]}})).unwrap();
        assert!(listed.country_allowed("GB") && listed.country_allowed("DE"));
        assert!(!listed.country_allowed("US"));
        assert!(Settings::default().country_allowed("US"), "the default allows every country");
        let tenant = Settings::default().patched(&json!({"geo": {"default_country": "GB"}})).unwrap();
        assert_eq!(tenant.number_country(None).unwrap().map(|c| c.as_str().to_owned()), Some("GB".into()));
        assert_eq!(tenant.number_country(Some("US")).unwrap().map(|c| c.as_str().to_owned()), Some("US".into()));
        assert_eq!(Settings::default().number_country(None).unwrap(), None);
        assert_eq!(tenant.number_country(Some("usa")).unwrap_err().field, "default_country");
    }

    #[test]
    fn defaults_are_valid_and_match_api_md() {
        let s = Settings::default();
        s.validate().unwrap();
        let doc = serde_json::to_value(&s).unwrap();
        assert_eq!(
            doc["otp"],
            json!({"code_length": 6, "ttl_s": 600, "max_check_attempts": 5, "max_sends": 5, "send_window_s": 600, "resend_cooldown_s": 30})
        );
        assert_eq!(doc["lockout"], json!({"threshold": 10, "duration_s": 900}));
        assert_eq!(doc["geo"], json!({"allowed_countries": ["*"], "default_country": null}));
        assert_eq!(doc["caller_verification"], json!({"time_allowed_s": 60, "channel": "sms"}));
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let s = Settings::default().patched(&json!({"otp": {"code_length": 8}})).unwrap();
        assert_eq!(s.otp.code_length, 8);
        assert_eq!(s.otp.ttl_s, 600);
        assert_eq!(s.lockout, LockoutSettings::default());
    }

    #[test]
    fn null_resets_a_member_to_its_default() {
        let s = Settings::default().patched(&json!({"branding": {"logo_url": "https://x.test/l.png"}})).unwrap();
        assert_eq!(s.branding.logo_url.as_deref(), Some("https://x.test/l.png"));
        let s = s.patched(&json!({"branding": {"logo_url": null}})).unwrap();
        assert_eq!(s.branding.logo_url, None);
    }

    #[test]
    fn bounds_are_enforced_with_the_field_named() {
        let cases = [
            (json!({"otp": {"code_length": 3}}), "otp.code_length"),
            (json!({"otp": {"code_length": 11}}), "otp.code_length"),
            (json!({"otp": {"ttl_s": 29}}), "otp.ttl_s"),
            (json!({"otp": {"ttl_s": 86401}}), "otp.ttl_s"),
            (json!({"otp": {"max_check_attempts": 0}}), "otp.max_check_attempts"),
            (json!({"otp": {"max_check_attempts": 21}}), "otp.max_check_attempts"),
            (json!({"geo": {"allowed_countries": ["usa"]}}), "geo.allowed_countries"),
            (json!({"geo": {"default_country": "ZZ"}}), "geo.default_country"),
            (json!({"templates": {"sms": "no code here"}}), "templates.sms"),
            (json!({"caller_verification": {"channel": "fax"}}), "caller_verification.channel"),
            (json!({"otp": {"code_length": "six"}}), "otp.code_length"),
            (json!({"otp": {"colour": 1}}), "otp.colour"),
            (json!({"nonsense": true}), "nonsense"),
            (json!({"otp": null, "lockout": 3}), "lockout"),
        ];
        for (patch, field) in cases {
            let err = Settings::default().patched(&patch).unwrap_err();
            assert_eq!(err.field, field, "{patch}: {}", err.message);
        }
    }

    #[test]
    fn the_edges_of_each_range_are_allowed() {
        for patch in [
            json!({"otp": {"code_length": 4, "ttl_s": 30, "max_check_attempts": 1}}),
            json!({"otp": {"code_length": 10, "ttl_s": 86400, "max_check_attempts": 20}}),
        ] {
            Settings::default().patched(&patch).unwrap();
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7386_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [{"b": "c"}]});
        merge_patch(&mut doc, &json!({"a": [1]}));
        assert_eq!(doc, json!({"a": [1]}));
    }
}
