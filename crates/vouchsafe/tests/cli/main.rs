//! Tests of the `vouchsafe` binary as a user runs it: bootstrap commands,
//! `totp code` against pyotp and oathtool, and `serve` as a real process
//! (signals, logs, configuration), and the crash suite: SIGKILL under load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests start their manual clocks, and stamp what they make outside the
// server, at the real time.
#![allow(clippy::disallowed_methods)]

mod audit;
mod bootstrap;
mod config;
mod crash;

mod crosscheck;
mod flood;
mod helpers;
mod import;
mod schema;
mod serve;
mod two_processes;
mod webhooks;

#[path = "../../../../tests/support/dice.rs"]
mod dice;

#[path = "../../../../tests/support/receiver.rs"]
mod receiver;

/// The benchmark's loopback SMS gateway: answers at once and keeps the
/// last code sent to each number.
#[allow(dead_code)]
#[path = "../../../bench/src/receiver.rs"]
mod sms_receiver;
