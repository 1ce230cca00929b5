//! Boot configuration, in two stages. First the layers, each a [`RawConfig`]
//! of optional strings: defaults ← TOML file ← `VOUCHSAFE_*` environment
//! (every key also as `VOUCHSAFE_<KEY>_FILE`, read from a file) ← flags.
//! Then one validation into [`Config`] with typed values. Unknown keys in
//! the file and unknown `VOUCHSAFE_*` variables are errors, not ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use vouchsafe_core::webhook::{DEFAULT_ENDPOINTS_PER_TENANT, MAX_ENDPOINTS_PER_TENANT, RetrySchedule};
use vouchsafe_server::WebhookConfig;
use vouchsafe_store::{DatabaseUrl, SqliteSync};

use crate::cli::Cli;

/// Declares every configuration key once: the [`RawConfig`] member (its
/// TOML key), the environment variable (`VOUCHSAFE_` + its upper case), the
/// overlay and the setter all come from this list, so a key cannot be known
/// to one and missing from another.
macro_rules! config_keys {
    ($($key:ident),* $(,)?) => {
        /// One layer. Field names are the TOML keys; env names are their upper case.
        #[derive(Debug, Default, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawConfig {
            $(
                #[serde(default, deserialize_with = "scalar_text")]
                pub $key: Option<String>,
            )*
        }

        impl RawConfig {
            /// Every key, as written in the TOML file.
            const KEYS: &[&str] = &[$(stringify!($key)),*];

            /// `self` with every member `over` sets replaced.
            fn overlay(self, over: RawConfig) -> RawConfig {
                RawConfig { $($key: over.$key.or(self.$key),)* }
            }

            /// The member of the key whose environment name is `env_key`
            /// (`DATABASE_URL`), if there is one.
            fn slot(&mut self, env_key: &str) -> Option<&mut Option<String>> {
                $(
                    if env_key.eq_ignore_ascii_case(stringify!($key)) && env_key.bytes().all(|b| !b.is_ascii_lowercase()) {
                        return Some(&mut self.$key);
                    }
                )*
                None
            }
        }
    };
}

config_keys! {
    listen,
    database_url,
    public_url,
    master_key,
    master_key_file,
    sqlite_synchronous,
    allow_private_targets,
    log,
    log_format,
    webhook_retry_schedule_s,
    webhook_timeout_s,
    webhook_poll_interval_ms,
    webhook_endpoints_per_tenant,
}

/// TOML writes `true` and `10`; the environment writes `"true"` and
/// `"10"`. All become text here and are validated once, in [`validate`].
fn scalar_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|v| match v {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Text(t) => t,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// `VOUCHSAFE_MASTER_KEY`: base64 text.
    Inline(String),
    /// A key file (created by `init`/`serve` on a fresh database).
    File(PathBuf),
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
    pub public_url: Option<String>,
    pub master_key: MasterKeySource,
    pub allow_private_targets: bool,
    pub log: String,
    pub log_format: LogFormat,
    pub webhooks: WebhookConfig,
}

/// The environment as a layer. `vars` is passed in so tests need not touch
/// the process environment.
pub fn env_layer(vars: &BTreeMap<String, String>) -> anyhow::Result<(RawConfig, Option<PathBuf>)> {
    let mut layer = RawConfig::default();
    let mut config_file = None;
    for (name, value) in vars {
        let Some(key) = name.strip_prefix("VOUCHSAFE_") else { continue };
        if key == "CONFIG" {
            config_file = Some(PathBuf::from(value));
        } else if let Some(slot) = layer.slot(key) {
            *slot = Some(value.clone());
        } else if let Some(base) = key.strip_suffix("_FILE").filter(|b| *b != "MASTER_KEY")
            && let Some(slot) = layer.slot(base)
        {
            // VOUCHSAFE_<KEY>_FILE: the value is read from the file (Docker
            // and Kubernetes secrets). MASTER_KEY_FILE is its own key: the
            // key file path, which is read later and created when missing.
            let text = std::fs::read_to_string(value).with_context(|| format!("{name}: cannot read {value}"))?;
            *slot = Some(text.trim().to_owned());
        } else {
            bail!("unknown environment variable {name}; known: VOUCHSAFE_CONFIG, {}", known_env_names());
        }
    }
    Ok((layer, config_file))
}

fn known_env_names() -> String {
    RawConfig::KEYS.iter().map(|k| format!("VOUCHSAFE_{}", k.to_uppercase())).collect::<Vec<_>>().join(", ")
}

