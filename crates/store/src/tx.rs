//! One statement syntax for every transaction, whichever connection runs it.
//!
//! A change is written once ([`exec!`], [`fetch!`]) and runs on two kinds
//! of connection: the SQLite group-commit writer's own rusqlite connection
//! (see `group_commit`) or a sqlx PostgreSQL connection. There is no third:
//! a SQLite write can only be made on the writer (`SqlStore::write`). The writer is why this exists: through sqlx every
//! SQLite statement is a hand-off to the connection's worker thread and
//! back, and on the check path those hand-offs cost more CPU than the
//! statements; on the writer's thread a statement is a plain call.
//!
//! Statements evaluate to `Result<_, sqlx::Error>` on every connection:
//! rusqlite's errors are carried as sqlx database errors with the same
//! kinds (unique, foreign key, …), so callers and `map_err` see one type.
//! On the writer the body's future never waits (every statement there is
//! synchronous), so the writer runs it to completion in one poll
//! ([`run_in_place`]).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use sqlx::error::{DatabaseError, ErrorKind};

/// A connection inside an open transaction.
pub(crate) enum Tx<'c> {
    /// The SQLite group-commit writer's connection, on its own thread.
    Writer(&'c mut rusqlite::Connection),
    Postgres(PgTx<'c>),
}

/// A PostgreSQL connection running one write's statements, and where that
/// write stands with its savepoints.
///
/// On SQLite many writes share one transaction (the group commit), so a
/// write that may undo its own statements needs a real savepoint. On
/// PostgreSQL each write is a transaction of its own: a savepoint taken
/// before the write's first statement marks the transaction's start, so
/// taking and releasing it need no round trip, and undoing it is
/// `ROLLBACK` then `BEGIN`. That saves two of a write's round trips
/// (`SAVEPOINT`, `RELEASE`) on paths such as counting an answer.
pub(crate) struct PgTx<'c> {
    conn: &'c mut sqlx::PgConnection,
    /// Inside a transaction that has run no statement and taken no
    /// savepoint yet (a savepoint now would mark its start).
    at_start: bool,
    /// Real savepoints open (taken after the transaction's first statement).
    real_savepoints: u32,
    /// Statements handed the connection so far: outside a transaction,
    /// whether more than one may have committed.
    statements: u32,
}

impl<'c> PgTx<'c> {
    /// `conn` inside a transaction just begun.
    pub(crate) fn transaction(conn: &'c mut sqlx::PgConnection) -> Self {
        PgTx { conn, at_start: true, real_savepoints: 0, statements: 0 }
    }

    /// `conn` outside any transaction: each statement is its own.
    pub(crate) fn autocommit(conn: &'c mut sqlx::PgConnection) -> Self {
        PgTx { conn, at_start: false, real_savepoints: 0, statements: 0 }
    }

    /// The connection, for a statement about to run.
    pub(crate) fn statement(&mut self) -> &mut sqlx::PgConnection {
        self.at_start = false;
        self.statements += 1;
        self.conn
    }

    /// How many statements have been handed the connection.
    pub(crate) fn statements(&self) -> u32 {
        self.statements
    }

    /// Opens a savepoint: a mark in place if nothing has run yet.
    pub(crate) async fn savepoint(&mut self) -> Result<u64, sqlx::Error> {
        if self.at_start {
            self.at_start = false;
            return Ok(0);
        }
        self.real_savepoints += 1;
        sqlx::query("SAVEPOINT change").execute(&mut *self.statement()).await.map(|r| r.rows_affected())
    }

    /// Closes the innermost savepoint, keeping its statements (the mark at
    /// the start needs nothing).
    pub(crate) async fn release(&mut self) -> Result<u64, sqlx::Error> {
        if self.real_savepoints > 0 {
            self.real_savepoints -= 1;
            return sqlx::query("RELEASE SAVEPOINT change").execute(&mut *self.conn).await.map(|r| r.rows_affected());
        }
        Ok(0)
    }

    /// Undoes everything since the innermost savepoint and closes it; at
    /// the transaction's start that is the whole transaction, begun again.
    pub(crate) async fn rollback(&mut self) -> Result<u64, sqlx::Error> {
        if self.real_savepoints > 0 {
            self.real_savepoints -= 1;
            sqlx::query("ROLLBACK TO SAVEPOINT change").execute(&mut *self.conn).await?;
            return sqlx::query("RELEASE SAVEPOINT change").execute(&mut *self.conn).await.map(|r| r.rows_affected());
        }
        sqlx::query("ROLLBACK").execute(&mut *self.conn).await?;
        sqlx::query("BEGIN").execute(&mut *self.conn).await?;
        self.at_start = true;
        Ok(0)
    }
}

