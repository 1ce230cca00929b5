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
