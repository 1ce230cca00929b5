//! The load generator: a fixed number of keep-alive connections, each
//! sending requests back to back until the time is up (or the scenario runs
//! out of work), with a progress line while it runs. Latencies are kept
//! whole and sorted for exact percentiles.
//!
//! It is its own small HTTP/1.1 client, so that it is not what gets
//! measured: each request is built once as the bytes that go on the wire,
//! each answer is read by its `Content-Length` and its head parsed with
//! `httparse`, and every connection runs on one thread (a current-thread
//! runtime), so the generator never takes more than one core from the
//! server. What it did take is measured from `/proc` and reported with
//! each row, beside the server's own share.

use std::io::Write;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Makes request number `n` of the run (the bytes to send), or `None`
/// when there is no more work.
pub type MakeRequest = Arc<dyn Fn(usize) -> Option<Vec<u8>> + Send + Sync>;

/// Whether an answer's body is the one the scenario wants (`None`: any
/// 2xx will do). Answers that fail it count as errors.
pub type Accept = Option<Arc<dyn Fn(&[u8]) -> bool + Send + Sync>>;

/// An `Accept` that parses the body as `T` (only the fields it names) and
/// asks `wanted` about it.
pub fn accept_json<T: serde::de::DeserializeOwned>(wanted: impl Fn(T) -> bool + Send + Sync + 'static) -> Accept {
    Some(Arc::new(move |body| serde_json::from_slice(body).is_ok_and(&wanted)))
}

/// A login flow: several requests on one connection, each made from the
/// answer to the one before (a start's id, then its check).
pub trait Flow: Send {
    /// The next request, given the body of the (2xx) answer to the one
    /// before, or `None` before the first. `Ok(None)` ends the flow;
    /// `Err(())` says the answer was not what the flow wanted, which
    /// counts as an error and ends the flow.
    fn next(&mut self, answer: Option<&[u8]>) -> Result<Option<Vec<u8>>, ()>;
}

/// Makes flow number `n` of the run, or `None` when there is no more work.
pub type MakeFlow = Arc<dyn Fn(usize) -> Option<Box<dyn Flow>> + Send + Sync>;

/// The flow of the single-request rows: one request, and its answer checked by `accept`.
struct Single {
    request: Option<Vec<u8>>,
    accept: Accept,
}

impl Flow for Single {
    fn next(&mut self, answer: Option<&[u8]>) -> Result<Option<Vec<u8>>, ()> {
        match answer {
            None => Ok(self.request.take()),
            Some(body) if self.accept.as_ref().is_none_or(|accept| accept(body)) => Ok(None),
            Some(_) => Err(()),
        }
    }
}

/// Where the load goes: the server's address, and its process (for its
/// CPU share) when the benchmark started it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub pid: Option<u32>,
}

/// A request's bytes: `method path`, an optional bearer token and an
/// optional body with its content type.
pub fn request(method: &str, path: &str, bearer: Option<&str>, body: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.map_or(0, |(_, b)| b.len()));
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    if let Some(token) = bearer {
        let _ = write!(out, "authorization: Bearer {token}\r\n");
    }
    match body {
        Some((content_type, bytes)) => {
            let _ = write!(out, "content-type: {content_type}\r\ncontent-length: {}\r\n\r\n", bytes.len());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// `GET path`.
pub fn get(path: &str, bearer: Option<&str>) -> Vec<u8> {
    request("GET", path, bearer, None)
}

/// `POST path` with a JSON body.
pub fn post_json(path: &str, bearer: Option<&str>, json: &serde_json::Value) -> Vec<u8> {
    request("POST", path, bearer, Some(("application/json", json.to_string().as_bytes())))
}

/// Requests made before the clock starts, sent in turn round the pool
/// `rounds` times, then no more: building them (JSON, codes) is then not
/// what is measured.
pub fn rounds(requests: Vec<Vec<u8>>, rounds: usize) -> MakeRequest {
    Arc::new(move |n| (n < requests.len() * rounds).then(|| requests[n % requests.len()].clone()))
}

/// What one scenario at one concurrency measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    pub scenario: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: usize,
    /// Flows finished, where the row runs flows of several requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<usize>,
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
    /// CPU the benchmark process used during the row (the generator, and
    /// the loopback gateway when a row sends codes), in cores.
    pub generator_cpu: Option<f64>,
    /// CPU the server used during the row, in cores.
    pub server_cpu: Option<f64>,
}

impl Measurement {
    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            self.scenario,
            self.concurrency,
            self.requests,
            self.errors,
            self.per_second,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            cores(self.generator_cpu),
            cores(self.server_cpu)
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
fn describe(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(160).collect();
    format!("{status} {}", cut.replace('`', "'"))
}

pub const MARKDOWN_HEADER: &str = "| scenario | concurrency | requests | errors | req/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | bench CPU | server CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";

/// A CPU share for the table: cores used, or `?` where `/proc` had none.
fn cores(share: Option<f64>) -> String {
    share.map_or("?".to_owned(), |c| format!("{c:.2}"))
}

/// CPU seconds a process has used so far (user and system), from
/// `/proc/PID/stat`; `None` off Linux. Linux reports them in ticks of
/// 1/100 s to user space whatever the kernel's own tick.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or("/proc/self/stat".to_owned(), |pid| format!("/proc/{pid}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at the
    // state, field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

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

/// What one connection saw.
struct Seen {
    latencies_us: Vec<u32>,
    flows: usize,
    errors: usize,
    first_error: Option<String>,
    finished: Instant,
}

/// Sends `request` on the connection (opening it first if it is not
/// open) and reads one answer into `buf`: its status and where its body
/// lies in `buf`. The connection is dropped after an error or when the
/// server says it will close it.
async fn exchange(
    stream: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, Range<usize>)> {
    use std::io::{Error, ErrorKind};
    let open = match stream {
        Some(open) => open,
        None => {
            let fresh = TcpStream::connect(addr).await?;
            fresh.set_nodelay(true)?;
            stream.insert(fresh)
        }
    };
    open.write_all(request).await?;
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        if open.read_buf(buf).await? == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head_len) =
            head.parse(buf).map_err(|e| Error::new(ErrorKind::InvalidData, e))?
        else {
            continue;
        };
        let status = head.code.unwrap_or(0);
        let header = |name: &str| head.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
        let length = header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "an answer without Content-Length"))?;
        let closes = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let end = head_len + length;
        while buf.len() < end {
            buf.reserve(end - buf.len());
            if open.read_buf(buf).await? == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "the server closed the connection mid-answer"));
            }
        }
        if closes {
            *stream = None;
        }
        return Ok((status, head_len..end));
    }
}

