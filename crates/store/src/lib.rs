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
//!
//! **How SQL is reached — one way to write, two ways to read:**
//!
//! - *Every write* is [`SqlStore::write`] (or [`SqlStore::write_audited`],
//!   the same for one audited statement, or [`SqlStore::write_statement`],
//!   one statement that needs no transaction around it): a body of `tx::exec!` /
//!   `tx::fetch!` statements in one transaction, durable when it returns.
//!   On SQLite the body runs on the group-commit writer's connection
//!   (`group_commit`), the only connection that changes rows; on
//!   PostgreSQL in a pooled transaction. Statements that append to the
//!   audit log or the outbox call [`audit::append_audit`] and
//!   [`webhooks::insert_event`] inside that body (audit entries are
//!   chained afterwards, see `audit`).
//! - *Point reads of the request path* are `read!`: in place on SQLite
//!   (`sqlite_reads`), from the pool on PostgreSQL.
//! - *Listings and other reads* are `on_pool!`. The SQLite pool opens its
//!   connections `query_only`, so a write sent there fails in every test
//!   rather than racing the writer for the lock; only migrations open a
//!   connection of their own, before serving.
//!
//! There is no sqlx transaction on SQLite at all (`tx::Tx` has no such
//! variant), so a write can reach the SQLite file no other way.

mod api_keys;
mod audit;
mod callers;
mod checkpoint;
mod database_url;
mod deliveries;
pub(crate) mod group_commit;
mod key_cache;
mod meta;
mod postgres;
mod postgres_held;
mod providers;
mod rows;
mod services;
mod sqlite;
mod sqlite_reads;
mod tenants;
pub(crate) mod tx;
mod users;
mod verifications;
mod versioned_cache;
mod webhooks;

pub use database_url::{DatabaseUrl, SqliteSync};

#[cfg(feature = "testing")]
pub mod testing;

use vouchsafe_core::store::StoreError;

/// One of the two engines, with what each reaches its database through.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite {
        /// Listings and other reads off the request path. Its connections
        /// are `query_only`: SQLite writes go through `writer` alone.
        pool: sqlx::SqlitePool,
        /// The group-commit writer: every write ([`SqlStore::write`]).
        writer: group_commit::GroupCommit,
        /// The point reads of the request path, in place ([`read!`](sqlite_reads::read)).
        readers: std::sync::Arc<sqlite_reads::Readers>,
        /// API keys kept between requests while the file's count of key
        /// changes is polled (see `key_cache`).
        keys: std::sync::Arc<key_cache::KeyCache>,
        /// How [`SqlStore::migrate`] opens the one other connection that
        /// may change the file, for the schema, before serving.
        schema: Box<sqlx::sqlite::SqliteConnectOptions>,
    },
    Postgres {
        /// Listings, migrations and other reads off the request path.
        pool: sqlx::PgPool,
        /// The request path's point reads and writes: connections held
        /// out of `pool` between uses (see `postgres_held`).
        held: std::sync::Arc<postgres_held::HeldConnections>,
        /// The same for writes that do not wait for their flush, over a
        /// pool of its own whose sessions have `synchronous_commit` off
        /// (see [`SqlStore::write_unflushed`]).
        unflushed: std::sync::Arc<postgres_held::HeldConnections>,
        /// API keys kept between requests while revocations are heard
        /// (see `key_cache`).
        keys: std::sync::Arc<key_cache::KeyCache>,
    },
}

/// Runs the read `$body` with `$pool` bound to whichever pool `$db` holds
/// (on SQLite the pool is `query_only`: a write there fails). The body is
/// compiled once per engine, so each gets its own typed statements while
/// the SQL text is written once.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite { pool: $pool, .. } => $body,
            $crate::Db::Postgres { pool: $pool, .. } => $body,
        }
    };
}
pub(crate) use on_pool;

/// How often a write whose group was rolled back for a neighbour's error
/// is run again before it gives up.
const MAX_RERUNS: usize = 8;

/// How many times a PostgreSQL write is run again after the server
/// rolled it back to break a deadlock or a serialization conflict.
const MAX_PG_RETRIES: usize = 3;

/// Whether PostgreSQL rolled the write back whole for a conflict with a
/// concurrent one (`40P01` deadlock, `40001` serialization failure): it
/// changed nothing, and running it again is safe. The store takes a
/// user's rows in one order (see `users`), so this is a last resort,
/// logged where it happens.
fn rolled_back_for_a_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")))
}

