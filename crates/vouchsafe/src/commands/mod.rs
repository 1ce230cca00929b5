//! One function per command. Commands that touch the database open it,
//! migrate it (idempotent and cheap) and check the master key first.

mod admin;
mod audit;
mod import;
mod serve;
mod totp;
mod webhooks;

use std::sync::Arc;

use anyhow::Context;
use vouchsafe_core::audit::{AuditKey, pin_entry};
use vouchsafe_core::crypto::MasterKey;
use vouchsafe_core::store::AuditStore;
use vouchsafe_core::store::ImportMode;
use vouchsafe_store::SqlStore;

use crate::cli::{
    AuditCommand, AuthenticatorsCommand, Cli, Command, KeysCommand, TenantsCommand, TotpCommand, WebhooksCommand,
};
use crate::config::{self, Config, LogFormat};
use crate::system_clock::SystemClock;
use vouchsafe_core::clock::Clock;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Totp(TotpCommand::Code(args)) = &cli.command {
        // Needs no configuration, database or key: it must work anywhere.
        return totp::code(args);
    }
    let (listen, public_url) = match &cli.command {
        Command::Serve(args) => (args.listen.as_deref(), args.public_url.as_deref()),
        _ => (None, None),
    };
    let config = config::load(&cli, listen, public_url)?;
    init_logging(&config, matches!(cli.command, Command::Serve(_)));
    match cli.command {
        Command::Init(flag) => admin::init(&config, flag.json).await,
        Command::Serve(_) => serve::serve(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("database {} is up to date", config.database.redacted());
            store.close().await;
            Ok(())
        }
        Command::Tenants(TenantsCommand::Create { name, json }) => {
            admin::create_tenant(&config, &name, json.json).await
        }
        Command::Keys(KeysCommand::Create { tenant, role, name, json }) => {
            admin::create_key(&config, &tenant, &role, name.as_deref(), json.json).await
        }
        Command::Authenticators(AuthenticatorsCommand::Import { tenant, file, replace, json }) => {
            let mode = if replace { ImportMode::Replace } else { ImportMode::KeepActive };
            import::import(&config, &tenant, &file, mode, json.json).await
        }
        Command::Audit(AuditCommand::Verify { tenant, json }) => audit::verify(&config, &tenant, json.json).await,
        Command::Webhooks(WebhooksCommand::Create { tenant, url, events, description, json }) => {
            webhooks::create(&config, &tenant, &url, events.as_deref(), description.as_deref(), json.json).await
        }
        Command::Totp(_) => Ok(()),
    }
}

/// Logs go to stderr. Commands other than `serve` log only warnings by
/// default so their output stays what the user asked for.
fn init_logging(config: &Config, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { config.log.clone() } else { "warn".to_owned() };
    // SECURITY: webauthn-rs logs a malformed credential whole at ERROR (30
    // KB in, a 150 KB line out); the engine logs a bounded summary instead.
    let filter = EnvFilter::try_new(&default)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("webauthn_rs_core=off".parse().unwrap_or_default())
        .add_directive("webauthn_rs=off".parse().unwrap_or_default());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens and migrates the database.
async fn open_store(config: &Config) -> anyhow::Result<Arc<SqlStore>> {
    let store = SqlStore::connect(&config.database).await.context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(Arc::new(store))
}

/// Opens the database and the master key that belongs to it, and keys the
/// audit chain with it. A chain still ending on an event from before
/// chains were keyed gets `audit.keyed` appended, whose HMAC pins it.
async fn open_store_and_key(config: &Config) -> anyhow::Result<(Arc<SqlStore>, MasterKey)> {
    let store = open_store(config).await?;
    let key = crate::master_key::load_or_create(&config.master_key, store.as_ref()).await?;
    store.use_audit_key(AuditKey::new(&key))?;
    let pinned = store.pin_unkeyed_chains(&pin_entry(SystemClock.now())).await.context("keying the audit chains")?;
    if pinned > 0 {
        tracing::info!(chains = pinned, "audit chains written before keying are now pinned by a keyed event");
    }
    Ok((store, key))
}