/// One keep-alive connection running flows back to back.
async fn connection(addr: SocketAddr, make: MakeFlow, sequence: Arc<AtomicUsize>, deadline: Instant) -> Seen {
    let mut seen = Seen { latencies_us: Vec::new(), flows: 0, errors: 0, first_error: None, finished: Instant::now() };
    let mut stream = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    'flows: while Instant::now() < deadline {
        let Some(mut flow) = make(sequence.fetch_add(1, Ordering::Relaxed)) else { break };
        let mut next = flow.next(None);
        while let Ok(Some(request)) = next {
            let sent = Instant::now();
            match exchange(&mut stream, addr, &request, &mut buf).await {
                Ok((status, body)) => {
                    let body = &buf[body];
                    next = if (200..300).contains(&status) { flow.next(Some(body)) } else { Err(()) };
                    if next.is_ok() {
                        seen.latencies_us.push(sent.elapsed().as_micros() as u32);
                    } else {
                        seen.errors += 1;
                        seen.first_error.get_or_insert_with(|| describe(status, body));
                    }
                }
                Err(e) => {
                    stream = None;
                    seen.errors += 1;
                    seen.first_error.get_or_insert_with(|| format!("transport: {e}"));
                    continue 'flows;
                }
            }
        }
        if next.is_ok() {
            seen.flows += 1;
        }
    }
    seen.finished = Instant::now();
    seen
}

/// Requests made by `make`, each a flow of its own, answers checked by `accept`.
pub async fn run(
    scenario: &str,
    target: &Target,
    make: MakeRequest,
    accept: Accept,
    concurrency: usize,
    seconds: u64,
) -> Measurement {
    let flows: MakeFlow = Arc::new(move |n| {
        let request = make(n)?;
        Some(Box::new(Single { request: Some(request), accept: accept.clone() }) as Box<dyn Flow>)
    });
    let mut measured = run_flows(scenario, target, flows, concurrency, seconds).await;
    measured.flows = None;
    measured
}

