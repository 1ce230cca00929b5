//! End-to-end tests of the HTTP API: the real server on a random loopback
//! port over a fresh database (SQLite, or PostgreSQL with TEST_DB=postgres),
//! driven with a real HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests start their manual clocks, and stamp what they make outside the
// server, at the real time.
#![allow(clippy::disallowed_methods)]

mod api_keys;
mod architecture;
mod audit;
mod callers;
mod challenges;
mod console;
mod deliveries;
mod errors;
mod fake_providers;
mod fuzz;
mod helpers;
mod hosted_page;
mod isolation;
mod ops;
mod outbound_rule;
mod providers;
mod roles;
mod salesforce_fixtures;
mod secrets;
mod services;
mod settings;
mod twilio_compat;
mod verifications;
mod webhook_fairness;
mod webhooks;

#[path = "../../../../tests/support/dice.rs"]
mod dice;

#[path = "../../../../tests/support/receiver.rs"]
mod receiver;

#[path = "../../../../tests/support/smtp_sink.rs"]
mod smtp_sink;

#[path = "../../../../tests/support/twilio_driver.rs"]
mod twilio_driver;

#[path = "../../../../tests/support/browser.rs"]
mod browser;
