//! The storage contract, on whichever engine `TEST_DB` names (SQLite by
//! default, PostgreSQL with `TEST_DB=postgres`): one test binary for the
//! crate, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod answers;
mod claims;
mod contract;
mod endpoints;
mod future_sizes;
mod lock_order;
mod people;
mod room_for_updates;
mod schema;
mod tenant_limits;
mod test_events;
mod upgrade;
mod verifications;

use vouchsafe_store::SqlStore;
use vouchsafe_store::testing::{TestDatabase, connect, fresh_database};

/// A migrated store on a fresh database of the engine `TEST_DB` names.
async fn store() -> (SqlStore, TestDatabase) {
    let db = fresh_database().await.unwrap();
    let store = connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    (store, db)
}
