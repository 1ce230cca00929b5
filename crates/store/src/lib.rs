//! Storage for vouchsafe over sqlx: SQLite (the embedded default: one file,
//! WAL, `synchronous=FULL`) and PostgreSQL (for several server processes).
//! [`SqlStore`] implements the traits of `vouchsafe_core::store`.
//!
//! This is the only crate with SQL. The statements are written once, in the
//! subset both engines speak (`$1` placeholders, `ON CONFLICT`, `RETURNING`,
//! instants as Unix milliseconds); what differs — connecting, pragmas,
//! migrations — lives in `sqlite.rs` and `postgres.rs`. It must not decide
//! policy: it stores what the domain hands it, with conditional writes where
//! rows can race.

mod api_keys;
mod audit;
mod callers;
mod database_url;
mod deliveries;
pub(crate) mod group_commit;
mod meta;
mod postgres;
mod providers;
mod rows;
mod services;
mod sqlite;
mod sqlite_reads;
mod tenants;
pub(crate) mod tx;
mod users;
mod verifications;
mod webhooks;

pub use database_url::{DatabaseUrl, SqliteSync};

#[cfg(feature = "testing")]
pub mod testing;

use vouchsafe_core::store::StoreError;

/// A pool of one of the two engines.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// The pool, the group-commit writer that durable writes go through,
    /// and the in-place readers of the request path.
    Sqlite(sqlx::SqlitePool, group_commit::GroupCommit, std::sync::Arc<sqlite_reads::Readers>),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds. The body
/// is compiled once per engine, so each gets its own typed statements while
/// the SQL text is written once.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool, ..) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs one write statement in a transaction and, if it changed any row,
/// appends `$audit` to the tenant's audit log in that same transaction
/// before committing: the change and its audit event land together or not
/// at all. Evaluates to the number of rows the statement changed.
macro_rules! audited {
    ($store:expr, $tenant:expr, $audit:expr, $pool:ident => $query:expr) => {
        $crate::on_pool!($store.db(), $pool => async {
            let key = $store.audit_key()?;
            let mut tx = $pool.begin().await?;
            let changed = $query.execute(&mut *tx).await?.rows_affected();
            if changed > 0 {
                $crate::audit::append_audit!(tx, &key, $tenant, $audit);
                tx.commit().await?;
            }
            Ok::<u64, sqlx::Error>(changed)
        }
        .await)
    };
}
pub(crate) use audited;

/// Runs `$body` (an async block's statements ending in a
/// `Result<_, sqlx::Error>`) as one durable write with `$conn` bound to a
/// `&mut Tx` inside a transaction, and returns its result once the commit
/// is durable; an error undoes all of the body's statements. The body's
/// statements are written with `tx::exec!` and `tx::fetch!`.
///
/// On SQLite the write joins the next group commit (see `group_commit`),
/// so what the body uses must be owned: the `[$var, …]` it names are
/// cloned for each run, because a group rolled back for another write's
/// error runs this body again. On PostgreSQL it gets a transaction of its
/// own from the pool.
macro_rules! write_tx {
    ($store:expr, [$($var:ident),* $(,)?], $conn:ident => $body:expr) => {
        match $store.db() {
            $crate::Db::Sqlite(_, group, _) => {
                let mut reruns = 0;
                loop {
                    $(let $var = $var.clone();)*
                    let written = group.write(move |$conn: &mut $crate::tx::Tx<'_>| {
                        $crate::tx::run_in_place(async move { $body })
                    });
                    match written.await {
                        Ok(out) => break Ok(out),
                        Err($crate::group_commit::GroupError::Sql(e)) => break Err(e),
                        Err($crate::group_commit::GroupError::Retry) if reruns < 8 => reruns += 1,
                        Err($crate::group_commit::GroupError::Retry) => {
                            break Err(sqlx::Error::Protocol("write rolled back too often by failing neighbours".into()))
                        }
                    }
                }
            }
            $crate::Db::Postgres(pool) => {
                async {
                    let mut tx = pool.begin().await?;
                    let mut conn = $crate::tx::Tx::Postgres(&mut *tx);
                    let $conn = &mut conn;
                    let out = async { $body }.await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(out)
                }
                .await
            }
        }
    };
}
pub(crate) use write_tx;

/// The store: one pool, either engine.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Db,
    /// Set once the master key is loaded; audited writes refuse without it.
    audit_key: std::sync::Arc<std::sync::OnceLock<vouchsafe_core::audit::AuditKey>>,
}

impl SqlStore {
    /// Connects (creating the SQLite file if needed) without migrating.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        Ok(match url {
            DatabaseUrl::Sqlite { path, sync } => {
                let pool = sqlite::connect(path, *sync).await?;
                let writer = group_commit::GroupCommit::start(path, *sync)
                    .map_err(|e| StoreError::Backend(format!("cannot open SQLite database {}: {e}", path.display())))?;
                let readers = std::sync::Arc::new(sqlite_reads::Readers::new(path));
                Self { db: Db::Sqlite(pool, writer, readers), audit_key: Default::default() }
            }
            DatabaseUrl::Postgres(url) => {
                Self { db: Db::Postgres(postgres::connect(url).await?), audit_key: Default::default() }
            }
        })
    }

    /// The key the audit chain is hashed under (`AuditKey::new` of the
    /// master key). Until it is given, every audited write fails: there is
    /// no unkeyed fallback. Given once; a second call is refused.
    pub fn use_audit_key(&self, key: vouchsafe_core::audit::AuditKey) -> Result<(), StoreError> {
        self.audit_key.set(key).map_err(|_| StoreError::Backend("the audit key was already set".into()))
    }

    /// The audit key, for a write that appends to the chain.
    fn audit_key(&self) -> Result<vouchsafe_core::audit::AuditKey, sqlx::Error> {
        self.audit_key
            .get()
            .cloned()
            .ok_or_else(|| sqlx::Error::Configuration("the audit key is not set (SqlStore::use_audit_key)".into()))
    }

    /// Applies every migration not yet applied. Safe to run from several
    /// processes at once (PostgreSQL takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool, ..) => sqlite::migrate(pool).await,
            Db::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    /// Which engine this store runs on, for logs.
    pub fn engine(&self) -> &'static str {
        match self.db {
            Db::Sqlite(..) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// How the database is really set up, read back from it (not from our
    /// own options): for SQLite the journal mode and `synchronous` level,
    /// for PostgreSQL the server version. Logged at start-up.
    pub async fn describe(&self) -> Result<String, StoreError> {
        match &self.db {
            Db::Sqlite(pool, ..) => sqlite::describe(pool).await,
            Db::Postgres(pool) => postgres::describe(pool).await,
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        on_pool!(&self.db, pool => pool.close().await)
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

/// Turns the row count of a conditional write into its outcome: exactly
/// one row changed, or `otherwise` (the row is missing, or changed since read).
pub(crate) fn one_row(affected: Result<u64, sqlx::Error>, otherwise: StoreError) -> Result<(), StoreError> {
    match affected.map_err(map_err)? {
        1 => Ok(()),
        _ => Err(otherwise),
    }
}

/// Maps driver errors onto the store's outcomes. The text of backend errors
/// goes to logs only; it never carries bound values (sqlx does not print them).
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("already exists"),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        other => StoreError::Backend(other.to_string()),
    }
}
