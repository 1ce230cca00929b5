//! The webhook dispatcher: a background task on every server process that
//! claims due messages from the outbox (a lease per message, so several
//! processes on one database never make the same attempt at once), signs
//! them per Standard Webhooks, POSTs them, and moves each message on:
//! delivered, retried later (with jitter), dead-lettered at the end of the
//! schedule, or ended with its endpoint disabled on `410 Gone`.
//!
//! Each attempt runs on its own, up to `IN_FLIGHT_PER_PROCESS` at once:
//! a slow endpoint delays only its own attempts, and the claim frees a slot
//! to the next due message as soon as any attempt ends. Claims keep each
//! endpoint and tenant to its fair share (see `core::webhook`). Outcomes
//! go to one recorder, which writes whatever has finished meanwhile in one
//! transaction. Nothing is kept in memory that the outbox does not hold,
//! so a crash at any point loses no event: an unfinished lease simply runs
//! out and the message is tried again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use vouchsafe_core::clock::Clock;
use vouchsafe_core::crypto::Sealer;
use vouchsafe_core::ids::{AttemptId, WebhookEndpointId};
use vouchsafe_core::store::{Attempt, DueMessage, Finished, MessageOutcome, SealedSecrets, Store};
use vouchsafe_core::webhook::{IN_FLIGHT_PER_PROCESS, RetrySchedule, WebhookSecret, random_unit, signature_header};

use vouchsafe_delivery::outbound::OutboundClient;

use crate::engine::webhooks::secret_context;

#[cfg(test)]
mod tests;

/// Dispatcher settings (boot configuration).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub schedule: RetrySchedule,
    /// Per attempt; a slower endpoint counts as failed.
    pub timeout: Duration,
    /// How often an idle dispatcher looks for due messages.
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Outcomes written per transaction, at most.
const RECORD_BATCH: usize = 256;

/// After an attempt ends or an event is queued, how long the dispatcher
/// waits for more of either before claiming: under load, one claim then
/// fills many slots instead of one claim (a query over every enabled
/// endpoint) per finished attempt or per event; a webhook waits 3 ms more.
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

impl Dispatcher {
    /// Runs until `stop` turns true, then lets the attempts in flight end
    /// and records them.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT_PER_PROCESS));
        let freed = Arc::new(Notify::new());
        let (done, outcomes) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(this.store.clone(), outcomes, freed.clone()));
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
            let free = slots.available_permits();
            let claimed = if free > 0 { this.start_due(free, &slots, &freed, &done).await } else { 0 };
            if claimed == free && free > 0 {
                continue; // There may be more due: claim again at once.
            }
            tokio::select! {
                () = tokio::time::sleep(this.config.poll_interval) => {}
                () = this.wake.notified() => tokio::time::sleep(CLAIM_COALESCE).await,
                // An attempt ended, or its outcome was written (its lease
                // ended): a message held back (all slots busy, or a share
                // full) may be claimable now.
                () = freed.notified() => tokio::time::sleep(CLAIM_COALESCE).await,
                _ = stop.changed() => {}
            }
        }
        // Every slot back means every attempt has ended and been sent on.
        let _ = slots.acquire_many(IN_FLIGHT_PER_PROCESS as u32).await;
        drop(done);
        let _ = recorder.await;
        tracing::info!("webhook dispatcher stopped");
    }

    /// Claims up to `free` due messages and starts an attempt for each, on
    /// a task of its own holding a slot. Returns how many it claimed.
    async fn start_due(
        self: &Arc<Self>,
        free: usize,
        slots: &Arc<Semaphore>,
        freed: &Arc<Notify>,
        done: &mpsc::UnboundedSender<Finished>,
    ) -> usize {
        let now = self.clock.now();
        // The lease outlasts the attempt's timeout, so it only runs out when
        // this process died or stalled.
        let lease_until = now + self.config.timeout + Duration::from_secs(30);
        let due = match self.store.claim_due_messages(now, lease_until, free as i64).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim webhook messages");
                return 0;
            }
        };
        let claimed = due.len();
        for message in due {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Cannot happen (this loop is the only taker); the lease
                // runs out and the message is tried again.
                break;
            };
            let (this, freed, done) = (self.clone(), freed.clone(), done.clone());
            tokio::spawn(async move {
                if let Some(finished) = this.deliver(message).await {
                    let _ = done.send(finished);
                }
                drop(slot);
                freed.notify_one();
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

/// Writes attempt outcomes as they come, each write taking whatever has
/// finished meanwhile (one durable commit for many attempts under load).
/// A written outcome ends its message's lease, which is what the shares
/// count: `leases_ended` tells the claiming loop, which may have found an
/// endpoint or tenant at its share while those leases were still held.
async fn record(store: Arc<dyn Store>, mut outcomes: mpsc::UnboundedReceiver<Finished>, leases_ended: Arc<Notify>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while outcomes.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        match store.finish_messages(&batch).await {
            Ok(()) => leases_ended.notify_one(),
            // Nothing is lost: the leases run out and the messages are tried again.
            Err(e) => tracing::error!(
                error = %e, messages = batch.len(), "cannot record webhook attempts; they will be retried"
            ),
        }
        batch.clear();
    }
}
