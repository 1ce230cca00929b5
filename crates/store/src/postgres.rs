//! PostgreSQL: the pool and its migrations.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use vouchsafe_core::store::StoreError;

/// Connections beyond the request path's ([`crate::postgres_held::HELD`]),
/// so listings, migrations and start-up checks never wait behind it.
const OFF_THE_REQUEST_PATH: u32 = 4;

pub(crate) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(crate::postgres_held::HELD as u32 + OFF_THE_REQUEST_PATH)
        .acquire_timeout(crate::postgres_held::ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        // sqlx's connect errors name the host, never the password.
        .map_err(|e| crate::setup_failed(format!("cannot connect to PostgreSQL: {e}")))
}

pub(crate) async fn describe(pool: &PgPool) -> Result<String, StoreError> {
    let (version,): (String,) = sqlx::query_as("SHOW server_version").fetch_one(pool).await.map_err(crate::map_err)?;
    Ok(format!("PostgreSQL {version}"))
}

pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/postgres")
        .run(pool)
        .await
        .map_err(|e| crate::setup_failed(format!("PostgreSQL migration failed: {e}")))
}