/// Whether a PostgreSQL write that failed with `e` after `retries`
/// reruns is run again: only for a conflict, up to [`MAX_PG_RETRIES`].
fn rerun_after(e: &sqlx::Error, retries: usize) -> bool {
    let again = retries < MAX_PG_RETRIES && rolled_back_for_a_conflict(e);
    if again {
        tracing::warn!(error = %e, retries, "a PostgreSQL write was rolled back for a conflict; running it again");
    }
    again
}

/// A PostgreSQL write: `body` in a transaction of its own on a connection
/// of `held` (see [`SqlStore::write`] and [`SqlStore::write_unflushed`]:
/// whether its commit waits for the flush is the connections' setting),
/// run again if the server rolls it back for a conflict.
async fn write_postgres<I, T, F>(held: &postgres_held::HeldConnections, input: &I, body: F) -> Result<T, sqlx::Error>
where
    F: for<'c> Fn(&'c mut tx::Tx<'_>, &'c I) -> tx::TxFuture<'c, T>,
{
    let mut retries = 0;
    loop {
        let mut conn = held.acquire().await?;
        let written = async {
            let mut open = sqlx::Connection::begin(&mut *conn).await?;
            let out = body(&mut tx::Tx::Postgres(tx::PgTx::transaction(&mut open)), input).await?;
            open.commit().await?;
            Ok(out)
        }
        .await;
        match conn.finish(written) {
            Err(e) if rerun_after(&e, retries) => retries += 1,
            done => return done,
        }
    }
}

/// A PostgreSQL write of one statement, with no transaction around it, on
/// a connection of `held` (see [`SqlStore::write_statement`]), run again
/// if the server rolls its first statement back for a conflict.
async fn write_statement_postgres<I, T, F>(
    held: &postgres_held::HeldConnections,
    input: &I,
    statement: F,
) -> Result<T, sqlx::Error>
where
    F: for<'c> Fn(&'c mut tx::Tx<'_>, &'c I) -> tx::TxFuture<'c, T>,
{
    let mut retries = 0;
    loop {
        let mut conn = held.acquire().await?;
        let mut autocommit = tx::Tx::Postgres(tx::PgTx::autocommit(&mut conn));
        let written = statement(&mut autocommit, input).await;
        // Each statement commits on its own: only a write whose first
        // statement was rolled back has changed nothing.
        let nothing_committed = matches!(&autocommit, tx::Tx::Postgres(pg) if pg.statements() <= 1);
        match conn.finish(written) {
            Err(e) if nothing_committed && rerun_after(&e, retries) => retries += 1,
            done => return done,
        }
    }
}

/// The store: one pool, either engine.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Db,
    /// Set once the master key is loaded; audited writes refuse without it.
    audit_key: std::sync::Arc<std::sync::OnceLock<vouchsafe_core::audit::AuditKey>>,
    /// Tenants' settings as last parsed, by version.
    settings: std::sync::Arc<versioned_cache::VersionedCache<vouchsafe_core::settings::Settings>>,
    /// Tenants' providers as last read for a send, by version.
    providers: std::sync::Arc<versioned_cache::VersionedCache<std::sync::Arc<vouchsafe_core::store::ProvidersToSend>>>,
}