/// What the body of a write (`SqlStore::write`) returns: its statements'
/// future, borrowing the connection and the write's input.
pub(crate) type TxFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// Runs one statement in `$tx` (a `&mut` [`Tx`]) and evaluates to the number of
/// rows it changed.
macro_rules! exec {
    ($tx:expr, $sql:expr, [$($bind:expr),* $(,)?]) => {
        match &mut *$tx {
            $crate::tx::Tx::Writer(c) => {
                // One per call site: it keeps the text's parameter numbers (see `Layout`).
                static LAYOUT: $crate::sqlite_reads::Layout = $crate::sqlite_reads::Layout::new();
                LAYOUT.execute(c, $sql, &[$(&$bind as &dyn rusqlite::ToSql),*]).map_err($crate::tx::from_rusqlite)
            }
            $crate::tx::Tx::Postgres(c) => {
                sqlx::query($sql)$(.bind($bind))*.execute(c.statement()).await.map(|r| r.rows_affected())
            }
        }
    };
}
pub(crate) use exec;

/// Runs one statement in `$tx` (a `&mut` [`Tx`]) and reads its rows as `$row`
/// (a `row!` struct or a tuple): `one` answers the row or `RowNotFound`,
/// `optional` an `Option`, `all` a `Vec`.
macro_rules! fetch {
    ($tx:expr, $fetch:ident $row:ty, $sql:expr, [$($bind:expr),* $(,)?]) => {
        match &mut *$tx {
            $crate::tx::Tx::Writer(c) => {
                // One per call site; it trusts the one text it checked (see `Layout`).
                static LAYOUT: $crate::sqlite_reads::Layout = $crate::sqlite_reads::Layout::new();
                LAYOUT
                    .read(c, $sql, &[$(&$bind as &dyn rusqlite::ToSql),*], |s| $crate::tx::fetch!(@writer $fetch s, $row))
                    .map_err($crate::tx::from_rusqlite)
            }
            $crate::tx::Tx::Postgres(c) => {
                $crate::tx::fetch!(@sqlx $fetch sqlx::query_as::<_, $row>($sql)$(.bind($bind))*, c)
            }
        }
    };
    (@writer one $s:ident, $row:ty) => { $crate::sqlite_reads::query_one::<$row>($s) };
    (@writer optional $s:ident, $row:ty) => { $crate::sqlite_reads::query_optional::<$row>($s) };
    (@writer all $s:ident, $row:ty) => { $crate::sqlite_reads::query_all::<$row>($s) };
    (@sqlx one $query:expr, $c:ident) => { $query.fetch_one($c.statement()).await };
    (@sqlx all $query:expr, $c:ident) => { $query.fetch_all($c.statement()).await };
    (@sqlx optional $query:expr, $c:ident) => { $query.fetch_optional($c.statement()).await };
}
pub(crate) use fetch;

/// Opens a savepoint inside `$tx`: the statements after it can be undone
/// by [`rollback_savepoint!`] without ending the transaction (on
/// PostgreSQL, before the first statement, a mark in place: see [`PgTx`]).
macro_rules! savepoint {
    ($tx:expr) => {
        match &mut *$tx {
            $crate::tx::Tx::Postgres(c) => c.savepoint().await,
            writer => $crate::tx::exec!(writer, "SAVEPOINT change", []),
        }
    };
}
pub(crate) use savepoint;

/// Undoes everything since [`savepoint!`] and closes the savepoint.
macro_rules! rollback_savepoint {
    ($tx:expr) => {
        match &mut *$tx {
            $crate::tx::Tx::Postgres(c) => c.rollback().await,
            writer => $crate::tx::exec!(writer, "ROLLBACK TO SAVEPOINT change", []).and($crate::tx::exec!(
                writer,
                "RELEASE SAVEPOINT change",
                []
            )),
        }
    };
}
pub(crate) use rollback_savepoint;

/// Keeps everything since [`savepoint!`] as part of the transaction.
macro_rules! release_savepoint {
    ($tx:expr) => {
        match &mut *$tx {
            $crate::tx::Tx::Postgres(c) => c.release().await,
            writer => $crate::tx::exec!(writer, "RELEASE SAVEPOINT change", []),
        }
    };
}
pub(crate) use release_savepoint;

