//! Providers and their credentials, as a tenant configures them (API.md,
//! "Credentials and providers"). Credentials are write-only: they are
//! sealed with the master key before they reach the store and only the
//! delivery code ever opens them. Provider settings are checked here per
//! type, so a provider that is saved can be used.

mod settings;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::channel::Channel;
use crate::field_error::{FieldError, check_range};
use crate::ids::TenantId;
pub use settings::{
    ConsoleSettings, DEFAULT_TIMEOUT_MS, HttpMethod, HttpSettings, ProviderSettings, SmtpSettings, SmtpTls,
    TelesignSettings, TwilioSettings,
};

/// A provider credential in the clear. Wiped on drop; `Debug` shows the
/// type only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Credential {
    Basic { username: String, password: String },
    Bearer { token: String },
    Header { header: String, value: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, ..)", self.kind())
    }
}

impl Credential {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "basic",
            Self::Bearer { .. } => "bearer",
            Self::Header { .. } => "header",
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let nonempty = |field: &str, v: &str, max: usize| {
            if v.is_empty() || v.len() > max {
                Err(FieldError::new(field, format!("must be 1 to {max} characters")))
            } else {
                Ok(())
            }
        };
        match self {
            Self::Basic { username, password } => {
                nonempty("username", username, 1_000)?;
                nonempty("password", password, 4_000)
            }
            Self::Bearer { token } => nonempty("token", token, 8_000),
            Self::Header { header, value } => {
                nonempty("header", header, 100)?;
                if !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return Err(FieldError::new("header", "must be an HTTP header name"));
                }
                nonempty("value", value, 8_000)?;
                if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                    return Err(FieldError::new("value", "must be one line"));
                }
                Ok(())
            }
        }
    }

    /// The context a sealed credential is bound to: moved to another
    /// tenant's or name's row, it no longer opens.
    pub fn seal_context(tenant: &TenantId, name: &str) -> String {
        format!("credential:{tenant}:{name}")
    }
}

/// What the API shows of a credential: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    pub name: String,
    pub kind: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Console,
    Http,
    Twilio,
    Telesign,
    Smtp,
}

