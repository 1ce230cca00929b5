//! The webhook dispatcher: a background task on every server process that
//! claims due messages from the outbox (a lease per message, so several
//! processes on one database never make the same attempt at once), signs
//! them per Standard Webhooks, POSTs them, and moves each message on:
//! delivered, retried later (with jitter), dead-lettered at the end of the
//! schedule, or ended with its endpoint disabled on `410 Gone`.
//!
//! Each attempt runs on its own, up to `IN_FLIGHT_PER_PROCESS` at once:
//! a slow endpoint delays only its own attempts. Claims keep each endpoint
//! and tenant to its fair share (see `core::webhook`), counted from the
//! leases in the outbox. One loop does all the writing: whatever attempts
//! have ended meanwhile, it records in one transaction, and that same
//! transaction claims messages for the free slots (`finish_and_claim`).
//! Recording an outcome ends its lease, so a slot is reused in the write
//! that frees it, with no second write or wait in between: that cycle is
//! what bounds one endpoint's rate, at 16 attempts in flight. Outcomes
//! whose write failed are kept to be written again while their leases
//! last. Nothing else is kept in memory that the outbox does not hold, so
//! a crash at any point loses no event: an unfinished lease simply runs
//! out and the message is tried again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use vouchsafe_core::clock::{Clock, to_unix_ms};
use vouchsafe_core::crypto::Sealer;
use vouchsafe_core::ids::{AttemptId, WebhookEndpointId};
use vouchsafe_core::store::{Attempt, DueMessage, Finished, MessageOutcome, SealedSecrets, Store};
use vouchsafe_core::webhook::{
    DEFAULT_ENDPOINTS_PER_TENANT, IN_FLIGHT_PER_PROCESS, RetrySchedule, WebhookSecret, random_unit, signature_header,
};

use vouchsafe_delivery::outbound::OutboundClient;

use crate::engine::webhooks::secret_context;

/// Webhook settings (boot configuration): the dispatcher's, and how many
/// endpoints a tenant may make.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub schedule: RetrySchedule,
    /// Per attempt; a slower endpoint counts as failed.
    pub timeout: Duration,
    /// How often an idle dispatcher looks for due messages.
    pub poll_interval: Duration,
    /// Endpoints a tenant may have (see [`DEFAULT_ENDPOINTS_PER_TENANT`]).
    pub endpoints_per_tenant: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            endpoints_per_tenant: DEFAULT_ENDPOINTS_PER_TENANT,
        }
    }
}

/// Outcomes written per transaction, at most.
const RECORD_BATCH: usize = 256;

/// After an attempt ends or an event is queued, how long the dispatcher
/// waits for more of either before its write: under load, one write then
/// records many outcomes and fills many slots, instead of one write (and a
/// claim, a query over every enabled endpoint) per attempt or per event; a
/// webhook waits 3 ms more. A wait after an attempt ends stops early once
/// no other attempt is in flight: nothing more can end, and every slot
/// idles until the write (see [`gather_outcomes`]).
const CLAIM_COALESCE: Duration = Duration::from_millis(3);

/// The secrets to sign with now: the current one, and the previous one
/// while its rotation grace period lasts.
pub fn open_secrets(
    sealer: &Sealer,
    endpoint: &WebhookEndpointId,
    sealed: &SealedSecrets,
    now: OffsetDateTime,
) -> Option<Vec<WebhookSecret>> {
    let context = secret_context(endpoint);
    let mut secrets = vec![WebhookSecret::from_bytes(sealer.open(&sealed.current, &context).ok()?.to_vec())];
    if let Some((previous, until)) = &sealed.previous
        && *until > now
        && let Ok(bytes) = sealer.open(previous, &context)
    {
        secrets.push(WebhookSecret::from_bytes(bytes.to_vec()));
    }
    Some(secrets)
}

/// The Standard Webhooks headers of one attempt.
pub fn signed_headers(
    secrets: &[WebhookSecret],
    msg_id: &str,
    now: OffsetDateTime,
    body: &str,
) -> Vec<(&'static str, String)> {
    let timestamp = now.unix_timestamp();
    vec![
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature_header(secrets, msg_id, timestamp, body)),
    ]
}

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub sealer: Sealer,
    pub client: OutboundClient,
    pub config: WebhookConfig,
    pub wake: Arc<Notify>,
}

/// How often the outbox-depth gauge is refreshed (a `COUNT(*)`), however
/// busy the dispatcher is.
const DEPTH_EVERY: Duration = Duration::from_secs(1);

