//! `serve`: run the HTTP server until SIGTERM or SIGINT, then let requests
//! in flight finish and close the database cleanly.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use vouchsafe_server::{Application, ConnectionLimits, ServerConfig};

use super::open_store_and_key;
use crate::config::Config;
use crate::system_clock::SystemClock;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let (store, master) = open_store_and_key(&config).await?;
    let server_config = ServerConfig {
        listen: config.listen,
        public_url: config.public_url.clone(),
        allow_private_targets: config.allow_private_targets,
        webhooks: config.webhooks.clone(),
        connections: ConnectionLimits::default(),
    };
    let app = Application::build(server_config, store.clone(), Arc::new(SystemClock), &master)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    match store.describe().await {
        Ok(described) => tracing::info!(database = %described, "database settings"),
        Err(e) => tracing::warn!(error = %e, "cannot read the database settings"),
    }
    tracing::info!(
        listen = %app.local_addr(),
        public_url = %app.public_url(),
        database = %config.database.redacted(),
        engine = store.engine(),
        startup_ms = started.elapsed().as_millis() as u64,
        "vouchsafe is ready"
    );
    // The console provider is a development stand-in (see core's
    // `provider::send_order`): say once, loudly, where its messages go.
    tracing::warn!(
        target: "vouchsafe::console_provider",
        "a channel whose only enabled provider is `console` has its messages (codes and caller links) written to \
         this log, not sent; add a real provider for production (README, 'Providers')"
    );
    app.run_until(shutdown_signal()).await.context("server failed")?;
    tracing::info!("stopped accepting requests; requests in flight finished");
    store.close().await;
    tracing::info!("database closed; bye");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
