//! `vouchsafe-bench`: the project's own benchmark. It measures the OTP
//! arithmetic against one raw HMAC-SHA1, and the real `vouchsafe` binary
//! under HTTP load from this separate process on loopback (start-up time,
//! throughput, latency percentiles, peak memory) on SQLite and, if asked,
//! PostgreSQL; it writes the results as JSON under `bench/results/` and as
//! Markdown so they can be committed and quoted.
//!
//! It never runs inside the test suite: timings are measured here, not
//! asserted in tests.

// The benchmark is a client outside the server: it stamps its results and
// makes TOTP codes at the real time.
#![allow(clippy::disallowed_methods)]

mod empty_handler;
mod load;
mod mixed;
mod otp_bench;
mod peer;
mod receiver;
mod scenarios;
mod server;
mod soak;
mod totp_scale;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use server::Engine;

#[derive(Debug, Parser)]
#[command(about = "Benchmark vouchsafe: OTP arithmetic and HTTP load")]
struct Args {
    /// The vouchsafe binary to start (build it with --release first).
    #[arg(long, default_value = "target/release/vouchsafe")]
    bin: PathBuf,
    /// Concurrent connections of the HTTP load, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Seconds of load per scenario and concurrency.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Databases to run the server on, one full run each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite")]
    engine: Vec<Engine>,
    /// Enrolled-user counts for the TOTP challenge rows (the table grows
    /// through them in one run); `0` skips them.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    totp_users: Vec<usize>,
    /// Scenarios to run (all by default); for profiling one of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<scenarios::Scenario>,
    /// A PostgreSQL server the benchmark may create a database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Markdown file to write the results to.
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: PathBuf,
    /// Folder for the JSON results (one file per run).
    #[arg(long, default_value = "bench/results")]
    results_dir: PathBuf,
    /// Append the server's log (warnings and errors) to this file; without
    /// it the log is dropped. For a row that stalls: a failed write or a
    /// timeout says so there.
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Load a running privacyIDEA at this URL instead (see
    /// bench/peers/privacyidea.sh, which sets it up and passes this).
    #[arg(long)]
    peer_privacyidea: Option<String>,
    /// The peer's HOTP tokens BENCH0…BENCH{n-1}.
    #[arg(long, default_value_t = 200)]
    peer_tokens: usize,
    /// The peer tokens' shared HOTP key, hex.
    #[arg(long, default_value = "3132333435363738393031323334353637383930")]
    peer_key_hex: String,
    /// The peer tokens' PIN (sent before the code, privacyIDEA style).
    #[arg(long, default_value = "bench")]
    peer_pin: String,
    /// Instead of the scenarios: a login-flow mix at a steady rate for this
    /// many minutes, sampling the server's memory every 10 s (on the first
    /// engine named).
    #[arg(long)]
    soak: Option<u64>,
    /// Internal: serve the empty axum handler the check rate is compared
    /// with (the benchmark starts itself with this).
    #[arg(long, hide = true)]
    serve_empty_handler: bool,
}

#[derive(serde::Serialize)]
struct EngineRun {
    engine: Engine,
    durability: String,
    ready_ms: f64,
    peak_rss_mib: Option<f64>,
    /// Resident memory at the end: anonymous, file-backed (MiB).
    rss_split_mib: Option<(f64, f64)>,
    http: Vec<load::Measurement>,
    /// `None` when `--only` left the scenario out.
    webhooks: Option<scenarios::WebhookThroughput>,
    /// `None` when `--only` left the scenario out.
    mixed: Option<mixed::Mixed>,
    totp_scale: Vec<totp_scale::ScaleRun>,
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.serve_empty_handler {
        return empty_handler::serve();
    }
    let list = |items: Vec<String>| items.join(",");
    let mut command = format!(
        "cargo build --release && cargo run --release -p vouchsafe-bench -- --concurrency {} --seconds {} --engine {} --totp-users {}",
        list(args.concurrency.iter().map(usize::to_string).collect()),
        args.seconds,
        list(args.engine.iter().map(|e| format!("{e:?}").to_lowercase()).collect()),
        list(args.totp_users.iter().map(usize::to_string).collect()),
    );
    if args.engine.contains(&Engine::Postgres) {
        command.push_str(&format!(" --postgres-url {}", args.postgres_url));
    }
    if !args.only.is_empty() {
        command.push_str(&format!(
            " --only {}",
            list(args.only.iter().filter_map(|s| Some(s.to_possible_value()?.get_name().to_owned())).collect())
        ));
    }
    let machine = machine();
    if let Some(url) = &args.peer_privacyidea {
        return run_peer(&args, url, &machine);
    }
    if let Some(minutes) = args.soak {
        return run_soak(&args, minutes, &machine);
    }
    let mut report = format!(
        "# vouchsafe benchmark results\n\nCommand: `{command}`  \nMachine: {machine}; load generator and server share it, over loopback.\n\n"
    );

