//! The vouchsafe HTTP server: the surfaces over the engine
//! (`vouchsafe_engine`, every use case over the storage traits of
//! `vouchsafe_core`, reached here as `crate::engine`) — the
//! `/v1` API and the Twilio-compatible `/v2` (`api`), the HTML pages and
//! agent console (`pages`), authentication and roles (`auth`), the
//! operational endpoints, request ids, body limits and the one error shape
//! of `docs/API.md` (`error`). The webhook dispatcher and housekeeping run
//! beside them.
//!
//! Handlers parse, authorize, call the engine and map its outcome; the
//! rules live in the engine and in `vouchsafe_core`. See
//! `docs/ARCHITECTURE.md`. This crate must not contain SQL, read the system
//! clock (it is handed a `Clock`) or put a secret in a log line or error
//! body; its modules import one another without cycles (a test checks).

mod api;
mod auth;
mod dispatcher;
mod error;
mod extract;
mod housekeeping;
mod layers;
mod listener;
mod metrics;
mod pages;
mod state;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use vouchsafe_core::clock::Clock;
use vouchsafe_core::crypto::MasterKey;
use vouchsafe_core::store::Store;
/// The use cases, in a crate of their own (`crates/engine`): every module
/// here reaches them as `crate::engine`.
use vouchsafe_engine as engine;

pub use dispatcher::WebhookConfig;
/// Webhook endpoint creation, for the CLI (`vouchsafe webhooks create`).
pub use engine::webhooks::{EndpointError, NewEndpoint, create_endpoint};
pub use error::ApiError;
pub use listener::ConnectionLimits;
pub use state::{AppState, ServerConfig};

/// A bound, ready-to-run server. Binding happens in [`Application::build`]
/// so callers (and tests, with port 0) learn the real address first.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    local_addr: SocketAddr,
    public_url: String,
    limits: ConnectionLimits,
    dispatcher: dispatcher::Dispatcher,
}

impl Application {
    pub async fn build(
        config: ServerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master_key: &MasterKey,
    ) -> std::io::Result<Self> {
        // Install the metrics recorder before the first request is counted.
        let _ = metrics::handle();
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}"));
        let limits = config.connections;
        let state = Arc::new(AppState::new(config, public_url.clone(), store, clock, master_key));
        let dispatcher = dispatcher::Dispatcher {
            store: state.store.clone(),
            clock: state.clock.clone(),
            sealer: state.sealer.clone(),
            client: state.outbound.clone(),
            config: state.config.webhooks.clone(),
            wake: state.wake_dispatcher.clone(),
        };
        let router = api::router(state.clone())
            .merge(pages::router(state))
            .fallback(|| async { ApiError::NotFound })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
        let router = layers::apply(router);
        Ok(Self { listener, router, local_addr, public_url, limits, dispatcher })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Base of the absolute links this server writes.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Serves (and dispatches webhooks) until `shutdown` completes, then
    /// stops accepting connections, lets requests in flight finish, and
    /// lets the dispatcher finish the attempts it has started.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let upkeep = tokio::spawn(housekeeping::run(
            self.dispatcher.store.clone(),
            self.dispatcher.clock.clone(),
            stopped.clone(),
        ));
        let chainer = tokio::spawn(housekeeping::chain_audit(self.dispatcher.store.clone(), stopped.clone()));
        let dispatcher = tokio::spawn(self.dispatcher.run(stopped));
        let served = listener::serve(self.listener, self.router, self.limits, shutdown).await;
        let _ = stop.send(true);
        let _ = dispatcher.await;
        let _ = upkeep.await;
        // What is still pending is chained by the next read or the next server.
        let _ = chainer.await;
        served
    }
}
