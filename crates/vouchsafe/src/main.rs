//! The `vouchsafe` binary: parses the command line, layers configuration,
//! wires the system clock, the store and the master key into the server,
//! and runs one command. It owns process concerns (signals, exit codes,
//! logging setup) and nothing of the domain.

mod cli;
mod commands;
mod config;
mod master_key;
mod system_clock;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc. Under load a request's many small,
/// short-lived allocations (rows, JSON, headers) cost glibc's allocator
/// its locks and chunk consolidation, about a sixth of the request
/// threads' time in profiles. A/B on SQLite, concurrency 64, runs in the
/// order mimalloc, glibc, glibc, mimalloc: wrong-code checks 17,018 and
/// 18,263/s against 12,260 and 12,399/s; right-code checks 11,148 and
/// 14,090 against 10,876 and 9,686; starts 3,360 and 5,476 against 3,644
/// and 3,336. Built without transparent huge pages (`no_thp`): with them
/// its arenas were backed by 2 MiB pages and peak RSS rose from 49 to
/// 81 MiB; without, 55 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One TLS provider for every outbound client (ring); reqwest and sqlx
    // would otherwise refuse to build a TLS client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the reason and its causes, never a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