impl ProviderKind {
    pub const ALL: [Self; 5] = [Self::Console, Self::Http, Self::Twilio, Self::Telesign, Self::Smtp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Console => "console",
            Self::Http => "http",
            Self::Twilio => "twilio",
            Self::Telesign => "telesign",
            Self::Smtp => "smtp",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The channels this kind of provider can carry.
    pub fn supports(self, channel: Channel) -> bool {
        match self {
            Self::Console | Self::Http => true,
            Self::Twilio | Self::Telesign => channel != Channel::Email,
            Self::Smtp => channel == Channel::Email,
        }
    }
}

/// A provider of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub tenant_id: TenantId,
    pub name: String,
    pub channels: Vec<Channel>,
    /// Lower is tried first.
    pub priority: i32,
    /// Name of the credential it authenticates with.
    pub credential: Option<String>,
    /// Its type and that type's settings.
    pub settings: ProviderSettings,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The built-in provider every tenant starts with.
pub const CONSOLE_PROVIDER: &str = "console";

/// Providers a tenant may have, the console provider among them. Every
/// send reads all of its tenant's providers to choose the order to try
/// them in, so without a bound a tenant's admin could make every one of
/// its sends read as many rows as it liked, on threads every tenant uses.
pub const PROVIDERS_PER_TENANT: u32 = 20;

/// Provider credentials a tenant may have. They are listed whole
/// (`GET /v1/credentials`); a few per provider leaves room to rotate one
/// beside the one in use.
pub const CREDENTIALS_PER_TENANT: u32 = 50;

impl ProviderConfig {
    /// The development default: prints messages to the server log.
    pub fn console(tenant_id: TenantId, now: OffsetDateTime) -> Self {
        Self {
            tenant_id,
            name: CONSOLE_PROVIDER.to_owned(),
            channels: Channel::ALL.to_vec(),
            priority: 1000,
            credential: None,
            settings: ProviderSettings::console(),
            enabled: true,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn kind(&self) -> ProviderKind {
        self.settings.kind()
    }

    /// How long one send may take before failover; settable per provider.
    pub fn timeout(&self) -> std::time::Duration {
        self.settings.timeout()
    }

    /// Checks everything but URLs' reachability (the server checks those
    /// against the outbound-address rule).
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        if self.channels.is_empty() {
            return Err(FieldError::new("channels", "must name at least one channel"));
        }
        if let Some(c) = self.channels.iter().find(|c| !self.kind().supports(**c)) {
            return Err(FieldError::new("channels", format!("{} cannot carry {}", self.kind().as_str(), c.as_str())));
        }
        check_range("priority", self.priority, 0..=100_000)?;
        if let Some(name) = &self.credential {
            validate_name("credential", name)?;
        }
        Ok(())
    }

    /// The URLs in the settings, for the outbound-address check.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        self.settings.urls()
    }
}

/// SECURITY: the providers a message of `channel` may go through, in the
/// order to try them (the list comes sorted by priority). The console
/// provider writes the message (the code, or a caller link) to the
/// server's log; it is a development stand-in, never a fallback: it is
/// kept only when it is the channel's only enabled provider, so when a
/// real provider fails the send fails instead of landing in a log.
pub fn send_order(providers: &[ProviderConfig], channel: Channel) -> Vec<ProviderConfig> {
    let mut usable: Vec<ProviderConfig> =
        providers.iter().filter(|p| p.enabled && p.channels.contains(&channel)).cloned().collect();
    if usable.iter().any(|p| p.kind() != ProviderKind::Console) {
        usable.retain(|p| p.kind() != ProviderKind::Console);
    }
    usable
}

/// Names of credentials and providers: letters, digits, `-`, `_`, `.`.
pub fn validate_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(FieldError::new(field, "must be 1–64 letters, digits, '-', '_' or '.'")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_parse_by_type_and_hide_their_secret() {
        let c: Credential =
            serde_json::from_value(json!({"type": "basic", "username": "AC1", "password": "pw-secret"})).unwrap();
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("pw-secret"));
        assert!(serde_json::from_value::<Credential>(json!({"type": "basic", "username": "u"})).is_err());
        assert!(serde_json::from_value::<Credential>(json!({"type": "magic"})).is_err());
        assert_eq!(format!("{c:?}"), "Credential(basic, ..)");
        let header = Credential::Header { header: "X-Key".into(), value: "a\r\nInjected: 1".into() };
        assert_eq!(header.validate().unwrap_err().field, "value");
    }

    /// Each part of a credential has its bounds; a header credential is
    /// one valid header name and one line of value.
    #[test]
    fn credential_parts_are_bounded_and_headers_are_one_line() {
        let basic =
            |username: &str, password: &str| Credential::Basic { username: username.into(), password: password.into() };
        assert!(basic(&"u".repeat(1_000), &"p".repeat(4_000)).validate().is_ok());
        assert_eq!(basic(&"u".repeat(1_001), "p").validate().unwrap_err().field, "username");
        assert_eq!(basic("", "p").validate().unwrap_err().field, "username");
        assert_eq!(basic("u", &"p".repeat(4_001)).validate().unwrap_err().field, "password");
        assert!(Credential::Bearer { token: "t".repeat(8_000) }.validate().is_ok());
        assert!(Credential::Bearer { token: "t".repeat(8_001) }.validate().is_err());
        let header = |header: &str, value: &str| Credential::Header { header: header.into(), value: value.into() };
        assert!(header("X-Api_Key", "v").validate().is_ok());
        for bad in ["X Key", "X:Key", "", "X-Key\r\n"] {
            assert_eq!(header(bad, "v").validate().unwrap_err().field, "header", "{bad:?}");
        }
        for bad in ["a\rb", "a\nb", ""] {
            assert_eq!(header("X-Key", bad).validate().unwrap_err().field, "value", "{bad:?}");
        }
        let kinds: Vec<_> = [basic("u", "p"), Credential::Bearer { token: "t".into() }, header("X", "v")]
            .iter()
            .map(Credential::kind)
            .collect();
        assert_eq!(kinds, ["basic", "bearer", "header"]);
        let tenant = TenantId::generate();
        assert_ne!(Credential::seal_context(&tenant, "a"), Credential::seal_context(&tenant, "b"));
        assert_ne!(Credential::seal_context(&tenant, "a"), Credential::seal_context(&TenantId::generate(), "a"));
    }

