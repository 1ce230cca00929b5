//! Failover between the providers of a channel: lowest priority first; on
//! an error or a timeout the next one is tried. A provider that keeps
//! failing is skipped for a while (a circuit breaker per tenant and
//! provider, in this process) so sends do not wait on a dead provider's
//! timeout every time; when its time is up it gets one trial send, and a
//! success closes the breaker. If every provider is skipped, they are
//! tried anyway: a message is worth more than the time saved.
//!
//! Metrics: sends by channel/provider type/outcome, provider latency by
//! type, and breakers opened. Provider names are tenants' words, so they
//! are never labels (a tenant could grow the series without bound).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use vouchsafe_core::clock::Clock;
use vouchsafe_core::provider::{Credential, ProviderConfig};

use crate::outbound::OutboundClient;
use crate::provider::{OutgoingMessage, ProviderError};
use crate::providers;

/// Opens a provider's credential by name. Failover calls it only for the
/// provider it is about to try, so the secrets of providers a send never
/// reaches are never opened.
pub type OpenCredential<'a> =
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Credential, String>> + Send + 'a>> + Sync + 'a;

/// One provider that did not take the message, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    pub provider: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        provider: String,
        provider_message_id: Option<String>,
        tried: Vec<Tried>,
    },
    /// Every provider failed (or there was none for the channel).
    Failed {
        tried: Vec<Tried>,
    },
}

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    pub failures: u32,
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { failures: 3, open_for: Duration::from_secs(30) }
    }
}

/// Past this many failing providers, breakers that are not open are
/// forgotten (their failure counts start again).
const MAX_BREAKERS: usize = 10_000;

#[derive(Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<OffsetDateTime>,
}

pub struct Failover {
    client: OutboundClient,
    clock: Arc<dyn Clock>,
    policy: BreakerPolicy,
    breakers: Mutex<HashMap<String, Breaker>>,
}

fn breaker_key(config: &ProviderConfig) -> String {
    format!("{}/{}", config.tenant_id, config.name)
}

impl Failover {
    pub fn new(client: OutboundClient, clock: Arc<dyn Clock>, policy: BreakerPolicy) -> Self {
        Self { client, clock, policy, breakers: Mutex::new(HashMap::new()) }
    }

    fn is_open(&self, config: &ProviderConfig, now: OffsetDateTime) -> bool {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers.get(&breaker_key(config)).and_then(|b| b.open_until).is_some_and(|until| now < until)
    }

    fn record(&self, config: &ProviderConfig, ok: bool) {
        let now = self.clock.now();
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            // A healthy provider needs no entry: the map holds only
            // providers failing now, so deleted ones do not pile up.
            breakers.remove(&breaker_key(config));
            return;
        }
        if breakers.len() >= MAX_BREAKERS {
            breakers.retain(|_, b| b.open_until.is_some_and(|until| now < until));
        }
        let breaker = breakers.entry(breaker_key(config)).or_default();
        {
            breaker.consecutive_failures += 1;
            if breaker.consecutive_failures >= self.policy.failures {
                if breaker.open_until.is_none_or(|until| until <= now) {
                    tracing::warn!(provider = %config.name, "provider keeps failing; skipping it for a while");
                    metrics::counter!("vouchsafe_provider_circuit_opened_total", "provider_type" => config.kind().as_str())
                        .increment(1);
                }
                breaker.open_until = Some(now + self.policy.open_for);
            }
        }
    }

    /// Sends through the first provider that takes the message.
    /// `candidates` are the tenant's enabled providers of the channel in
    /// priority order. A provider whose credential does not open is passed
    /// over (and named in `tried`) without counting against its breaker:
    /// the provider did not fail, its configuration did.
    pub async fn send(
        &self,
        candidates: &[ProviderConfig],
        open: &OpenCredential<'_>,
        message: &OutgoingMessage,
    ) -> Outcome {
        let now = self.clock.now();
        let (ready, skipped): (Vec<&ProviderConfig>, Vec<&ProviderConfig>) =
            candidates.iter().partition(|c| !self.is_open(c, now));
        for c in &skipped {
            metrics::counter!("vouchsafe_provider_sends_total", "channel" => message.channel.as_str(),
                "provider_type" => c.kind().as_str(), "outcome" => "skipped")
            .increment(1);
        }
        let order = if ready.is_empty() { skipped } else { ready };
        let mut tried = Vec::new();
        for config in order {
            let credential = match &config.credential {
                None => None,
                Some(name) => match open(name.clone()).await {
                    Ok(credential) => Some(credential),
                    Err(e) => {
                        tracing::error!(provider = %config.name, error = %e, "cannot open the provider's credential; trying the next");
                        tried.push(Tried { provider: config.name.clone(), error: format!("credential {name}: {e}") });
                        continue;
                    }
                },
            };
            let provider = providers::build(config, credential, &self.client);
            let started = Instant::now();
            let result = match tokio::time::timeout(config.timeout(), provider.send(message)).await {
                Ok(result) => result,
                Err(_) => Err(ProviderError("timed out".into())),
            };
            metrics::histogram!("vouchsafe_provider_latency_seconds", "provider_type" => config.kind().as_str())
                .record(started.elapsed().as_secs_f64());
            let outcome = if result.is_ok() { "sent" } else { "failed" };
            metrics::counter!("vouchsafe_provider_sends_total", "channel" => message.channel.as_str(),
                "provider_type" => config.kind().as_str(), "outcome" => outcome)
            .increment(1);
            self.record(config, result.is_ok());
            match result {
                Ok(accepted) => {
                    return Outcome::Accepted {
                        provider: config.name.clone(),
                        provider_message_id: accepted.provider_message_id,
                        tried,
                    };
                }
                Err(e) => {
                    tracing::warn!(provider = %config.name, channel = message.channel.as_str(), to = %message.to_masked,
                        error = %e, "provider failed; trying the next");
                    tried.push(Tried { provider: config.name.clone(), error: e.0 });
                }
            }
        }
        Outcome::Failed { tried }
    }
}
