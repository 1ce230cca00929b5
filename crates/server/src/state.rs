//! What every handler shares: storage, the clock, derived keys and boot
//! configuration. Passed as axum state, never global.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Notify;
use vouchsafe_core::api_key::SecretHasher;
use vouchsafe_core::audit::AuditKey;
use vouchsafe_core::challenge::TokenSigner;
use vouchsafe_core::clock::Clock;
use vouchsafe_core::crypto::{MasterKey, Sealer};
use vouchsafe_core::store::Store;
use vouchsafe_core::verification::CodeHasher;
use vouchsafe_delivery::failover::{BreakerPolicy, Failover};

use crate::dispatcher::WebhookConfig;
use crate::engine::slow_hash::SlowHasher;
use vouchsafe_delivery::outbound::OutboundClient;

/// Boot settings of the HTTP server (validated by the binary).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base of the absolute links the server writes; `None` uses
    /// `http://` + the bound address.
    pub public_url: Option<String>,
    /// Lets tenants point webhooks and providers at private addresses
    /// (development and tests only).
    pub allow_private_targets: bool,
    pub webhooks: WebhookConfig,
    /// Header-read timeout and the cap on open connections.
    pub connections: crate::listener::ConnectionLimits,
}

pub struct AppState {
    pub config: ServerConfig,
    pub public_url: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub key_hasher: SecretHasher,
    pub sealer: Sealer,
    pub code_hasher: CodeHasher,
    /// Checks the audit chain's HMACs (the store makes them with the same key).
    pub audit_key: AuditKey,
    /// The WebAuthn relying party (the public URL's host), if it has one.
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Signs the result tokens of approved challenges.
    pub token_signer: TokenSigner,
    /// The providers' failover and circuit breakers (per process).
    pub failover: Failover,
    /// For tenant-given URLs, under the outbound-address rule.
    pub outbound: OutboundClient,
    /// Wakes this process's dispatcher when an event was just queued.
    pub wake_dispatcher: Arc<Notify>,
    /// The threads that run Argon2id (recovery codes), behind their gate.
    pub slow_hasher: SlowHasher,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        public_url: String,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master_key: &MasterKey,
    ) -> Self {
        let outbound = OutboundClient::new(config.allow_private_targets, config.webhooks.timeout);
        let failover = Failover::new(outbound.clone(), clock.clone(), BreakerPolicy::default());
        Self {
            code_hasher: CodeHasher::new(master_key),
            audit_key: AuditKey::new(master_key),
            token_signer: TokenSigner::new(master_key),
            webauthn: crate::engine::passkeys::relying_party(&public_url),
            failover,
            config,
            public_url,
            store,
            clock,
            key_hasher: SecretHasher::new(master_key),
            sealer: master_key.sealer(),
            outbound,
            wake_dispatcher: Arc::new(Notify::new()),
            slow_hasher: SlowHasher::for_this_machine(),
        }
    }
}

pub type SharedState = Arc<AppState>;
