//! Test support: a fresh, empty database for each test, on the engine that
//! `TEST_DB` names (`sqlite`, the default, or `postgres`). PostgreSQL tests
//! create a new database in the server at `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, as `.ci/run` starts it).

use std::path::PathBuf;

use crate::{DatabaseUrl, SqliteSync};

/// A database that exists for one test. The SQLite file lives in a folder
/// that is removed with this value.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    pub url_text: String,
    _dir: Option<TempDir>,
}

/// A temporary folder removed on drop (a tiny stand-in for `tempfile`, so
/// the feature adds no dependency).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the tests run against PostgreSQL.
pub fn is_postgres() -> bool {
    std::env::var("TEST_DB").is_ok_and(|v| v == "postgres")
}

/// A fresh database on the engine `TEST_DB` names.
pub async fn fresh_database() -> Result<TestDatabase, String> {
    fresh_database_on(is_postgres()).await
}

/// A fresh database on PostgreSQL (at `TEST_POSTGRES_URL`) or SQLite,
/// whatever `TEST_DB` says: for tests that compare the two.
pub async fn fresh_database_on(postgres: bool) -> Result<TestDatabase, String> {
    if postgres {
        let admin =
            std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("vs_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .map_err(|e| format!("PostgreSQL at {admin} is not reachable ({e}); bash .ci/postgres.sh starts one"))?;
        // The name is made here from hex digits only.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
        let url_text = format!("{base}/{name}");
        Ok(TestDatabase { url: DatabaseUrl::Postgres(url_text.clone()), url_text, _dir: None })
    } else {
        let dir = std::env::temp_dir().join(format!("vouchsafe-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("vouchsafe.db");
        let url_text = format!("sqlite://{}", path.display());
        Ok(TestDatabase {
            url: DatabaseUrl::Sqlite { path, sync: SqliteSync::Full },
            url_text,
            _dir: Some(TempDir(dir)),
        })
    }
}

/// A fresh SQLite database, migrated, with its read-only pool: what a test
/// of a statement's plan reads the plan from (`EXPLAIN QUERY PLAN`).
#[cfg(test)]
pub(crate) async fn migrated_sqlite() -> (TestDatabase, sqlx::SqlitePool) {
    let db = fresh_database_on(false).await.unwrap();
    let DatabaseUrl::Sqlite { path, .. } = &db.url else { unreachable!("asked for SQLite") };
    let (pool, options) = crate::sqlite::connect(path, SqliteSync::Full).await.unwrap();
    crate::sqlite::migrate(&options).await.unwrap();
    (db, pool)
}

/// The audit key of stores made by [`connect`]: any fixed key, since a
/// test's checks need only agree with its writes.
pub fn audit_key() -> Result<vouchsafe_core::audit::AuditKey, String> {
    let master = vouchsafe_core::crypto::MasterKey::from_base64("dm91Y2hzYWZlIHRlc3RzOiBub3QgYSByZWFsIGtleSE=")
        .map_err(|e| e.to_string())?;
    Ok(vouchsafe_core::audit::AuditKey::new(&master))
}

/// Connects to `db` (without migrating), keyed with [`audit_key`].
pub async fn connect(db: &TestDatabase) -> Result<crate::SqlStore, String> {
    let store = crate::SqlStore::connect(&db.url).await.map_err(|e| e.to_string())?;
    store.use_audit_key(audit_key()?).map_err(|e| e.to_string())?;
    Ok(store)
}

/// How many API keys `store` serves without reading the database now: 0
/// while its cache cannot hear of changes to keys.
pub fn kept_api_keys(store: &crate::SqlStore) -> usize {
    match store.db() {
        crate::Db::Postgres { keys, .. } | crate::Db::Sqlite { keys, .. } => keys.serving_len(),
    }
}

/// Changes `sql` on `db` behind the stores' backs (no notification):
/// what a test compares a store's answers against.
pub async fn execute_behind_the_stores(db: &TestDatabase, sql: &'static str) -> Result<u64, String> {
    match &db.url {
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.map_err(|e| e.to_string())?;
            let done = sqlx::query(sql).execute(&pool).await.map_err(|e| e.to_string())?.rows_affected();
            pool.close().await;
            Ok(done)
        }
        DatabaseUrl::Sqlite { path, .. } => {
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
            conn.execute(sql, []).map(|n| n as u64).map_err(|e| e.to_string())
        }
    }
}