/// Runs a body whose statements are all on the writer's connection: its
/// future is ready at the first poll. Should a body ever wait on something
/// else, that is refused as an error rather than blocking the writer.
pub(crate) fn run_in_place<T>(body: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, sqlx::Error> {
    let mut body = pin!(body);
    match body.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(sqlx::Error::Protocol("a write on the SQLite writer waited on something else".into())),
    }
}

/// rusqlite's error as the sqlx error the same failure gives through sqlx:
/// no row is `RowNotFound`, everything else a database error whose kind
/// says which constraint failed. The text never carries bound values.
pub(crate) fn from_rusqlite(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::QueryReturnedNoRows => sqlx::Error::RowNotFound,
        other => sqlx::Error::Database(Box::new(WriterError { message: other.to_string(), source: other })),
    }
}

/// An error of the writer's connection, seen as a sqlx database error.
#[derive(Debug)]
struct WriterError {
    message: String,
    source: rusqlite::Error,
}

impl fmt::Display for WriterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for WriterError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

impl DatabaseError for WriterError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.source.sqlite_error().map(|e| Cow::Owned(e.extended_code.to_string()))
    }

    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.source.sqlite_error().map(|e| e.extended_code) {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => ErrorKind::UniqueViolation,
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    //! A write's savepoints undo what they should on both engines (these
    //! run on SQLite and on PostgreSQL whatever `TEST_DB` says): on
    //! PostgreSQL a savepoint before the first statement is only a mark.

    use crate::testing::{connect, fresh_database_on};

    /// One step of a write's body.
    #[derive(Clone, Copy)]
    enum Step {
        Insert(i64),
        Savepoint,
        Release,
        Rollback,
    }

    /// Runs `steps` as one write on a fresh database; the values kept.
    async fn kept_after(postgres: bool, steps: &'static [Step]) -> Vec<i64> {
        let db = fresh_database_on(postgres).await.unwrap();
        let store = connect(&db).await.unwrap();
        store
            .write((), |conn, ()| Box::pin(async move { exec!(conn, "CREATE TABLE kept (v BIGINT NOT NULL)", []) }))
            .await
            .unwrap();
        store
            .write(steps, |conn, steps| {
                Box::pin(async move {
                    for step in steps.iter() {
                        match *step {
                            Step::Insert(v) => exec!(conn, "INSERT INTO kept (v) VALUES ($1)", [v])?,
                            Step::Savepoint => savepoint!(conn)?,
                            Step::Release => release_savepoint!(conn)?,
                            Step::Rollback => rollback_savepoint!(conn)?,
                        };
                    }
                    Ok(())
                })
            })
            .await
            .unwrap();
        let rows = store
            .write((), |conn, ()| Box::pin(async move { fetch!(conn, all(i64,), "SELECT v FROM kept ORDER BY v", []) }))
            .await
            .unwrap();
        store.close().await;
        rows.into_iter().map(|(v,)| v).collect()
    }

    async fn on_both(steps: &'static [Step], expected: &[i64]) {
        for postgres in [false, true] {
            assert_eq!(kept_after(postgres, steps).await, expected, "postgres: {postgres}");
        }
    }

    #[tokio::test]
    async fn undoing_a_savepoint_taken_first_keeps_only_what_follows() {
        use Step::*;
        on_both(&[Savepoint, Insert(1), Rollback, Insert(2)], &[2]).await;
    }

    #[tokio::test]
    async fn undoing_a_savepoint_taken_after_a_statement_keeps_what_came_before() {
        use Step::*;
        on_both(&[Insert(1), Savepoint, Insert(2), Rollback, Insert(3)], &[1, 3]).await;
    }

    #[tokio::test]
    async fn a_released_savepoint_keeps_its_statements() {
        use Step::*;
        on_both(&[Savepoint, Insert(1), Release, Insert(2)], &[1, 2]).await;
    }

    #[tokio::test]
    async fn a_nested_savepoint_undone_leaves_the_outer_ones_statements() {
        use Step::*;
        on_both(&[Savepoint, Insert(1), Savepoint, Insert(2), Rollback, Release], &[1]).await;
        on_both(&[Savepoint, Insert(1), Savepoint, Insert(2), Release, Rollback, Insert(3)], &[3]).await;
    }
}