impl SqlStore {
    /// Connects (creating the SQLite file if needed) without migrating.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        Ok(match url {
            DatabaseUrl::Sqlite { path, sync } => {
                let (pool, schema) = sqlite::connect(path, *sync).await?;
                let writer = group_commit::GroupCommit::start(path, *sync)
                    .map_err(|e| crate::setup_failed(format!("cannot open SQLite database {}: {e}", path.display())))?;
                let readers = std::sync::Arc::new(sqlite_reads::Readers::new(path));
                Self {
                    db: Db::Sqlite { pool, writer, readers, keys: Default::default(), schema: Box::new(schema) },
                    audit_key: Default::default(),
                    settings: Default::default(),
                    providers: Default::default(),
                }
            }
            DatabaseUrl::Postgres(url) => {
                let pool = postgres::connect(url).await?;
                let held = postgres_held::HeldConnections::new(pool.clone(), postgres_held::HELD);
                let unflushed =
                    postgres_held::HeldConnections::new(postgres::connect_unflushed(url)?, postgres_held::UNFLUSHED);
                Self {
                    db: Db::Postgres {
                        pool,
                        held: std::sync::Arc::new(held),
                        unflushed: std::sync::Arc::new(unflushed),
                        keys: Default::default(),
                    },
                    audit_key: Default::default(),
                    settings: Default::default(),
                    providers: Default::default(),
                }
            }
        })
    }

    /// The key the audit chain is hashed under (`AuditKey::new` of the
    /// master key). Until it is given, every audited write fails: there is
    /// no unkeyed fallback. Given once; a second call is refused.
    pub fn use_audit_key(&self, key: vouchsafe_core::audit::AuditKey) -> Result<(), StoreError> {
        self.audit_key.set(key).map_err(|_| setup_failed("the audit key was already set".into()))
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
            Db::Sqlite { schema, .. } => sqlite::migrate(schema).await,
            Db::Postgres { pool, .. } => postgres::migrate(pool).await,
        }
    }

    /// Which engine this store runs on, for logs.
    pub fn engine(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres { .. } => "postgres",
        }
    }

    /// How the database is really set up, read back from it (not from our
    /// own options): for SQLite the journal mode and `synchronous` level,
    /// for PostgreSQL the server version. Logged at start-up.
    pub async fn describe(&self) -> Result<String, StoreError> {
        match &self.db {
            Db::Sqlite { pool, .. } => sqlite::describe(pool).await,
            Db::Postgres { pool, .. } => postgres::describe(pool).await,
        }
    }

    /// Closes the pool, waiting for connections to be returned, after
    /// chaining the audit entries still pending (a server chains in the
    /// background; a CLI command chains what it wrote here, before the
    /// process ends).
    pub async fn close(&self) {
        if let Err(e) = vouchsafe_core::store::AuditStore::chain_audit(self).await {
            tracing::warn!(error = %vouchsafe_core::error::chain(&e), "audit entries left to chain later");
        }
        if let Db::Postgres { held, unflushed, .. } = &self.db {
            held.release_all();
            unflushed.release_all();
            unflushed.pool().close().await;
        }
        on_pool!(&self.db, pool => pool.close().await)
    }

    /// Runs `body` as one durable write and returns its result once the
    /// commit is durable; an error from `body` undoes all its statements.
    /// This is the only way the store writes (see the crate's `//!`).
    ///
    /// `body` gets the transaction's connection and a reference to
    /// `input`, the owned values its statements bind. On SQLite it joins
    /// the writer's next group commit (`group_commit`), on the writer's
    /// thread: there it runs to completion in one poll, and a group rolled
    /// back for another write's error runs it again (at most
    /// [`MAX_RERUNS`] times), which is why it is a `Fn` over borrowed
    /// input. On PostgreSQL it runs once in a transaction of its own.
    pub(crate) async fn write<I, T, F>(&self, input: I, body: F) -> Result<T, sqlx::Error>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'c> Fn(&'c mut tx::Tx<'_>, &'c I) -> tx::TxFuture<'c, T> + Send + Sync + 'static,
    {
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let work = std::sync::Arc::new((input, body));
                for _ in 0..=MAX_RERUNS {
                    let work = work.clone();
                    let written = writer.write(move |conn| {
                        let (input, body) = &*work;
                        tx::run_in_place(body(conn, input))
                    });
                    match written.await {
                        Ok(out) => return Ok(out),
                        Err(group_commit::GroupError::Sql(e)) => return Err(e),
                        Err(group_commit::GroupError::Retry) => continue,
                    }
                }
                Err(sqlx::Error::Protocol("write rolled back too often by failing neighbours".into()))
            }
            // Boxed, as every PostgreSQL branch on a hot path: sqlx's
            // futures are kilobytes, and inline they would make this
            // future, and its callers', that size on SQLite too
            // (`tests/store/future_sizes.rs`).
            Db::Postgres { held, .. } => Box::pin(write_postgres(held, &input, body)).await,
        }
    }

    /// Whether this store's database is PostgreSQL, where some writes
    /// are split to keep hot rows' locks short (see [`SqlStore::write_unflushed`]).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres { .. })
    }

    /// PostgreSQL only: [`SqlStore::write`] whose commit does not wait for
    /// its WAL to reach the disk (on a connection whose session has
    /// `synchronous_commit` off), so the row locks it takes are held for a
    /// round trip, not for a disk flush. A row every send of a tenant counts (its
    /// send counter) otherwise lets only one commit through per flush.
    ///
    /// Such a write becomes durable with the next durable commit of any
    /// transaction: PostgreSQL's WAL is one sequence, flushed in order, so
    /// a flush reaching a later commit record carries this one. It is for
    /// a write whose effect matters only through a durable write that
    /// follows it (a send's counters, then the verification they count);
    /// a crash between the two loses the count of a send never made.
    pub(crate) async fn write_unflushed<I, T, F>(&self, input: I, body: F) -> Result<T, sqlx::Error>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'c> Fn(&'c mut tx::Tx<'_>, &'c I) -> tx::TxFuture<'c, T> + Send + Sync + 'static,
    {
        match &self.db {
            Db::Postgres { unflushed, .. } => Box::pin(write_postgres(unflushed, &input, body)).await,
            Db::Sqlite { .. } => self.write(input, body).await,
        }
    }

    /// A write that is exactly one statement: durable when it returns, like
    /// [`SqlStore::write`]. On SQLite it joins the group commit like any
    /// write. On PostgreSQL a single statement is already its own
    /// transaction, so it runs on a pooled connection without `BEGIN` and
    /// `COMMIT`: one round trip instead of three, on the paths hit hardest
    /// (a wrong code). A body of more than one statement belongs in
    /// [`SqlStore::write`], where they commit together.
    pub(crate) async fn write_statement<I, T, F>(&self, input: I, statement: F) -> Result<T, sqlx::Error>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'c> Fn(&'c mut tx::Tx<'_>, &'c I) -> tx::TxFuture<'c, T> + Send + Sync + 'static,
    {
        match &self.db {
            Db::Sqlite { .. } => self.write(input, statement).await,
            Db::Postgres { held, .. } => Box::pin(write_statement_postgres(held, &input, statement)).await,
        }
    }

    /// [`SqlStore::write_statement`] whose commit does not wait for its
    /// flush on PostgreSQL, as [`SqlStore::write_unflushed`]'s: the row
    /// locks the statement takes are held while it runs and no longer, no
    /// round trip of a transaction's `COMMIT` after it. Each statement of
    /// `statement` is a transaction of its own there.
    pub(crate) async fn write_statement_unflushed<I, T, F>(&self, input: I, statement: F) -> Result<T, sqlx::Error>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'c> Fn(&'c mut tx::Tx<'_>, &'c I) -> tx::TxFuture<'c, T> + Send + Sync + 'static,
    {
        match &self.db {
            Db::Sqlite { .. } => self.write(input, statement).await,
            Db::Postgres { unflushed, .. } => Box::pin(write_statement_postgres(unflushed, &input, statement)).await,
        }
    }

    /// A write of one conditional statement that records `audit` when it
    /// changed a row: `statement` runs and answers how many rows it
    /// changed; if any, the audit entry is appended in the same
    /// transaction, so the change and its entry land together or not at
    /// all. Answers the rows changed.
    pub(crate) async fn write_audited<I, F>(
        &self,
        tenant: &str,
        audit: &vouchsafe_core::audit::AuditEntry,
        input: I,
        statement: F,
    ) -> Result<u64, sqlx::Error>
    where
        I: Send + Sync + 'static,
        F: for<'c> Fn(&'c mut tx::Tx<'_>, &'c I) -> tx::TxFuture<'c, u64> + Send + Sync + 'static,
    {
        let input = (self.audit_key()?, tenant.to_owned(), audit.clone(), input, statement);
        self.write(input, |conn, (key, tenant, audit, input, statement)| {
            Box::pin(async move {
                let changed = statement(conn, input).await?;
                if changed > 0 {
                    audit::append_audit(conn, key, tenant, audit).await?;
                }
                Ok(changed)
            })
        })
        .await
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

/// A failure to open, set up or migrate the database, in words.
pub(crate) fn setup_failed(text: String) -> StoreError {
    StoreError::Backend(text.into())
}

/// Maps driver errors onto the store's outcomes; a backend error is kept as
/// the cause. Its text goes to logs only; it never carries bound values
/// (sqlx does not print them).
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("already exists"),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        other => StoreError::Backend(Box::new(other)),
    }
}
