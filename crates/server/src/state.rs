//! What every handler shares: the [`Engine`] and the boot configuration.
//! Passed as axum state, never global.

use std::net::SocketAddr;
use std::sync::Arc;

use vouchsafe_core::clock::Clock;
use vouchsafe_core::crypto::MasterKey;
use vouchsafe_core::store::Store;
use vouchsafe_delivery::outbound::OutboundClient;

use crate::dispatcher::WebhookConfig;
use crate::engine::Engine;

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

/// What every handler shares: the engine and the boot configuration.
/// Handlers reach the engine's parts through it (`state.clock`, …).
pub struct AppState {
    pub config: ServerConfig,
    pub engine: Engine,
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
        Self { engine: Engine::new(public_url, store, clock, master_key, outbound), config }
    }
}

/// The state is the engine plus boot configuration: handlers use the
/// engine's parts directly and hand `&state` to engine functions.
impl std::ops::Deref for AppState {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

pub type SharedState = Arc<AppState>;
