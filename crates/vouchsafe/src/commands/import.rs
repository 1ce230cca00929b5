//! `authenticators import`: TOTP and HOTP tokens from another system, one
//! `USER_ID,otpauth://…` per line. The whole file is checked before
//! anything is written, so a bad line (reported by number, never with its
//! secret), a user named twice for one token type, or — without
//! `--replace` — a user who already has an active token of that type
//! imports nothing; then tokens are sealed with the master key and written
//! in batches of one transaction each. The statement that inserts refuses
//! to replace an active token too, so one confirmed meanwhile is kept.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use vouchsafe_core::audit::AuditEntry;
use vouchsafe_core::authenticator::AuthenticatorKind;
use vouchsafe_core::authenticator::import::{authenticator, parse_line};
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::otp::OtpKind;
use vouchsafe_core::store::{ImportMode, ImportOutcome, StoreError, TenantStore, UserStore};

use super::open_store_and_key;
use crate::config::Config;
use crate::system_clock::SystemClock;
use vouchsafe_core::clock::Clock;

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

fn kind_of(kind: OtpKind) -> AuthenticatorKind {
    match kind {
        OtpKind::Totp { .. } => AuthenticatorKind::Totp,
        OtpKind::Hotp { .. } => AuthenticatorKind::Hotp,
    }
}

/// Fails, naming the earliest line, if any token would replace its user's
/// active one: the users are asked about a batch at a time, one read each.
async fn refuse_active(
    store: &dyn UserStore,
    tenant: &TenantId,
    tokens: &HashMap<(String, AuthenticatorKind), usize>,
) -> anyhow::Result<()> {
    let users: Vec<String> = tokens.keys().map(|(user, _)| user.clone()).collect::<HashSet<_>>().into_iter().collect();
    let mut first_refused: Option<(usize, String, AuthenticatorKind)> = None;
    for chunk in users.chunks(BATCH) {
        for (user, kind) in store.active_authenticators_among(tenant, chunk).await? {
            let Some(&number) = tokens.get(&(user.clone(), kind)) else { continue };
            if first_refused.as_ref().is_none_or(|(first, ..)| number < *first) {
                first_refused = Some((number, user, kind));
            }
        }
    }
    match first_refused {
        Some((number, user, kind)) => bail!(
            "line {number}: user {user:?} already has an active {} token; nothing was imported \
             (give --replace to replace such tokens)",
            kind.as_str()
        ),
        None => Ok(()),
    }
}

pub async fn import(config: &Config, tenant: &str, file: &Path, mode: ImportMode, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    // Each user's token of each type, and the line that names it.
    let mut tokens: HashMap<(String, AuthenticatorKind), usize> = HashMap::new();
    for line in lines(file)? {
        let (number, text) = line?;
        let (user, uri) = parse_line(number, &text)?;
        let kind = kind_of(uri.kind);
        if let Some(first) = tokens.insert((user.clone(), kind), number) {
            bail!("line {number}: user {user:?} already has a {} token on line {first}", kind.as_str());
        }
    }
    let total = tokens.len();
    let (store, master) = open_store_and_key(config).await?;
    let tenant = match store.tenant_by_name(tenant).await {
        Err(StoreError::NotFound) => bail!("no tenant named {tenant:?}"),
        other => other?,
    };
    if mode == ImportMode::KeepActive {
        refuse_active(&*store, &tenant.id, &tokens).await?;
    }
    drop(tokens);
    let sealer = master.sealer();
    let mut batch = Vec::with_capacity(BATCH);
    let mut numbers = Vec::with_capacity(BATCH);
    let mut imported = 0;
    let mut lines = lines(file)?.peekable();
    while let Some(line) = lines.next() {
        let (number, text) = line?;
        let (user, uri) = parse_line(number, &text)?;
        let now = SystemClock.now();
        batch.push(authenticator(&tenant.id, &user, &uri, &sealer, now).map_err(anyhow::Error::msg)?);
        numbers.push(number);
        if batch.len() == BATCH || lines.peek().is_none() {
            let audit = AuditEntry::new(
                "cli",
                "authenticators.imported",
                format!("{} authenticators", batch.len()),
                "imported",
                now,
            );
            match store.import_authenticators(&tenant.id, &batch, mode, now, &audit).await? {
                ImportOutcome::Imported(n) => imported += n,
                ImportOutcome::WouldReplace { index } => bail!(
                    "line {}: its user's {} token was confirmed during the import; {imported} tokens before \
                     line {} were imported, none after",
                    numbers[index],
                    batch[index].kind.as_str(),
                    numbers[0]
                ),
            }
            batch.clear();
            numbers.clear();
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
