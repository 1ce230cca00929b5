//! Background upkeep on every server process: ends caller verifications
//! whose time allowed ran out (every second, with their event, so the CRM
//! hears of it without anyone asking; conditional writes make several
//! processes sweeping at once harmless), and drops the hourly send
//! counters of the fraud limits once their hour is long past, console
//! sessions once they expired, and API keys 30 days after their revocation
//! (`REVOKED_KEYS_KEPT_FOR`). Apart, every tenth of a second, it chains
//! the audit entries written since (see the store's audit module): an
//! entry waits for its HMAC that long at most.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vouchsafe_core::api_key::REVOKED_KEYS_KEPT_FOR;
use vouchsafe_core::clock::{Clock, to_unix_ms};
use vouchsafe_core::fraud::BUCKET_MS;
use vouchsafe_core::store::Store;

const EVERY: Duration = Duration::from_secs(600);
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const CHAIN_EVERY: Duration = Duration::from_millis(100);

/// Chains pending audit entries until `stop`.
pub async fn chain_audit(store: Arc<dyn Store>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = store.chain_audit().await {
            tracing::warn!(error = %vouchsafe_core::error::chain(&e), "could not chain audit entries");
        }
        tokio::select! {
            () = tokio::time::sleep(CHAIN_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

pub async fn run(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut pruned_at: Option<std::time::Instant> = None;
    loop {
        match crate::engine::callers::sweep(store.as_ref(), clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "caller verifications expired"),
            Err(e) => tracing::warn!(error = ?e, "could not sweep caller verifications"),
        }
        if pruned_at.is_some_and(|at| at.elapsed() < EVERY) {
            tokio::select! {
                () = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        pruned_at = Some(std::time::Instant::now());
        // Counters of the current and the previous hour are still read.
        let before = to_unix_ms(clock.now()) - 2 * BUCKET_MS;
        match store.prune_send_counters(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "old send counters dropped"),
            Err(e) => tracing::warn!(error = %e, "could not prune send counters"),
        }
        match store.prune_console_sessions(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "expired console sessions dropped"),
            Err(e) => tracing::warn!(error = %e, "could not prune console sessions"),
        }
        match store.prune_revoked_api_keys(clock.now() - REVOKED_KEYS_KEPT_FOR).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "API keys revoked long ago dropped"),
            Err(e) => tracing::warn!(error = %e, "could not prune revoked API keys"),
        }
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
