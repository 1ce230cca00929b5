//! SQLite: the file, its pragmas, the read-only pool and the migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqlitePool};
use vouchsafe_core::store::StoreError;

use crate::{SqliteSync, map_err};

/// How long a connection waits for another to release the write lock:
/// the same for the pool, the group-commit writer and the readers.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps each prepared statement's plan for its whole life, whatever is
/// bound to it: SQLite's query planner stability guarantee (QPSG), set on
/// the writer's and the readers' connections.
///
/// Without it, SQLite (3.51) compiles a bound `LIMIT $n` into the plan as
/// a constant, and binding that parameter again, even to the same value,
/// expires the statement: every run of a cached statement with one was
/// parsed and planned afresh. The webhook claim (`LIMIT $3`) spent a
/// quarter of the writer thread re-preparing itself (`bench/RESULTS.md`).
/// The guarantee also forgoes plans chosen from bound values by STAT4
/// samples or `LIKE` prefixes, which this store never asks for: it runs
/// no `ANALYZE`, and its plans are fixed by text and indexes.
pub(crate) fn plan_once(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// How often `conn` prepared a cached `LIMIT $1` query again while it
/// ran three times with three limits: 0 when [`plan_once`] holds.
#[cfg(test)]
pub(crate) fn times_prepared_again(conn: &rusqlite::Connection) -> rusqlite::Result<i32> {
    let sql = "SELECT n FROM t ORDER BY n LIMIT $1";
    for limit in 1..=3_i64 {
        conn.prepare_cached(sql)?.query_map([limit], |row| row.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
    }
    Ok(conn.prepare_cached(sql)?.get_status(rusqlite::StatementStatus::RePrepare))
}

/// Opens the read-only pool for listings, and answers it with the options
/// migrations open their connection with. The group-commit writer opens
/// its own connection, with the same pragmas; it alone writes rows.
pub(crate) async fn connect(path: &Path, sync: SqliteSync) -> Result<(SqlitePool, SqliteConnectOptions), StoreError> {
    owner_only(path)
        .map_err(|e| crate::setup_failed(format!("cannot secure SQLite database {}: {e}", path.display())))?;
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(map_err)?
        .filename(path)
        .create_if_missing(true)
        // WAL lets readers run beside the one writer. FULL syncs the WAL on
        // every commit: WAL with NORMAL can lose committed transactions on
        // power loss, which would lose approvals and attempt counts.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match sync {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let cannot_open =
        |e: sqlx::Error| crate::setup_failed(format!("cannot open SQLite database {}: {e}", path.display()));
    // Request-path reads run in place (see `sqlite_reads`) and every write
    // goes through the writer, so the pool only serves listings. A few
    // connections do, and they refuse writes: a write sent here by mistake
    // fails in every test instead of racing the writer for the lock.
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .connect_with(options.clone().pragma("query_only", "true"))
        .await
        .map_err(cannot_open)?;
    Ok((pool, options))
}

/// SECURITY: the database holds phone numbers, emails and sealed secrets,
/// so it is readable by its owner only. The file is created 0600 before
/// SQLite opens it (SQLite gives its `-wal` and `-shm` files the database
/// file's mode), and a file left readable by others (by an older version)
/// is narrowed to 0600, with its `-wal` and `-shm`.
#[cfg(unix)]
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

pub(crate) async fn describe(pool: &SqlitePool) -> Result<String, StoreError> {
    let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(pool).await.map_err(map_err)?;
    let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous").fetch_one(pool).await.map_err(map_err)?;
    let (busy,): (i64,) = sqlx::query_as("PRAGMA busy_timeout").fetch_one(pool).await.map_err(map_err)?;
    let sync = match sync {
        0 => "OFF",
        1 => "NORMAL",
        2 => "FULL",
        _ => "EXTRA",
    };
    Ok(format!("SQLite journal_mode={journal} synchronous={sync} busy_timeout={busy}ms"))
}

/// Applies the migrations on a connection of their own (the pool refuses
/// writes), closed once they are done.
pub(crate) async fn migrate(options: &SqliteConnectOptions) -> Result<(), StoreError> {
    let failed = |e: &dyn std::fmt::Display| crate::setup_failed(format!("SQLite migration failed: {e}"));
    let mut conn = options.connect().await.map_err(|e| failed(&e))?;
    let migrated = sqlx::migrate!("./migrations/sqlite").run(&mut conn).await;
    let _ = conn.close().await;
    migrated.map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    /// The bundled SQLite is built as `.cargo/config.toml` says: no global
    /// memory count and no shared page-cache pool, whose mutexes every
    /// reader and the writer took (see the comment there). A checkout built
    /// without that file fails here rather than quietly running slower.
    #[test]
    fn the_bundled_sqlite_keeps_no_global_memory_count_or_cache_pool() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut statement = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> =
            statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
    }
}
