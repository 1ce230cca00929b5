//! `webhooks create`: registers a webhook endpoint from the command line,
//! through the same engine function as `POST /v1/webhook-endpoints` (the
//! outbound-address rule, the event filter, a sealed secret, the audit
//! entry), so an admin guide needs no curl for it.

use anyhow::{anyhow, bail};
use serde_json::json;
use vouchsafe_core::store::{StoreError, TenantStore};
use vouchsafe_delivery::outbound::OutboundClient;
use vouchsafe_server::{EndpointError, NewEndpoint, create_endpoint};

use super::open_store_and_key;
use crate::config::Config;
use crate::system_clock::SystemClock;
use vouchsafe_core::clock::Clock;

pub async fn create(
    config: &Config,
    tenant: &str,
    url: &str,
    events: Option<&[String]>,
    description: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let (store, master) = open_store_and_key(config).await?;
    let tenant = match store.tenant_by_name(tenant).await {
        Err(StoreError::NotFound) => bail!("no tenant named {tenant:?}"),
        other => other?,
    };
    let outbound = OutboundClient::new(config.allow_private_targets, config.webhooks.timeout);
    let new = NewEndpoint { tenant_id: &tenant.id, actor: "cli", url, events, description };
    let per_tenant = config.webhooks.endpoints_per_tenant;
    let created =
        create_endpoint(&outbound, store.as_ref(), &master.sealer(), SystemClock.now(), per_tenant, new).await;
    store.close().await;
    let (endpoint, secret) = created.map_err(|e| match e {
        EndpointError::Invalid(f) => anyhow!("--{}: {}", f.field, f.message),
        EndpointError::Store(e) => e.into(),
        EndpointError::LimitReached(n) => anyhow!(
            "tenant {:?} has {n} webhook endpoints, as many as it may (webhook_endpoints_per_tenant); delete one first",
            tenant.name
        ),
        EndpointError::Internal(cause) => anyhow!(vouchsafe_core::error::chain(&*cause)),
    })?;
    if json {
        println!(
            "{}",
            json!({"id": endpoint.id.as_str(), "secret": secret.expose().as_str(), "url": endpoint.url,
                "events": endpoint.events.names()})
        );
    } else {
        println!("Created webhook endpoint {} for {} (tenant \"{}\").", endpoint.id, endpoint.url, tenant.name);
        println!("Its signing secret is shown only now:");
        println!();
        println!("    {}", secret.expose().as_str());
        println!();
    }
    Ok(())
}
