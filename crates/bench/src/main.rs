//! `vouchsafe-bench`: the project's own benchmark. It measures the OTP
//! arithmetic against one raw HMAC-SHA1, and the real `vouchsafe` binary
//! under HTTP load from this separate process on loopback (start-up time,
//! throughput, latency percentiles, peak memory), and writes the results
//! as Markdown so they can be committed and quoted.
//!
//! It never runs inside the test suite: timings are measured here, not
//! asserted in tests.

mod http_load;
mod otp_bench;

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Benchmark vouchsafe: OTP arithmetic and HTTP load")]
struct Args {
    /// The vouchsafe binary to start (build it with --release first).
    #[arg(long, default_value = "target/release/vouchsafe")]
    bin: PathBuf,
    /// Concurrent connections of the HTTP load.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of load per endpoint.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Markdown file to write the results to.
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let mut report = String::from("# vouchsafe benchmark results\n\n");
    report.push_str(&format!(
        "Command: `cargo build --release && cargo run --release -p vouchsafe-bench -- --concurrency {} --seconds {}`  \n",
        args.concurrency, args.seconds
    ));
    report.push_str(&format!("Machine: {} cores; load generator and server share it, over loopback.\n\n", cores()));

    println!("OTP arithmetic…");
    report.push_str(&otp_bench::run());

    println!("HTTP load against {}…", args.bin.display());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    report.push_str(&runtime.block_on(http_load::run(&args.bin, args.concurrency, args.seconds))?);

    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &report)?;
    println!("\n{report}\nwritten to {}", args.out.display());
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}