fn file_layer(path: &Path) -> anyhow::Result<RawConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message()))
}

/// Layers everything for `cli` and validates it.
pub fn load(cli: &Cli, listen_flag: Option<&str>, public_url_flag: Option<&str>) -> anyhow::Result<Config> {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let (env, env_config_file) = env_layer(&vars)?;
    let file = match cli.config.clone().or(env_config_file) {
        Some(path) => file_layer(&path)?,
        None => RawConfig::default(),
    };
    let flags = RawConfig {
        listen: listen_flag.map(str::to_owned),
        database_url: cli.database_url.clone(),
        public_url: public_url_flag.map(str::to_owned),
        ..RawConfig::default()
    };
    validate(defaults().overlay(file).overlay(env).overlay(flags))
}

fn defaults() -> RawConfig {
    RawConfig {
        listen: Some("127.0.0.1:8080".into()),
        database_url: Some("sqlite://vouchsafe.db".into()),
        master_key_file: Some("vouchsafe.key".into()),
        sqlite_synchronous: Some("full".into()),
        allow_private_targets: Some("false".into()),
        log: Some("info".into()),
        log_format: Some("text".into()),
        webhook_retry_schedule_s: Some("0,5,300,1800,7200,18000,36000,50400,72000,86400".into()),
        webhook_timeout_s: Some("10".into()),
        webhook_poll_interval_ms: Some("1000".into()),
        webhook_endpoints_per_tenant: Some(DEFAULT_ENDPOINTS_PER_TENANT.to_string()),
        ..RawConfig::default()
    }
}

