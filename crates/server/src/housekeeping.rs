//! Background upkeep on every server process: drops the hourly send
//! counters of the fraud limits once their hour is long past. Deleting
//! the same old rows from several processes is harmless.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vouchsafe_core::clock::{Clock, to_unix_ms};
use vouchsafe_core::fraud::BUCKET_MS;
use vouchsafe_core::store::Store;

const EVERY: Duration = Duration::from_secs(600);

pub async fn run(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    loop {
        // Counters of the current and the previous hour are still read.
        let before = to_unix_ms(clock.now()) - 2 * BUCKET_MS;
        match store.prune_send_counters(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "old send counters dropped"),
            Err(e) => tracing::warn!(error = %e, "could not prune send counters"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