/// Collects the outcomes of attempts that end within [`CLAIM_COALESCE`],
/// and stops as soon as none is left in flight (every slot back, and its
/// outcome received) or a write's worth is in hand. On a fast endpoint a
/// batch of attempts ends within a millisecond or two; waiting out the
/// rest of the 3 ms only held their slots idle, and the slots, not the
/// write, bounded a tenant's drain.
async fn gather_outcomes(
    ended: &mut mpsc::UnboundedReceiver<Option<Finished>>,
    outcomes: &mut Vec<Finished>,
    slots: &Semaphore,
) {
    let deadline = tokio::time::Instant::now() + CLAIM_COALESCE;
    // An attempt gives its slot back just before it sends its outcome, so
    // "none in flight" is all slots back and nothing left to receive.
    while outcomes.len() < RECORD_BATCH && !(slots.available_permits() == IN_FLIGHT_PER_PROCESS && ended.is_empty()) {
        tokio::select! {
            received = ended.recv() => match received {
                Some(outcome) => outcomes.extend(outcome),
                None => return,
            },
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// After a write that failed, keeps the outcomes to write again with the
/// next one (at the latest a poll interval later), as long as their leases
/// last. Dropped, an outcome would leave its message leased until the lease
/// ran out (the attempt's timeout and 30 s more) and then sent again,
/// although its receiver had it: one failed write (a connection lost, a
/// pool that timed out) held a drain up for that long. Once a lease has run
/// out, the message may be claimed again, and the outcome is dropped: its
/// message is sent again, as after a crash. Writing an outcome again is
/// safe even if the failed write committed (see the store's `finish_all`).
fn keep_while_leased(outcomes: &mut Vec<Finished>, now: OffsetDateTime) {
    let now_ms = to_unix_ms(now);
    let before = outcomes.len();
    // The claim's own rule: a message is claimable again once its lease is
    // before now (`locked_until < now`).
    outcomes.retain(|f| f.message.lease >= now_ms);
    if outcomes.len() < before {
        tracing::warn!(
            dropped = before - outcomes.len(),
            "webhook attempts not recorded before their leases ran out; their messages will be sent again"
        );
    }
}

impl Dispatcher {
    /// Runs until `stop` turns true, then lets the attempts in flight end
    /// and records them.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT_PER_PROCESS));
        // Each attempt sends its outcome here once its slot is free again
        // (`None`: it could not even be signed, so there is nothing to write).
        let (done, mut ended) = mpsc::unbounded_channel::<Option<Finished>>();
        let mut outcomes = Vec::with_capacity(RECORD_BATCH);
        let mut depth_at: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            if depth_at.is_none_or(|at| at.elapsed() >= DEPTH_EVERY) {
                if let Ok(depth) = this.store.outbox_depth().await {
                    metrics::gauge!("vouchsafe_webhook_outbox_depth").set(depth as f64);
                }
                depth_at = Some(Instant::now());
            }
            while outcomes.len() < RECORD_BATCH
                && let Ok(outcome) = ended.try_recv()
            {
                outcomes.extend(outcome);
            }
            let free = slots.available_permits();
            let claimed = this.finish_and_start(&mut outcomes, free, &slots, &done).await;
            if (free > 0 && claimed == free) || !ended.is_empty() {
                continue; // There may be more due, or more outcomes to write.
            }
            tokio::select! {
                () = tokio::time::sleep(this.config.poll_interval) => {}
                () = this.wake.notified() => tokio::time::sleep(CLAIM_COALESCE).await,
                // An attempt ended: its outcome is to be written, which
                // ends its lease, and its slot can take a message that was
                // held back (all slots busy, or a share full).
                Some(outcome) = ended.recv() => {
                    outcomes.extend(outcome);
                    gather_outcomes(&mut ended, &mut outcomes, &slots).await;
                }
                _ = stop.changed() => {}
            }
        }
        // Every slot back means every attempt has ended and been sent on.
        let _ = slots.acquire_many(IN_FLIGHT_PER_PROCESS as u32).await;
        drop(done);
        while let Some(outcome) = ended.recv().await {
            outcomes.extend(outcome);
        }
        for batch in outcomes.chunks(RECORD_BATCH) {
            if let Err(e) = this.store.finish_messages(batch).await {
                tracing::error!(error = %e, messages = batch.len(), "cannot record webhook attempts; they will be retried");
            }
        }
        tracing::info!("webhook dispatcher stopped");
    }

    /// Writes the `outcomes` of ended attempts (which ends their leases)
    /// and, in the same write, claims up to `free` due messages, then
    /// starts an attempt for each on a task of its own holding a slot.
    /// Returns how many it claimed. `outcomes` is emptied once written,
    /// and kept if the write failed (see [`keep_while_leased`]).
    async fn finish_and_start(
        self: &Arc<Self>,
        outcomes: &mut Vec<Finished>,
        free: usize,
        slots: &Arc<Semaphore>,
        done: &mpsc::UnboundedSender<Option<Finished>>,
    ) -> usize {
        if outcomes.is_empty() && free == 0 {
            return 0;
        }
        let now = self.clock.now();
        // The lease outlasts the attempt's timeout, so it only runs out when
        // this process died or stalled.
        let lease_until = now + self.config.timeout + Duration::from_secs(30);
        let due = match self.store.finish_and_claim(outcomes, now, lease_until, free as i64).await {
            Ok(due) => {
                outcomes.clear();
                due
            }
            Err(e) => {
                tracing::warn!(error = %e, outcomes = outcomes.len(), "cannot record webhook attempts or claim more; will try again");
                // Read the clock again: a failed write may have waited long
                // (a pool's timeout is 10 s).
                keep_while_leased(outcomes, self.clock.now());
                Vec::new()
            }
        };
        let claimed = due.len();
        for message in due {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Cannot happen (this loop is the only taker); the lease
                // runs out and the message is tried again.
                break;
            };
            let (this, done) = (self.clone(), done.clone());
            tokio::spawn(async move {
                let outcome = this.deliver(message).await;
                drop(slot);
                let _ = done.send(outcome);
            });
        }
        claimed
    }

    /// Sends one message; `None` if it could not even be signed.
    async fn deliver(&self, message: DueMessage) -> Option<Finished> {
        let now = self.clock.now();
        let Some(secrets) = open_secrets(&self.sealer, &message.endpoint_id, &message.secrets, now) else {
            tracing::error!(endpoint_id = %message.endpoint_id, "cannot open the endpoint's secret; is the master key right?");
            return None;
        };
        let headers = signed_headers(&secrets, message.event_id.as_str(), now, &message.body);
        let started = Instant::now();
        let sent = self.client.post(&message.url, headers, message.body.clone()).await;
        let latency = started.elapsed();
        let (status_code, error) = match &sent {
            Ok(response) => {
                let code = response.status().as_u16();
                (Some(code), (!response.status().is_success()).then(|| format!("HTTP {code}")))
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let at = self.clock.now();
        let outcome = match status_code {
            Some(code) if (200..300).contains(&code) => MessageOutcome::Delivered,
            Some(410) => MessageOutcome::Gone,
            _ => match self.config.schedule.next_attempt_at(message.attempts, at, random_unit()) {
                Some(next) => MessageOutcome::RetryAt(next),
                None => MessageOutcome::Dead,
            },
        };
        let attempt = Attempt {
            id: AttemptId::generate(),
            message_id: message.id.clone(),
            tenant_id: message.tenant_id.clone(),
            endpoint_id: message.endpoint_id.clone(),
            event_id: message.event_id.clone(),
            event_type: message.event_type.as_str().to_owned(),
            attempt: message.attempts,
            at,
            status_code,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            error,
            outcome: outcome.as_str().to_owned(),
        };
        metrics::counter!("vouchsafe_webhook_deliveries_total", "outcome" => outcome.as_str()).increment(1);
        metrics::histogram!("vouchsafe_webhook_delivery_duration_seconds").record(latency.as_secs_f64());
        match outcome {
            MessageOutcome::Dead => tracing::warn!(
                tenant_id = %message.tenant_id, endpoint_id = %message.endpoint_id, event_id = %message.event_id,
                attempts = message.attempts, "webhook dead-lettered: retry schedule used up"
            ),
            MessageOutcome::Gone => tracing::warn!(
                tenant_id = %message.tenant_id, endpoint_id = %message.endpoint_id, "endpoint answered 410 Gone; disabled"
            ),
            _ => tracing::debug!(event_id = %message.event_id, outcome = outcome.as_str(), "webhook attempt"),
        }
        Some(Finished { message, outcome, attempt })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `in_flight` attempts out, as the loop would have them: each holds a
    /// slot until it sends its outcome (`None`: nothing to write, which is
    /// enough to count here).
    fn attempts(in_flight: u32) -> (Arc<Semaphore>, Vec<tokio::sync::OwnedSemaphorePermit>) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT_PER_PROCESS));
        let held = (0..in_flight).map(|_| slots.clone().try_acquire_owned().unwrap()).collect();
        (slots, held)
    }

    /// The last attempt in flight ended: the write need not wait.
    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_once_when_nothing_is_left_in_flight() {
        let (slots, _) = attempts(0);
        let (_done, mut ended) = mpsc::unbounded_channel::<Option<Finished>>();
        let started = tokio::time::Instant::now();
        gather_outcomes(&mut ended, &mut Vec::new(), &slots).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    /// An attempt still in flight is waited for until it ends, and no
    /// longer than CLAIM_COALESCE when it does not.
    #[tokio::test(start_paused = true)]
    async fn the_wait_lasts_until_the_last_attempt_ends_or_the_coalescing_time() {
        let (slots, mut held) = attempts(1);
        let (done, mut ended) = mpsc::unbounded_channel::<Option<Finished>>();
        let started = tokio::time::Instant::now();
        let slot = held.pop().unwrap();
        let ends = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(slot);
            done.send(None).unwrap();
            done
        });
        gather_outcomes(&mut ended, &mut Vec::new(), &slots).await;
        assert_eq!(started.elapsed(), Duration::from_millis(1), "it ended after 1 ms");

        let (slots, _still_held) = attempts(1);
        let _done = ends.await.unwrap();
        let started = tokio::time::Instant::now();
        gather_outcomes(&mut ended, &mut Vec::new(), &slots).await;
        assert_eq!(started.elapsed(), CLAIM_COALESCE, "one never ends");
    }
}