    eprintln!("OTP arithmetic…");
    report.push_str(&otp_bench::run());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let top = args.concurrency.iter().copied().max().unwrap_or(1);
    let wanted = scenarios::Wanted(args.only.clone());
    let reference = match wanted.has(scenarios::Scenario::WrongCode) {
        true => {
            eprintln!("Reference: an empty axum handler…");
            let measured = runtime.block_on(empty_handler::measure(top, args.seconds))?;
            report.push_str(&format!(
                "## Reference: an empty axum handler\n\nIn its own process, loaded by the same generator for {} s; \
                 the check rate below is held against it.\n\n{}{}\n",
                args.seconds,
                load::MARKDOWN_HEADER,
                measured.markdown_row()
            ));
            Some(measured)
        }
        false => None,
    };
    let mut runs = Vec::new();
    for &engine in &args.engine {
        eprintln!("HTTP load against {} on {}…", args.bin.display(), engine.label());
        let run = runtime.block_on(async {
            let server = server::start(&args.bin, engine, &args.postgres_url, args.server_log.as_deref()).await?;
            let http = scenarios::run(&server, &args.concurrency, args.seconds, &wanted).await?;
            let webhooks = match wanted.has(scenarios::Scenario::Webhooks) {
                true => Some(scenarios::webhook_throughput(&server).await?),
                false => None,
            };
            let mixed = match wanted.has(scenarios::Scenario::Mixed) {
                true => Some(mixed::run(&server, top, args.seconds).await?),
                false => None,
            };
            let totp_users = if wanted.has(scenarios::Scenario::Totp) { &args.totp_users[..] } else { &[] };
            let counts: Vec<usize> = totp_users.iter().copied().filter(|n| *n > 0).collect();
            let totp_scale = totp_scale::run(&server, &counts, &args.concurrency, args.seconds).await?;
            anyhow::Ok(EngineRun {
                engine,
                durability: server.durability.clone(),
                ready_ms: server.ready_ms,
                peak_rss_mib: server.peak_rss_mib(),
                rss_split_mib: server.rss_split_mib(),
                http,
                webhooks,
                mixed,
                totp_scale,
            })
        })?;
        report.push_str(&markdown(&run, args.seconds, reference.as_ref()));
        runs.push(run);
    }

    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &report)?;
    std::fs::create_dir_all(&args.results_dir)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let json_path = args.results_dir.join(format!("http-{stamp}.json"));
    let json = serde_json::json!({"command": command, "machine": machine, "unix_time": stamp,
        "empty_handler": reference, "runs": runs});
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)?;
    println!("\n{report}\nwritten to {} and {}", args.out.display(), json_path.display());
    Ok(())
}

