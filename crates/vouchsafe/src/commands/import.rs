//! `authenticators import`: TOTP and HOTP tokens from another system, one
//! `USER_ID,otpauth://…` per line. The whole file is checked before
//! anything is written, so a bad line (reported by number, never with its
//! secret) imports nothing; then tokens are sealed with the master key and
//! written in batches of one transaction each.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use time::OffsetDateTime;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::import::{authenticator, parse_line};
use vouchsafe_core::store::{StoreError, TenantStore, UserStore};

use super::open_store_and_key;
use crate::config::Config;

/// Tokens per transaction: big enough that the commit's fsync is shared by
/// many rows, small enough that the server's writers wait only briefly.
const BATCH: usize = 2_000;

fn lines(file: &Path) -> anyhow::Result<impl Iterator<Item = std::io::Result<(usize, String)>>> {
    let reader = BufReader::new(std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?);
    Ok(reader
        .lines()
        .enumerate()
        .map(|(i, line)| line.map(|l| (i + 1, l)))
        .filter(|l| l.as_ref().map_or(true, |(_, text)| !text.trim().is_empty() && !text.starts_with('#'))))
}

pub async fn import(config: &Config, tenant: &str, file: &Path, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut total = 0;
    for line in lines(file)? {
        let (number, text) = line?;
        parse_line(number, &text)?;
        total += 1;
    }
    let (store, master) = open_store_and_key(config).await?;
    let tenant = match store.tenant_by_name(tenant).await {
        Err(StoreError::NotFound) => bail!("no tenant named {tenant:?}"),
        other => other?,
    };
    let sealer = master.sealer();
    let mut batch = Vec::with_capacity(BATCH);
    let mut imported = 0;
    let mut lines = lines(file)?.peekable();
    while let Some(line) = lines.next() {
        let (number, text) = line?;
        let (user, uri) = parse_line(number, &text)?;
        let now = OffsetDateTime::now_utc();
        batch.push(authenticator(&tenant.id, &user, &uri, &sealer, now).map_err(anyhow::Error::msg)?);
        if batch.len() == BATCH || lines.peek().is_none() {
            let audit = AuditEntry::new(
                "cli",
                "authenticators.imported",
                format!("{} authenticators", batch.len()),
                "imported",
                now,
            );
            imported += store.import_authenticators(&tenant.id, &batch, now, &audit).await?;
            batch.clear();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if json {
        println!("{}", json!({"imported": imported, "seconds": seconds}));
    } else {
        println!("Imported {imported} of {total} authenticators into tenant \"{}\" in {seconds:.1} s.", tenant.name);
    }
    store.close().await;
    Ok(())
}
