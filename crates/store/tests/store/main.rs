//! The storage contract, on whichever engine `TEST_DB` names (SQLite by
//! default, PostgreSQL with `TEST_DB=postgres`): one test binary for the
//! crate, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod contract;
mod people;
mod schema;
mod verifications;
