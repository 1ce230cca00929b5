//! Prometheus metrics. One process-wide recorder (the `metrics` facade is
//! global by design). Every label value comes from a closed set the
//! server owns (route templates, the standard methods, status codes,
//! channels, provider types), never from what a client or a tenant chose:
//! ids, names, phone numbers or anything secret.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds: fine below 10 ms, where the server lives.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// How often recorded latencies are folded into their histograms.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder's handle, installed on first use. `None` only if another
/// recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            metrics::gauge!("vouchsafe_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            start_upkeep(handle.clone());
            Some(handle)
        })
        .as_ref()
}

/// The recorder keeps every latency sample (8 bytes and bookkeeping) until
/// something folds them into the histogram's buckets, and only a scrape of
/// `/metrics` does that by itself: unscraped, memory grew by about 14 bytes
/// per request without end (2.2 MiB per 150,000 requests in the benchmark).
/// This thread folds them in on a timer, for as long as the process lives,
/// like the recorder it serves.
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start the metrics upkeep; latency samples are kept until /metrics is scraped");
    }
}

/// SECURITY: the method as a label from a closed set. Any other token is
/// a valid HTTP method too, and a client could grow `/metrics` without
/// bound by inventing them.
fn method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Counts requests and their latency by method, route template and status
/// (three closed sets: the route is a template of the router's or
/// `unmatched`, the status a number the server chose).
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    record(method, route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// One (method, route, status)'s request counter and latency histogram,
/// kept under its route.
struct Series {
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl Series {
    fn count(&self, seconds: f64) {
        self.requests.increment(1);
        self.duration.record(seconds);
    }
}

thread_local! {
    /// This thread's handles, by route template, then method and status.
    /// Registering a series builds its key (labels copied, hashed and
    /// compared under the registry's lock) on every call, 2.5% of the
    /// instructions of a wrong TOTP answer; a handle kept is an atomic
    /// add. Bounded by the closed sets the labels come from. A kept handle
    /// stays live because the recorder never drops idle series (no
    /// `idle_timeout` in [`handle`]).
    static SERIES: std::cell::RefCell<HashMap<Box<str>, Vec<Series>>> =
        std::cell::RefCell::new(HashMap::new());
}

/// Counts one request of `method`, `route` and `status` that took
/// `seconds`, through this thread's kept handles if it has them. Handles
/// are kept only once the recorder is installed, so a handle to the
/// facade's no-op recorder is never kept.
fn record(method: &'static str, route: &str, status: u16, seconds: f64) {
    let counted = SERIES.with_borrow(|kept| {
        let series = kept.get(route)?.iter().find(|s| s.method == method && s.status == status)?;
        series.count(seconds);
        Some(())
    });
    if counted.is_some() {
        return;
    }
    let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    let series = Series {
        method,
        status,
        requests: metrics::counter!("vouchsafe_http_requests_total", &labels),
        duration: metrics::histogram!("vouchsafe_http_request_duration_seconds", &labels),
    };
    series.count(seconds);
    if HANDLE.get().is_some_and(Option::is_some) {
        SERIES.with_borrow_mut(|kept| kept.entry(route.into()).or_default().push(series));
    }
}