    /// What the server reads of a provider through its config: the send
    /// timeout, and the URLs the outbound-address rule must check.
    #[test]
    fn a_config_gives_its_timeout_and_every_url_to_check() {
        let mut p = ProviderConfig::console(TenantId::generate(), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(p.timeout(), std::time::Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert!(p.urls().is_empty());
        p.settings = ProviderSettings::parse(
            ProviderKind::Http,
            &json!({"url": "https://sms.example/send", "body_template": "{{code}}", "timeout_ms": 2500}),
        )
        .unwrap();
        assert_eq!(p.timeout(), std::time::Duration::from_millis(2500));
        assert_eq!(p.urls(), [("settings.url", "https://sms.example/send")]);
    }

    #[test]
    fn names_are_letters_digits_and_a_little_punctuation() {
        for ok in ["twilio", "eu-west_2.primary", &"a".repeat(64)] {
            assert!(validate_name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "slash/", "ünï", &"a".repeat(65)] {
            assert_eq!(validate_name("name", bad).unwrap_err().field, "name", "{bad}");
        }
        let mut p = ProviderConfig::console(TenantId::generate(), OffsetDateTime::UNIX_EPOCH);
        p.credential = Some("bad name".into());
        assert_eq!(p.validate().unwrap_err().field, "credential");
        p.credential = None;
        p.priority = 100_001;
        assert_eq!(p.validate().unwrap_err().field, "priority");
        p.priority = 100_000;
        p.channels.clear();
        assert_eq!(p.validate().unwrap_err().field, "channels");
    }

    /// The names are what the database stores and the API takes as `type`.
    #[test]
    fn provider_kinds_keep_their_names_and_channels() {
        let names: Vec<_> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["console", "http", "twilio", "telesign", "smtp"]);
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ProviderKind::parse("vonage"), None);
        let carries = |kind: ProviderKind| Channel::ALL.into_iter().filter(|c| kind.supports(*c)).collect::<Vec<_>>();
        assert_eq!(carries(ProviderKind::Twilio), [Channel::Sms, Channel::Voice]);
        assert_eq!(carries(ProviderKind::Telesign), [Channel::Sms, Channel::Voice]);
        assert_eq!(carries(ProviderKind::Smtp), [Channel::Email]);
        assert_eq!(carries(ProviderKind::Http), Channel::ALL);
    }

    #[test]
    fn the_console_provider_is_never_a_fallback() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let tenant = TenantId::generate();
        let console = ProviderConfig::console(tenant.clone(), now);
        let mut twilio = console.clone();
        twilio.name = "twilio".into();
        twilio.settings = ProviderSettings::parse(ProviderKind::Twilio, &json!({"from": "+15005550006"})).unwrap();
        twilio.channels = vec![Channel::Sms, Channel::Voice];
        let names = |list: Vec<ProviderConfig>| list.into_iter().map(|p| p.name).collect::<Vec<_>>();
        let both = vec![twilio.clone(), console.clone()];
        assert_eq!(names(send_order(&both, Channel::Sms)), ["twilio"]);
        assert_eq!(names(send_order(&both, Channel::Email)), ["console"], "the only provider of email");
        twilio.enabled = false;
        assert_eq!(names(send_order(&[twilio, console], Channel::Sms)), ["console"]);
    }

    #[test]
    fn a_provider_may_only_carry_channels_its_type_supports() {
        let mut p = ProviderConfig::console(TenantId::generate(), OffsetDateTime::UNIX_EPOCH);
        p.validate().unwrap();
        p.settings = ProviderSettings::parse(ProviderKind::Smtp, &json!({"host": "h", "from": "a@b"})).unwrap();
        assert_eq!(p.validate().unwrap_err().field, "channels");
        p.channels = vec![Channel::Email];
        p.validate().unwrap();
    }
}
