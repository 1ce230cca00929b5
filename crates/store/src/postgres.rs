//! PostgreSQL: the pool and its migrations.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use vouchsafe_core::store::StoreError;

pub(crate) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
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