fn markdown(run: &EngineRun, seconds: u64, reference: Option<&load::Measurement>) -> String {
    let mut md = format!(
        "## HTTP (`vouchsafe serve`, {}: {})\n\n\
         Start-up, process spawn to first `200` from `/healthz`: **{:.0} ms** (target ≤ 200 ms).\n\n\
         Keep-alive connections, {seconds} s per row (right-code rows stop early when their \
         seeded verifications are used up: each approves one).\n\n{}",
        run.engine.label(),
        run.durability,
        run.ready_ms,
        load::MARKDOWN_HEADER
    );
    for m in &run.http {
        md.push_str(&m.markdown_row());
    }
    md.push_str(&load::error_notes(&run.http));
    md.push_str(&against_empty_handler(&run.http, reference));
    if let Some(w) = &run.webhooks {
        md.push_str(&format!(
            "\nWebhook dispatch: {} test events queued through the API by the load generator at concurrency 64 \
             in {:.2} s ({:.0}/s, p99 {:.2} ms); {} delivered, signed, to a loopback receiver {:.2} s after the \
             first was queued: **{:.0} events/s** end to end{}.\n",
            w.queued,
            w.enqueue_s,
            w.queueing.per_second,
            w.queueing.p99_ms,
            w.delivered,
            w.total_s,
            w.per_second,
            if w.total_s < w.enqueue_s * 1.1 {
                " (delivery kept pace with queueing: a floor of the dispatch rate)"
            } else {
                ""
            }
        ));
        md.push_str(&format!(
            "Backlog: with the receiver holding deliveries, {} more test events were queued ({} attempts \
             held in flight); once it answered, the {} waiting in the outbox were delivered in {:.2} s: \
             **{:.0} events/s** drained.\n",
            w.backlog + w.held,
            w.held,
            w.backlog,
            w.drain_s,
            w.drain_per_second,
        ));
    }
    if let Some(m) = &run.mixed {
        md.push_str(&format!(
            "\nMixed load, every hot path at once (the soak's mix at full speed):\n\n{}{}\n\
             {} login flows in {:.1} s, **{:.0} logins/s** ({} SMS, {} TOTP); of their {} webhook deliveries \
             {} arrived while the load ran and the last {:.2} s after it{}.\n",
            load::MARKDOWN_HEADER,
            m.measurement.markdown_row(),
            m.sms_flows + m.totp_flows,
            m.measurement.seconds,
            (m.sms_flows + m.totp_flows) as f64 / m.measurement.seconds.max(1e-9),
            m.sms_flows,
            m.totp_flows,
            m.sms_flows + m.totp_flows,
            m.delivered_during,
            m.drain_s,
            if m.delivered < m.sms_flows + m.totp_flows {
                format!(" (only {} arrived within 120 s)", m.delivered)
            } else {
                String::new()
            }
        ));
        md.push_str(&load::error_notes([&m.measurement]));
    }
    // The ratio compares the smallest and the largest table at the highest concurrency.
    let top = run.totp_scale.iter().map(|s| s.measurement.concurrency).max().unwrap_or(0);
    let at_top: Vec<_> = run.totp_scale.iter().filter(|s| s.measurement.concurrency == top && !s.right_code).collect();
    if let (Some(first), Some(last)) = (at_top.first(), at_top.last()) {
        md.push_str(
            "\nTOTP challenges as the user table grows (users imported with `vouchsafe authenticators import`; \
             wrong codes go to challenges of users picked at random over the whole table, right codes to \
             challenges of distinct users, one each, on the largest table):\n\n\
             | users | import s | scenario | concurrency | requests | errors | req/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | bench CPU | server CPU |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        );
        for s in &run.totp_scale {
            md.push_str(&format!("| {} | {:.1} {}", s.users, s.import_s, s.measurement.markdown_row()));
        }
        md.push_str(&format!(
            "\nAt concurrency {top}, p99 at {} users is **{:.2}×** p99 at {} users (target ≤ 1.3×)",
            last.users,
            last.measurement.p99_ms / first.measurement.p99_ms.max(1e-9),
            first.users
        ));
        if last.p99_runs_ms.len() > 1 {
            let runs = |r: &totp_scale::ScaleRun| {
                r.p99_runs_ms.iter().map(|p| format!("{p:.2}")).collect::<Vec<_>>().join(", ")
            };
            md.push_str(&format!(
                "; each row at concurrency {top} ran {} times and shows its run with the median p99 \
                 (p99s in ms: {} users {}; {} users {})",
                last.p99_runs_ms.len(),
                first.users,
                runs(first),
                last.users,
                runs(last)
            ));
        }
        md.push_str(".\n");
        md.push_str(&load::error_notes(run.totp_scale.iter().map(|s| &s.measurement)));
    }
    let rss = run.peak_rss_mib.map_or("unknown".to_owned(), |m| format!("{m:.1} MiB"));
    md.push_str(&format!("\nServer peak RSS (VmHWM) after the load: **{rss}** (target ≤ 100 MiB)"));
    if let Some((anon, file)) = run.rss_split_mib {
        md.push_str(&format!(
            "; at the end {anon:.1} MiB anonymous and {file:.1} MiB file-backed (the binary, mostly)"
        ));
    }
    md.push_str(".\n\n");
    md
}

/// How far wrong-code checks at the highest concurrency are from a handler
/// that does nothing: the empty axum handler measured in this run, the
/// issue's figure for it on these machines, and `/healthz`.
fn against_empty_handler(http: &[load::Measurement], reference: Option<&load::Measurement>) -> String {
    const ISSUE_FIGURE: f64 = 88_000.0;
    let top = http.iter().map(|m| m.concurrency).max().unwrap_or(0);
    let find = |prefix: &str| http.iter().find(|m| m.concurrency == top && m.scenario.starts_with(prefix));
    let Some(checks) = find("POST /v1/verifications/check, wrong code") else { return String::new() };
    let times = |rate: f64| rate / checks.per_second.max(1e-9);
    let mut line = format!(
        "\nWrong-code checks at concurrency {top}: **{:.0}/s** with p99 {:.2} ms (target ≥ 10,000/s, p99 ≤ 20 ms). ",
        checks.per_second, checks.p99_ms
    );
    if let Some(empty) = reference.filter(|r| r.concurrency == top) {
        line.push_str(&format!(
            "The empty axum handler measured in this run served {:.0} req/s, **{:.1}×** as many (target ≤ 6×); ",
            empty.per_second,
            times(empty.per_second)
        ));
    }
    line.push_str(&format!("the issue's {ISSUE_FIGURE:.0} req/s for it is {:.1}×", times(ISSUE_FIGURE)));
    if let Some(healthz) = find("GET /healthz") {
        line.push_str(&format!(", and our own `/healthz` {:.1}×", times(healthz.per_second)));
    }
    line.push_str(".\n");
    line
}

/// The peer's run: its own JSON file and Markdown section.
fn run_peer(args: &Args, url: &str, machine: &str) -> anyhow::Result<()> {
    let peer = peer::Peer {
        url: url.trim_end_matches('/').to_owned(),
        tokens: args.peer_tokens,
        key_hex: args.peer_key_hex.clone(),
        pin: args.peer_pin.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let http = runtime.block_on(peer::run(&peer, &args.concurrency, args.seconds))?;
    let mut md = format!(
        "## Peer: privacyIDEA 3.14 (gunicorn, SQLite, default settings; `bash bench/peers/privacyidea.sh`)\n\n\
         Machine: {machine}; load generator and server share it, over loopback. {} s per row.\n\n{}",
        args.seconds,
        load::MARKDOWN_HEADER
    );
    for m in &http {
        md.push_str(&m.markdown_row());
    }
    md.push_str(&load::error_notes(&http));
    std::fs::create_dir_all(&args.results_dir)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let json_path = args.results_dir.join(format!("privacyidea-{stamp}.json"));
    let json = serde_json::json!({"peer": "privacyidea 3.14", "machine": machine, "unix_time": stamp, "http": http});
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)?;
    std::fs::write(&args.out, &md)?;
    println!("\n{md}\nwritten to {} and {}", args.out.display(), json_path.display());
    Ok(())
}

/// The soak run: its own JSON file and Markdown section.
fn run_soak(args: &Args, minutes: u64, machine: &str) -> anyhow::Result<()> {
    let engine = args.engine.first().copied().unwrap_or(Engine::Sqlite);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (soak, peak) = runtime.block_on(async {
        let server = server::start(&args.bin, engine, &args.postgres_url, args.server_log.as_deref()).await?;
        let soak = soak::run(&server, minutes).await?;
        anyhow::Ok((soak, server.peak_rss_mib()))
    })?;
    let samples: Vec<String> = soak.rss_mib.iter().map(|(t, mib)| format!("{t:.0} s: {mib:.1}")).collect();
    let md = format!(
        "## Soak: {minutes} min on {} (`--soak {minutes}`)\n\nMachine: {machine}. Login flows at a steady rate: \
         {} SMS flows (start, then the right code) and {} TOTP flows (challenge, then the right code), every \
         approval an event for a webhook endpoint on the loopback receiver ({} requests reached it); {} errors{}.\n\n\
         Server RSS every 10 s (MiB): {}.\n\nSlope after the first minute: **{:.3} MiB/min** in all, of which \
         **{:.3} MiB/min** anonymous (the heap; the rest is file-backed: the binary, mostly); peak RSS {}.\n",
        engine.label(),
        soak.sms_flows,
        soak.totp_flows,
        soak.receiver_requests,
        soak.errors,
        soak.first_error.as_ref().map_or(String::new(), |e| format!(" (the first: `{e}`)")),
        samples.join(", "),
        soak.slope_mib_per_minute,
        soak.anon_slope_mib_per_minute,
        peak.map_or("unknown".to_owned(), |p| format!("{p:.1} MiB")),
    );
    std::fs::create_dir_all(&args.results_dir)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let json_path = args.results_dir.join(format!("soak-{stamp}.json"));
    let json = serde_json::json!({"machine": machine, "unix_time": stamp, "engine": engine, "soak": soak, "peak_rss_mib": peak});
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)?;
    std::fs::write(&args.out, &md)?;
    println!("\n{md}\nwritten to {} and {}", args.out.display(), json_path.display());
    Ok(())
}

/// Cores and CPU model, for the report.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores ({model})")
}