pub fn validate(raw: RawConfig) -> anyhow::Result<Config> {
    let text = |v: Option<String>| v.unwrap_or_default();
    let listen: SocketAddr = text(raw.listen)
        .parse()
        .map_err(|_| anyhow::anyhow!("listen: must be an address with a port, such as 127.0.0.1:8080"))?;
    let sync = SqliteSync::parse(&text(raw.sqlite_synchronous))
        .ok_or_else(|| anyhow::anyhow!("sqlite_synchronous: must be full or normal"))?;
    let database =
        DatabaseUrl::parse(&text(raw.database_url), sync).map_err(|e| anyhow::anyhow!("database_url: {e}"))?;
    let public_url = match raw.public_url.filter(|u| !u.trim().is_empty()) {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(url.trim_end_matches('/').to_owned())
        }
        Some(_) => bail!("public_url: must start with http:// or https://"),
        None => None,
    };
    let master_key = match raw.master_key.filter(|k| !k.trim().is_empty()) {
        Some(inline) => MasterKeySource::Inline(inline),
        None => MasterKeySource::File(PathBuf::from(text(raw.master_key_file))),
    };
    let allow_private_targets = match text(raw.allow_private_targets).to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        _ => bail!("allow_private_targets: must be true or false"),
    };
    let log_format = match text(raw.log_format).as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => bail!("log_format: must be text or json"),
    };
    let schedule = RetrySchedule::parse(&text(raw.webhook_retry_schedule_s))
        .ok_or_else(|| anyhow::anyhow!("webhook_retry_schedule_s: must be comma-separated seconds, such as 0,5,300"))?;
    let timeout_s: u64 = text(raw.webhook_timeout_s)
        .parse()
        .ok()
        .filter(|s| (1..=120).contains(s))
        .ok_or_else(|| anyhow::anyhow!("webhook_timeout_s: must be 1 to 120 seconds"))?;
    let poll_ms: u64 = text(raw.webhook_poll_interval_ms)
        .parse()
        .ok()
        .filter(|ms| (10..=60_000).contains(ms))
        .ok_or_else(|| anyhow::anyhow!("webhook_poll_interval_ms: must be 10 to 60000"))?;
    let endpoints_per_tenant: u32 = text(raw.webhook_endpoints_per_tenant)
        .parse()
        .ok()
        .filter(|n| (1..=MAX_ENDPOINTS_PER_TENANT).contains(n))
        .ok_or_else(|| anyhow::anyhow!("webhook_endpoints_per_tenant: must be 1 to {MAX_ENDPOINTS_PER_TENANT}"))?;
    let webhooks = WebhookConfig {
        schedule,
        timeout: std::time::Duration::from_secs(timeout_s),
        poll_interval: std::time::Duration::from_millis(poll_ms),
        endpoints_per_tenant,
    };
    Ok(Config {
        listen,
        database,
        public_url,
        master_key,
        allow_private_targets,
        log: text(raw.log),
        log_format,
        webhooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_sqlite_on_loopback_8080() {
        let config = validate(defaults()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.database, DatabaseUrl::parse("sqlite://vouchsafe.db", SqliteSync::Full).unwrap());
        assert!(matches!(config.master_key, MasterKeySource::File(ref p) if p == Path::new("vouchsafe.key")));
        assert!(!config.allow_private_targets);
    }

    #[test]
    fn layers_override_in_order() {
        let file: RawConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\nallow_private_targets = true\nwebhook_timeout_s = 3",
        )
        .unwrap();
        let (env, _) = env_layer(&vars(&[("VOUCHSAFE_LISTEN", "127.0.0.1:9001"), ("PATH", "/bin")])).unwrap();
        let flags = RawConfig { listen: Some("127.0.0.1:9002".into()), ..RawConfig::default() };
        let merged = defaults().overlay(file.clone()).overlay(env.clone());
        assert_eq!(validate(merged.clone()).unwrap().listen.port(), 9001, "env beats the file");
        assert_eq!(validate(merged.clone()).unwrap().log, "debug", "the file beats defaults");
        assert!(validate(merged.clone()).unwrap().allow_private_targets, "TOML booleans are read");
        assert_eq!(validate(merged.clone()).unwrap().webhooks.timeout.as_secs(), 3, "TOML integers are read");
        assert_eq!(validate(merged.overlay(flags)).unwrap().listen.port(), 9002, "flags beat env");
    }

    /// Each key set through its environment variable lands in the same
    /// member as the same key in the TOML file, and in no other.
    #[test]
    fn every_key_reaches_its_own_member_from_the_environment() {
        for key in RawConfig::KEYS {
            let env_name = format!("VOUCHSAFE_{}", key.to_uppercase());
            let (env, _) = env_layer(&vars(&[(env_name.as_str(), "value")])).unwrap();
            let file: RawConfig = toml::from_str(&format!("{key} = \"value\"")).unwrap();
            assert_eq!(format!("{env:?}"), format!("{file:?}"), "{env_name}");
            assert_ne!(format!("{env:?}"), format!("{:?}", RawConfig::default()), "{env_name} set nothing");
        }
        assert!(env_layer(&vars(&[("VOUCHSAFE_listen", "x")])).is_err(), "environment names are upper case");
    }

    #[test]
    fn unknown_keys_fail_loudly() {
        let err = toml::from_str::<RawConfig>("lisen = \"x\"").unwrap_err();
        assert!(err.message().contains("unknown field"), "{err}");
        let err = env_layer(&vars(&[("VOUCHSAFE_LISEN", "x")])).unwrap_err();
        assert!(err.to_string().contains("VOUCHSAFE_LISEN"), "{err}");
    }

    #[test]
    fn file_variants_read_the_value_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db_url");
        std::fs::write(&path, "postgres://app:pw@db/v\n").unwrap();
        let (env, _) = env_layer(&vars(&[("VOUCHSAFE_DATABASE_URL_FILE", path.to_str().unwrap())])).unwrap();
        assert_eq!(env.database_url.as_deref(), Some("postgres://app:pw@db/v"));
        // MASTER_KEY_FILE names the key file; it is not read here.
        let (env, _) = env_layer(&vars(&[("VOUCHSAFE_MASTER_KEY_FILE", "/nonexistent/key")])).unwrap();
        assert_eq!(env.master_key_file.as_deref(), Some("/nonexistent/key"));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (raw, key) in [
            (RawConfig { listen: Some("localhost".into()), ..defaults() }, "listen"),
            (RawConfig { database_url: Some("mysql://x".into()), ..defaults() }, "database_url"),
            (RawConfig { public_url: Some("ftp://x".into()), ..defaults() }, "public_url"),
            (RawConfig { sqlite_synchronous: Some("off".into()), ..defaults() }, "sqlite_synchronous"),
            (RawConfig { allow_private_targets: Some("maybe".into()), ..defaults() }, "allow_private_targets"),
            (
                RawConfig { webhook_endpoints_per_tenant: Some("0".into()), ..defaults() },
                "webhook_endpoints_per_tenant",
            ),
            (
                RawConfig { webhook_endpoints_per_tenant: Some("1001".into()), ..defaults() },
                "webhook_endpoints_per_tenant",
            ),
        ] {
            let err = validate(raw).err().unwrap().to_string();
            assert!(err.starts_with(key), "{err}");
        }
    }
}
