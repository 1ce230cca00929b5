//! `init`, `tenants create` and `keys create`: bootstrap without the API.

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use vouchsafe_core::api_key::{KeyError, SecretHasher, issue};
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::role::Role;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{ApiKeyStore, StoreError, TenantStore};
use vouchsafe_core::tenant::{DEFAULT_TENANT, Tenant};
use vouchsafe_store::SqlStore;

use super::open_store_and_key;
use crate::config::Config;
use crate::system_clock::SystemClock;
use vouchsafe_core::clock::Clock;

/// Creates the schema, the tenant `default` (unless it exists) and an admin key.
pub async fn init(config: &Config, json: bool) -> anyhow::Result<()> {
    let (store, master) = open_store_and_key(config).await?;
    let (tenant, created) = match store.tenant_by_name(DEFAULT_TENANT).await {
        Ok(tenant) => (tenant, false),
        Err(StoreError::NotFound) => (insert_tenant(&store, DEFAULT_TENANT).await?, true),
        Err(e) => return Err(e.into()),
    };
    let (key_id, secret) = insert_key(&store, &tenant, Role::Admin, "init", &SecretHasher::new(&master)).await?;
    if json {
        println!(
            "{}",
            json!({"tenant_id": tenant.id.as_str(), "account_sid": tenant.account_sid.as_str(), "key_id": key_id, "secret": secret})
        );
    } else {
        let what = if created { "Created" } else { "Found existing" };
        println!("{what} tenant \"{}\" ({}, account {}).", tenant.name, tenant.id, tenant.account_sid.as_str());
        println!("Database: {}", config.database.redacted());
        println!("Admin API key {key_id}; its secret is shown only now:");
        println!();
        println!("    {secret}");
        println!();
        println!("Use it as: Authorization: Bearer {secret}");
    }
    store.close().await;
    Ok(())
}

pub async fn create_tenant(config: &Config, name: &str, json: bool) -> anyhow::Result<()> {
    // The key too: the tenant's first audit event is keyed.
    let (store, _) = open_store_and_key(config).await?;
    let tenant = insert_tenant(&store, name).await?;
    if json {
        println!("{}", json!({"tenant_id": tenant.id.as_str(), "account_sid": tenant.account_sid.as_str()}));
    } else {
        println!("Created tenant \"{}\" ({}, account {}).", tenant.name, tenant.id, tenant.account_sid.as_str());
    }
    store.close().await;
    Ok(())
}

pub async fn create_key(
    config: &Config,
    tenant: &str,
    role: &str,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let role = Role::parse(role).ok_or_else(|| anyhow!("--role must be admin, agent or webhook, not {role:?}"))?;
    let (store, master) = open_store_and_key(config).await?;
    let tenant = match store.tenant_by_name(tenant).await {
        Err(StoreError::NotFound) => {
            bail!("no tenant named {tenant:?}; create it with `vouchsafe tenants create {tenant}`")
        }
        other => other?,
    };
    let (key_id, secret) = insert_key(&store, &tenant, role, name.unwrap_or(""), &SecretHasher::new(&master)).await?;
    if json {
        println!(
            "{}",
            json!({"key_id": key_id, "secret": secret, "role": role.as_str(), "tenant_id": tenant.id.as_str()})
        );
    } else {
        println!(
            "Created {} key {key_id} for tenant \"{}\"; its secret is shown only now:",
            role.as_str(),
            tenant.name
        );
        println!();
        println!("    {secret}");
    }
    store.close().await;
    Ok(())
}

async fn insert_tenant(store: &SqlStore, name: &str) -> anyhow::Result<Tenant> {
    let (tenant, service) = Tenant::new(name, SystemClock.now()).map_err(|e| anyhow!("tenant name: {}", e.message))?;
    let audit = AuditEntry::success("cli", "tenant.created", tenant.id.as_str(), tenant.created_at);
    match store.create_tenant(&tenant, &service, &Settings::default(), &audit).await {
        Ok(()) => Ok(tenant),
        Err(StoreError::Conflict(_)) => bail!("a tenant named {name:?} exists already"),
        Err(e) => Err(e).context("creating the tenant"),
    }
}

/// Stores a new key and returns its id and (only) secret.
async fn insert_key(
    store: &SqlStore,
    tenant: &Tenant,
    role: Role,
    name: &str,
    hasher: &SecretHasher,
) -> anyhow::Result<(String, String)> {
    let (new, secret) = issue(&tenant.id, role, name, hasher, SystemClock.now()).map_err(|e| match e {
        KeyError::Name(e) => anyhow!("--name {}", e.message),
        KeyError::Crypto(e) => anyhow!(e),
    })?;
    let audit = AuditEntry::success("cli", "api_key.created", new.key.id.as_str(), new.key.created_at);
    store.create_api_key(&new, &audit).await.context("storing the API key")?;
    Ok((new.key.id.to_string(), secret.expose().to_owned()))
}
