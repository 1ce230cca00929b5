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
    Postgres(&'c mut sqlx::PgConnection),
}

/// What the body of a write (`SqlStore::write`) returns: its statements'
/// future, borrowing the connection and the write's input.
pub(crate) type TxFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// Runs one statement in `$tx` (a `&mut` [`Tx`]) and evaluates to the number of
/// rows it changed.
macro_rules! exec {
    ($tx:expr, $sql:expr, [$($bind:expr),* $(,)?]) => {
        match &mut *$tx {
            $crate::tx::Tx::Writer(c) => c
                .prepare_cached($sql)
                .and_then(|mut s| {
                    $crate::sqlite_reads::execute(&mut s, &[$(&$bind as &dyn rusqlite::ToSql),*])
                })
                .map_err($crate::tx::from_rusqlite),
            $crate::tx::Tx::Postgres(c) => {
                sqlx::query($sql)$(.bind($bind))*.execute(&mut **c).await.map(|r| r.rows_affected())
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
            $crate::tx::Tx::Writer(c) => c
                .prepare_cached($sql)
                .and_then(|mut s| {
                    $crate::tx::fetch!(@writer $fetch s, $row, [$($bind),*])
                })
                .map_err($crate::tx::from_rusqlite),
            $crate::tx::Tx::Postgres(c) => {
                $crate::tx::fetch!(@sqlx $fetch sqlx::query_as::<_, $row>($sql)$(.bind($bind))*, c)
            }
        }
    };
    (@writer one $s:ident, $row:ty, [$($bind:expr),*]) => {
        $crate::sqlite_reads::query_one::<$row>(&mut $s, &[$(&$bind as &dyn rusqlite::ToSql),*])
    };
    (@writer optional $s:ident, $row:ty, [$($bind:expr),*]) => {
        $crate::sqlite_reads::query_optional::<$row>(&mut $s, &[$(&$bind as &dyn rusqlite::ToSql),*])
    };
    (@writer all $s:ident, $row:ty, [$($bind:expr),*]) => {
        $crate::sqlite_reads::query_all::<$row>(&mut $s, &[$(&$bind as &dyn rusqlite::ToSql),*])
    };
    (@sqlx one $query:expr, $c:ident) => { $query.fetch_one(&mut **$c).await };
    (@sqlx all $query:expr, $c:ident) => { $query.fetch_all(&mut **$c).await };
    (@sqlx optional $query:expr, $c:ident) => { $query.fetch_optional(&mut **$c).await };
}
pub(crate) use fetch;

/// Opens a savepoint inside `$tx`: the statements after it can be undone
/// by [`rollback_savepoint!`] without ending the transaction.
macro_rules! savepoint {
    ($tx:expr) => {
        $crate::tx::exec!($tx, "SAVEPOINT change", [])
    };
}
pub(crate) use savepoint;

/// Undoes everything since [`savepoint!`] and closes the savepoint.
macro_rules! rollback_savepoint {
    ($tx:expr) => {
        $crate::tx::exec!($tx, "ROLLBACK TO SAVEPOINT change", []).and($crate::tx::exec!(
            $tx,
            "RELEASE SAVEPOINT change",
            []
        ))
    };
}
pub(crate) use rollback_savepoint;

/// Keeps everything since [`savepoint!`] as part of the transaction.
macro_rules! release_savepoint {
    ($tx:expr) => {
        $crate::tx::exec!($tx, "RELEASE SAVEPOINT change", [])
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
