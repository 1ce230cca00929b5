//! PostgreSQL: the pool and its migrations.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
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

/// The connections of [`crate::SqlStore::write_unflushed`] and
/// [`crate::SqlStore::write_statement_unflushed`]: their sessions start
/// with `synchronous_commit` off, so a statement on one commits without
/// waiting for its flush even outside a transaction (as `SET LOCAL` would
/// need one: two more round trips, with the statement's row locks held
/// through them). Opened on first use: [`connect`] has already found the
/// database, and start-up need not wait for a second handshake.
pub(crate) fn connect_unflushed(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| crate::setup_failed(format!("cannot connect to PostgreSQL: {e}")))?
        .options([("synchronous_commit", "off")]);
    Ok(PgPoolOptions::new()
        .max_connections(crate::postgres_held::UNFLUSHED as u32)
        .acquire_timeout(crate::postgres_held::ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
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

#[cfg(test)]
mod tests {
    //! These run on PostgreSQL whatever `TEST_DB` says: the plans they
    //! look at are PostgreSQL's.

    use sqlx::{Connection, PgConnection};

    use crate::testing::fresh_database_on;

    /// Where each kind of write's `synchronous_commit` comes from: the
    /// server's own setting for the durable ones (whatever the server says,
    /// their commits wait as it does), the session's start-up options
    /// (`off`) for the unflushed ones. A durable write on an unflushed
    /// connection would answer before its commit reached the disk; this
    /// fails if the two sets of connections are ever swapped or merged.
    #[tokio::test]
    async fn only_the_unflushed_writes_run_on_sessions_that_skip_the_flush() {
        let db = fresh_database_on(true).await.unwrap();
        let store = crate::SqlStore::connect(&db.url).await.unwrap();
        fn read_setting<'c>(conn: &'c mut crate::tx::Tx<'_>, _: &'c ()) -> crate::tx::TxFuture<'c, (String, String)> {
            let setting = "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'";
            Box::pin(async move { crate::tx::fetch!(conn, one(String, String), setting, []) })
        }
        let durable =
            [store.write((), read_setting).await.unwrap(), store.write_statement((), read_setting).await.unwrap()];
        for (_, source) in &durable {
            assert_ne!(source, "client", "a durable write's session set its own synchronous_commit");
        }
        let unflushed = [
            store.write_unflushed((), read_setting).await.unwrap(),
            store.write_statement_unflushed((), read_setting).await.unwrap(),
        ];
        for found in unflushed {
            assert_eq!(found, ("off".to_owned(), "client".to_owned()));
        }
        store.close().await;
    }

    /// Each table looked up by id on the request path (by the store's
    /// condition, `tenant_id = $1 AND id = $2`), and rows to fill it with
    /// (`g` runs from 1 to 5,000).
    const LOOKUPS: [(&str, &str); 3] = [
        (
            "challenges",
            "INSERT INTO challenges (id, tenant_id, user_id, factor, action, status, attempts, max_attempts, \
             expires_at, created_at, updated_at) \
             SELECT 'chl_' || g, 'ten_a', 'user-' || (g % 50), 'totp', 'login', 'pending', 0, 5, 0, 0, 0 \
             FROM generate_series(1, 5000) g",
        ),
        (
            "verifications",
            "INSERT INTO verifications (id, tenant_id, service_id, destination, destination_key, channel, status, \
             code_hash, attempts, max_attempts, send_count, window_started_at, window_sends, last_sent_at, \
             expires_at, created_at, updated_at) \
             SELECT 'ver_' || g, 'ten_a', 'svc_a', '+1555' || g, '+1555' || g, 'sms', 'expired', 'h', 0, 5, 1, \
             0, 1, 0, 0, g, g FROM generate_series(1, 5000) g",
        ),
        (
            "caller_verifications",
            "INSERT INTO caller_verifications (id, tenant_id, record_id, record_type, destination, channel, \
             status, link_hash, code_hash, attempts, max_attempts, time_allowed_s, expires_at, created_at, \
             updated_at) \
             SELECT 'cv_' || g, 'ten_a', 'rec-' || (g % 50), 'Case', '+1555' || g, 'sms', 'expired', 'l' || g, \
             'h', 0, 5, 600, 0, g, g FROM generate_series(1, 5000) g",
        ),
    ];

    /// A statement is planned once for all parameters after its fifth
    /// execution, and that plan is kept while the table grows. Prepared on
    /// an empty table (a fresh server's first requests), a lookup by id
    /// once took an index led by tenant_id alone and read every row of the
    /// tenant each time after (migration 0014): this fails if any index
    /// again offers a lookup by id a way around the id's own.
    #[tokio::test]
    async fn a_lookup_by_id_planned_on_an_empty_table_keeps_to_the_ids_index() {
        let db = fresh_database_on(true).await.unwrap();
        let pool = super::connect(&db.url_text).await.unwrap();
        super::migrate(&pool).await.unwrap();
        pool.close().await;
        let mut conn = PgConnection::connect(&db.url_text).await.unwrap();
        sqlx::query(
            "INSERT INTO tenants (id, name, account_sid, default_service_id, created_at) \
             VALUES ('ten_a', 'a', 'AC1', 'svc_a', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        for (table, fill) in LOOKUPS {
            let lookup = format!("SELECT id FROM {table} WHERE tenant_id = $1 AND id = $2");
            for _ in 0..8 {
                let found: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(lookup.clone()))
                    .bind("ten_a")
                    .bind("none")
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap();
                assert!(found.is_none());
            }
            sqlx::query(fill).execute(&mut conn).await.unwrap();
            // The plan this connection keeps for the lookup, as EXECUTE
            // would run it now.
            let (name,): (String,) = sqlx::query_as("SELECT name FROM pg_prepared_statements WHERE statement = $1")
                .bind(&lookup)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let plan: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE {name}('ten_a', 'none')")))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            let plan = plan.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n");
            assert!(
                plan.contains("Index Cond: (id = $2)") && plan.contains(&format!("{table}_pkey")),
                "{table}: the lookup by id does not use the id's index:\n{plan}"
            );
        }
    }
}