/// Flows made by `make` on `concurrency` connections for `seconds`: every
/// request is a row of the latencies, and the flows finished are counted.
pub async fn run_flows(
    scenario: &str,
    target: &Target,
    make: MakeFlow,
    concurrency: usize,
    seconds: u64,
) -> Measurement {
    let sequence = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (generator_before, server_before) = (cpu_seconds(None), cpu_seconds(target.pid));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    progress(format!("{scenario} (c={concurrency})"), started, seconds, sequence.clone(), done.clone());
    let addr = target.addr;
    // Every connection on one thread of its own: at most one core.
    let seen = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| tokio::spawn(connection(addr, make.clone(), sequence.clone(), deadline)))
                .collect();
            let mut seen = Vec::with_capacity(concurrency);
            for task in tasks {
                seen.extend(task.await.ok());
            }
            std::io::Result::Ok(seen)
        })
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let ended = Instant::now();
    let generator_cpu = cpu_seconds(None).zip(generator_before).map(|(a, b)| a - b);
    let server_cpu = cpu_seconds(target.pid).zip(server_before).map(|(a, b)| a - b);
    done.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(250));
    let mut all = Vec::new();
    let mut flows = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut last = started;
    for s in seen {
        all.extend(s.latencies_us);
        flows += s.flows;
        errors += s.errors;
        first_error = first_error.or(s.first_error);
        last = last.max(s.finished);
    }
    let elapsed = last.duration_since(started).as_secs_f64();
    let wall = ended.duration_since(started).as_secs_f64().max(1e-9);
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |&us| f64::from(us) / 1000.0);
    Measurement {
        scenario: scenario.to_owned(),
        concurrency,
        seconds: elapsed,
        requests: all.len(),
        flows: Some(flows),
        errors,
        per_second: all.len() as f64 / elapsed.max(1e-9),
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        max_ms: pct(1.0),
        first_error,
        generator_cpu: generator_cpu.map(|s| s / wall),
        server_cpu: server_cpu.map(|s| s / wall),
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
            flows: None,
            errors,
            per_second: 10.0,
            p50_ms: 1.0,
            p95_ms: 1.0,
            p99_ms: 1.0,
            p999_ms: 1.0,
            max_ms: 1.0,
            first_error: first_error.map(str::to_owned),
            generator_cpu: Some(0.5),
            server_cpu: None,
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
        let described = describe(409, long.as_bytes());
        assert!(described.starts_with("409 'x"), "{described}");
        assert_eq!(described.chars().count(), "409 ".len() + 160);
    }

    #[test]
    fn rounds_sends_the_pool_in_turn_then_stops() {
        let make = rounds(vec![b"a".to_vec(), b"b".to_vec()], 2);
        let sent: Vec<Option<Vec<u8>>> = (0..5).map(|n| make(n)).collect();
        let (a, b) = (Some(b"a".to_vec()), Some(b"b".to_vec()));
        assert_eq!(sent, vec![a.clone(), b.clone(), a, b, None]);
        assert_eq!(rounds(Vec::new(), 3)(0), None, "an empty pool sends nothing");
    }

    #[test]
    fn a_request_is_the_bytes_of_an_http_1_1_request() {
        let sent = post_json("/v1/x", Some("sk"), &serde_json::json!({"a": 1}));
        let text = String::from_utf8(sent).unwrap_or_default();
        assert_eq!(
            text,
            "POST /v1/x HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer sk\r\n\
             content-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
        assert_eq!(get("/", None), b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    }

    /// A loopback server that answers each request with the next of
    /// `answers`, each written in two pieces (so the client must read on).
    async fn serve(answers: Vec<&'static [u8]>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 1024];
            for answer in answers {
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let (first, rest) = answer.split_at(answer.len() / 2);
                let _ = socket.write_all(first).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = socket.write_all(rest).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_client_reads_whole_answers_and_keeps_the_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"valid\":true}",
            b"HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\nconnection: close\r\n\r\n{}",
        ])
        .await;
        let (mut stream, mut buf) = (None, Vec::new());
        let (status, body) =
            exchange(&mut stream, addr, &get("/", None), &mut buf).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((status, &buf[body]), (200, &b"{\"valid\":true}"[..]));
        assert!(stream.is_some(), "a keep-alive answer keeps the connection");
        let (status, body) =
            exchange(&mut stream, addr, &get("/", None), &mut buf).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((status, &buf[body]), (409, &b"{}"[..]));
        assert!(stream.is_none(), "`connection: close` drops it");
    }

    #[tokio::test]
    async fn an_answer_without_a_length_is_an_error_not_a_hang() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"]).await;
        let (mut stream, mut buf) = (None, Vec::new());
        let failed = exchange(&mut stream, addr, &get("/", None), &mut buf).await;
        assert!(failed.is_err_and(|e| e.to_string().contains("Content-Length")));
    }

    #[test]
    fn accept_json_reads_only_the_named_field() {
        #[derive(serde::Deserialize)]
        struct Checked {
            valid: bool,
        }
        let Some(refused) = accept_json(|c: Checked| !c.valid) else { panic!("an accept") };
        assert!(refused(br#"{"status":"pending","valid":false}"#));
        assert!(!refused(br#"{"valid":true}"#));
        assert!(!refused(b"not json"));
    }

    #[test]
    fn cpu_seconds_grow_while_this_process_works() {
        let before = cpu_seconds(None).unwrap_or_else(|| panic!("no /proc/self/stat"));
        let (started, mut sum) = (Instant::now(), 0u64);
        while cpu_seconds(None).is_some_and(|now| now <= before) && started.elapsed() < Duration::from_secs(10) {
            sum = (0..100_000u64).fold(sum, |a, b| a.wrapping_add(b * b));
        }
        assert!(cpu_seconds(None).is_some_and(|now| now > before), "{sum}");
    }
}
