//! The load generator: a fixed number of keep-alive connections, each
//! sending requests back to back until the time is up (or the scenario runs
//! out of work), with a progress line while it runs. Latencies are kept
//! whole and sorted for exact percentiles.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Makes request number `n` of the run, or `None` when there is no more work.
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client, usize) -> Option<reqwest::RequestBuilder> + Send + Sync>;

/// Whether an answer's JSON body is the one the scenario wants (`None`:
/// any 2xx will do). Answers that fail it count as errors.
pub type Accept = Option<Arc<dyn Fn(&serde_json::Value) -> bool + Send + Sync>>;

/// What one scenario at one concurrency measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    pub scenario: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// What the first error was (status and the start of the body, or
    /// the transport error), so an error count can be explained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl Measurement {
    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            self.scenario,
            self.concurrency,
            self.requests,
            self.errors,
            self.per_second,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms
        )
    }
}

/// One line per measurement with errors, saying what the first one was.
pub fn error_notes<'a>(measurements: impl IntoIterator<Item = &'a Measurement>) -> String {
    let mut notes = String::new();
    for m in measurements {
        if let Some(first) = &m.first_error {
            notes.push_str(&format!(
                "\nErrors in \"{}\" (c={}): {}; the first: `{first}`.\n",
                m.scenario, m.concurrency, m.errors
            ));
        }
    }
    notes
}

/// An answer the scenario did not want, described for the report.
fn describe(status: reqwest::StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(160).collect();
    format!("{} {}", status.as_u16(), cut.replace('`', "'"))
}

pub const MARKDOWN_HEADER: &str = "| scenario | concurrency | requests | errors | req/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|---|---|---|---|\n";

/// Redraws one progress line on stderr until `done` is set.
fn progress(label: String, started: Instant, seconds: u64, sent: Arc<AtomicUsize>, done: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            let elapsed = started.elapsed().as_secs_f64().min(seconds as f64);
            let filled = ((elapsed / seconds as f64) * 30.0) as usize;
            eprint!(
                "\r  {label:<58} [{}{}] {elapsed:>4.1}/{seconds} s {:>8} req",
                "#".repeat(filled),
                " ".repeat(30 - filled),
                sent.load(Ordering::Relaxed)
            );
            let _ = std::io::stderr().flush();
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!();
    });
}

pub async fn run(scenario: &str, make: MakeRequest, accept: Accept, concurrency: usize, seconds: u64) -> Measurement {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap_or_default();
    let sequence = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    progress(format!("{scenario} (c={concurrency})"), started, seconds, sequence.clone(), done.clone());
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let (make, sequence, accept) = (make.clone(), sequence.clone(), accept.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let Some(req) = make(&client, sequence.fetch_add(1, Ordering::Relaxed)) else { break };
                match req.send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.bytes().await.unwrap_or_default();
                        let wanted = status.is_success()
                            && accept.as_ref().is_none_or(|accept| {
                                serde_json::from_slice(&body).is_ok_and(|json: serde_json::Value| accept(&json))
                            });
                        if wanted {
                            latencies.push(sent.elapsed().as_micros() as u32);
                        } else {
                            errors += 1;
                            first_error.get_or_insert_with(|| describe(status, &body));
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("transport: {e}"));
                    }
                }
            }
            (latencies, errors, first_error, Instant::now())
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last = started;
    for task in tasks {
        if let Ok((latencies, e, first, finished)) = task.await {
            all.extend(latencies);
            errors += e;
            first_error = first_error.or(first);
            last = last.max(finished);
        }
    }
    done.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(250));
    let elapsed = last.duration_since(started).as_secs_f64();
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |&us| f64::from(us) / 1000.0);
    Measurement {
        scenario: scenario.to_owned(),
        concurrency,
        seconds: elapsed,
        requests: all.len(),
        errors,
        per_second: all.len() as f64 / elapsed.max(1e-9),
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        max_ms: pct(1.0),
        first_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(errors: usize, first_error: Option<&str>) -> Measurement {
        Measurement {
            scenario: "POST /x".into(),
            concurrency: 8,
            seconds: 1.0,
            requests: 10,
            errors,
            per_second: 10.0,
            p50_ms: 1.0,
            p95_ms: 1.0,
            p99_ms: 1.0,
            p999_ms: 1.0,
            max_ms: 1.0,
            first_error: first_error.map(str::to_owned),
        }
    }

    #[test]
    fn a_row_with_errors_gets_a_note_naming_the_first() {
        let notes = error_notes(&[measured(0, None), measured(2, Some("409 {\"code\":\"not_pending\"}"))]);
        assert_eq!(notes, "\nErrors in \"POST /x\" (c=8): 2; the first: `409 {\"code\":\"not_pending\"}`.\n");
        assert_eq!(error_notes(&[measured(0, None)]), "");
    }

    #[test]
    fn an_unwanted_answer_is_described_by_status_and_a_short_body() {
        let long = format!("`{}", "x".repeat(500));
        let described = describe(reqwest::StatusCode::CONFLICT, long.as_bytes());
        assert!(described.starts_with("409 'x"), "{described}");
        assert_eq!(described.chars().count(), "409 ".len() + 160);
    }
}
