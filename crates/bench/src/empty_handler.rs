//! The reference the check rate is held against: an axum server whose one
//! handler does nothing, measured in the same run, on the same machine and
//! with the same load generator as vouchsafe. The issue quotes about 88 000
//! req/s for it on these machines, but a shared VM moves by a fifth between
//! runs, so a ratio is only fair against a reference measured alongside.
//!
//! The benchmark starts itself again with `--serve-empty-handler`, so the
//! reference runs in its own process, as vouchsafe does, with the same
//! multi-threaded tokio runtime (one worker per core).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::Context;

use crate::load::{self, Measurement};
use crate::server::KillOnDrop;

/// Serves `GET /` → `200` with an empty body on 127.0.0.1, an ephemeral
/// port, which it prints on stdout; runs until killed.
pub fn serve() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        let app = axum::Router::new().route("/", axum::routing::get(|| async {}));
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// Starts the reference server and loads it like `/healthz`.
pub async fn measure(concurrency: usize, seconds: u64) -> anyhow::Result<Measurement> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve-empty-handler")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the empty handler")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let reference = KillOnDrop(child);
    let mut port = String::new();
    BufReader::new(stdout).read_line(&mut port)?;
    let target = load::Target {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port.trim().parse()?)),
        pid: Some(reference.0.id()),
    };
    let request = load::get("/", None);
    let make: load::MakeRequest = Arc::new(move |_| Some(request.clone()));
    let label = "GET / on an empty axum handler (reference)";
    let measured = load::run(label, &target, make, None, concurrency, seconds).await;
    drop(reference);
    Ok(measured)
}
