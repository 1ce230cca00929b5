//! `audit verify`: checks a tenant's audit chain with the master key, from
//! the database directly (no server needed), and prints the head hash for
//! the operator to record elsewhere. Exits 1 when the chain is broken, so
//! it can run from cron or a monitoring check.

use anyhow::bail;
use serde_json::json;
use vouchsafe_core::audit::{AuditKey, verify_stored_chain};
use vouchsafe_core::store::{StoreError, TenantStore};

use super::open_store_and_key;
use crate::config::Config;

pub async fn verify(config: &Config, tenant: &str, json: bool) -> anyhow::Result<()> {
    let (store, master) = open_store_and_key(config).await?;
    let tenant = match store.tenant_by_name(tenant).await {
        Err(StoreError::NotFound) => bail!("no tenant named {tenant:?}"),
        other => other?,
    };
    let check = verify_stored_chain(store.as_ref(), &tenant.id, &AuditKey::new(&master)).await?;
    store.close().await;
    if json {
        println!(
            "{}",
            json!({"valid": check.valid, "count": check.count, "first_bad_seq": check.first_bad_seq,
                "head_hash": check.head_hash})
        );
    } else if check.valid {
        println!("The audit chain of tenant \"{}\" is intact: {} events.", tenant.name, check.count);
        if let Some(head) = &check.head_hash {
            println!("Head hash (record it elsewhere): {head}");
        }
    } else {
        println!(
            "The audit chain of tenant \"{}\" is BROKEN at event {}: it was changed, removed or moved.",
            tenant.name,
            check.first_bad_seq.unwrap_or_default()
        );
    }
    if !check.valid {
        std::process::exit(1);
    }
    Ok(())
}
