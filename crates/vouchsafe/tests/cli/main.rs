//! Tests of the `vouchsafe` binary as a user runs it: bootstrap commands,
//! `totp code` against pyotp and oathtool, and `serve` as a real process
//! (signals, logs, configuration).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bootstrap;
mod config;
mod crosscheck;
mod helpers;
mod serve;
mod webhooks;

#[path = "../../../../tests/support/receiver.rs"]
mod receiver;
