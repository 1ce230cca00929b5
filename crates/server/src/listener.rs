//! The accept loop: HTTP/1 and HTTP/2 connections served by hyper, with
//! the limits that keep a client from holding the server's sockets.
//!
//! SECURITY: a connection must send a whole request head within
//! `header_read` (a request line sent half, or a byte every few seconds,
//! is closed when it is up; so is a connection that sends nothing), and
//! at most `max_connections` are open at once, below the process's file
//! descriptor limit: past it a new connection is closed at once, so the
//! listener keeps accepting (and the process keeps its descriptors for
//! the database and providers) while an attacker holds idle sockets.
//! Request bodies have their own read timeout (`layers`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long a client may take, and how many connections may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// To send a whole request head, from the moment the server waits for
    /// one (a new connection, or a kept-alive one after its last answer).
    pub header_read: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { header_read: Duration::from_secs(10), max_connections: 10_000 }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the connections' requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(limits.header_read);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _addr): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or similar: wait a little rather
                    // than spin; the connections' timeouts free them.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics::counter!("vouchsafe_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(|req: Request<Incoming>| req.map(Body::new));
        let stream = FirstByteDeadline::new(stream, limits.header_read);
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let _open = permit;
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection that must send its first byte before a deadline. hyper's
/// header-read timer starts with the first byte of a head, and the
/// protocol detection before it (HTTP/1 or HTTP/2) waits without one, so
/// a connection that sends nothing at all is closed here.
struct FirstByteDeadline {
    stream: TcpStream,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl FirstByteDeadline {
    fn new(stream: TcpStream, within: Duration) -> Self {
        Self { stream, deadline: Some(Box::pin(tokio::time::sleep(within))) }
    }
}

impl AsyncRead for FirstByteDeadline {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if read.is_ready() {
            if buf.filled().len() > before {
                self.deadline = None;
            }
            return read;
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        read
    }
}

impl AsyncWrite for FirstByteDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
