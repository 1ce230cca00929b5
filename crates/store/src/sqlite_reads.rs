//! Point reads on the request path, run in place on the calling thread.
//!
//! sqlx runs every SQLite connection on a worker thread of its own, so each
//! query through its pool is a pool checkout, two thread hand-offs and a
//! spawned task to return the connection. For the reads every API request
//! makes — the caller's API key, the verification being checked — that
//! costs several times the read itself: in WAL mode a lookup by a unique
//! index takes a few microseconds and never waits for the writer. These
//! reads therefore run synchronously on the caller's thread, on a
//! connection taken from a short idle list (one per thread reading at that
//! moment, so in practice one per runtime worker).
//!
//! Only reads go here, on connections that refuse writes (`query_only`):
//! every write still goes through the group commit, so what is durable and
//! when is decided in one place. Each statement reads the latest committed
//! state, the same as a pool read would.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::OnceLock;

use rusqlite::{Connection, OpenFlags, ToSql};
use vouchsafe_core::store::{StoreError, StoreResult};

/// Idle connections kept beyond this are closed; more only ever exist
/// when more threads than that read at the same moment.
const MAX_IDLE: usize = 8;

/// Read-only connections to one SQLite file.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), idle: Mutex::new(Vec::new()) }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        // No memory map (`mmap_size` 0, whatever the build's default). A
        // read transaction that finds the WAL changed since the
        // connection's last one unmaps the whole database file (SQLite's
        // pager, so that a file truncated and regrown by another process
        // is never read through a stale map), and under steady writes
        // that is nearly every read: each lookup cost a munmap, a fresh
        // mmap, page faults, and a TLB shootdown on the other cores. With
        // plain reads from the page cache, wrong-code checks went from
        // 14,484 and 13,725/s to 18,135 and 14,819/s, and wrong TOTP
        // answers at a million users from 7,308 to 9,517/s
        // (bench/RESULTS.md).
        conn.pragma_update(None, "mmap_size", 0)?;
        crate::sqlite::plan_once(&conn)?;
        Ok(conn)
    }

    /// Runs `read` on an idle connection (opening one if none is idle).
    /// `read` must be a single short statement: it runs on the caller's
    /// thread, which may be an async runtime worker.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().map_err(map_err)?,
        };
        let out = read(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
        out.map_err(map_err)
    }
}

/// Maps rusqlite errors onto the store's outcomes; the text never carries
/// bound values.
fn map_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        other => StoreError::Backend(Box::new(other)),
    }
}

/// The number of each of `statement`'s parameters, in SQLite's order:
/// SQLite treats `$1` as a name and numbers a statement's parameters in
/// the order they first appear, so binding by position would give `$5`
/// the fourth value in a statement that names `$5` before `$4`.
fn parameter_numbers(statement: &rusqlite::Statement<'_>) -> rusqlite::Result<Box<[usize]>> {
    (1..=statement.parameter_count())
        .map(|index| {
            let name = statement.parameter_name(index).unwrap_or("?");
            let number = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|n| *n > 0);
            number.ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_owned()))
        })
        .collect()
}

/// Binds to each of `statement`'s parameters the value its number in
/// `numbers` (see [`parameter_numbers`]) names.
fn bind_numbered(
    statement: &mut rusqlite::Statement<'_>,
    numbers: &[usize],
    values: &[&dyn ToSql],
) -> rusqlite::Result<()> {
    for (index, number) in (1..).zip(numbers) {
        let value = values.get(number - 1).ok_or(rusqlite::Error::InvalidParameterCount(*number, values.len()))?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

/// The first row of `statement` (its values bound), if any.
pub(crate) fn query_optional<T: FromSqliteRow>(statement: &mut rusqlite::Statement<'_>) -> rusqlite::Result<Option<T>> {
    let mut rows = statement.raw_query();
    rows.next()?.map(T::from_sqlite).transpose()
}

/// The first row of `statement` (its values bound); none is `QueryReturnedNoRows`.
pub(crate) fn query_one<T: FromSqliteRow>(statement: &mut rusqlite::Statement<'_>) -> rusqlite::Result<T> {
    query_optional(statement)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

/// Every row of `statement` (its values bound).
pub(crate) fn query_all<T: FromSqliteRow>(statement: &mut rusqlite::Statement<'_>) -> rusqlite::Result<Vec<T>> {
    let mut rows = statement.raw_query();
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(T::from_sqlite(row)?);
    }
    Ok(all)
}

/// A row type the in-place reader can build (see [`row!`]).
pub(crate) trait FromSqliteRow: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;

    /// The same from a row that joins several, where this one's columns
    /// start at column `first` (see [`column`]: found there at once,
    /// where a lookup by name compares against every column before).
    fn from_sqlite_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
        let _ = first;
        Self::from_sqlite(row)
    }
}

/// Tuples read their columns by position, for the few statements that
/// return one or two plain values (`RETURNING seq, hash`).
macro_rules! tuple_from_sqlite_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: rusqlite::types::FromSql),+> FromSqliteRow for ($($t,)+) {
            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    };
}
tuple_from_sqlite_row!(A 0);
tuple_from_sqlite_row!(A 0, B 1);
tuple_from_sqlite_row!(A 0, B 1, C 2);
tuple_from_sqlite_row!(A 0, B 1, C 2, D 3);

/// Column `name` of `row`, looked for first at `index`, where it is when the
/// SELECT lists columns in the struct's order (as every read here does):
/// then finding it costs one comparison, where rusqlite's lookup by name
/// compares case-insensitively against every column before it, which on a
/// wide row cost more than the lookup itself. Elsewhere, by name. Inside a
/// [`Layout::read`] whose call site's layout is checked, at `index` alone.
pub(crate) fn column<T: rusqlite::types::FromSql>(
    row: &rusqlite::Row<'_>,
    index: usize,
    name: &str,
) -> rusqlite::Result<T> {
    let Reading::Checking { found, moved } = READING.get() else {
        return row.get(index);
    };
    match row.as_ref().column_name(index) {
        Ok(at_index) if at_index == name => {
            READING.set(Reading::Checking { found: found | bit(index), moved });
            row.get(index)
        }
        _ => {
            READING.set(Reading::Checking { found, moved: true });
            row.get(name)
        }
    }
}

/// How [`column`] finds columns on this thread at the moment.
#[derive(Clone, Copy)]
enum Reading {
    /// At their index, unchecked: the call site's layout is checked.
    InPlace,
    /// By name at their index (elsewhere by name): `found` has the bit of
    /// each column found at the index it was read at, `moved` is set once
    /// one was not.
    Checking { found: u64, moved: bool },
}

thread_local! {
    static READING: std::cell::Cell<Reading> =
        const { std::cell::Cell::new(Reading::Checking { found: 0, moved: false }) };
}

/// Column `index`'s bit in [`Reading::Checking`]'s `found` (none past 63:
/// a statement that wide is never read in place).
fn bit(index: usize) -> u64 {
    if index < 64 { 1 << index } else { 0 }
}

/// Whether one call site's rows are read in place, column by position.
///
/// Checking each column's name at its index took 3% of the instructions of
/// a wrong TOTP answer (30 columns: rusqlite copies each name out of
/// SQLite and checks it is UTF-8 before it can be compared). A call site
/// runs one `&'static str` against a schema fixed once migrations have
/// run, and its row type reads the same columns at the same indexes each
/// time, so once one of its reads has found every column of the statement
/// at the index its row read it by, under its name, later reads at that
/// site take each column at its index unchecked. A read that found a
/// column elsewhere, left one unread (an outer join's null branch, a
/// column no field takes) or failed proves nothing, and the site keeps
/// checking. The trust is for the one text that was checked (the same
/// `&'static str`, address and length): a site that chooses between texts
/// (a caller verification's ending does) reads the others checked.
///
/// A call site keeps its text's parameter numbers too: looking each
/// parameter's name up in SQLite and parsing it took 1.6% of a wrong TOTP
/// answer's instructions, for an answer fixed by the text.
pub(crate) struct Layout {
    checked: OnceLock<&'static str>,
    numbers: OnceLock<(&'static str, Box<[usize]>)>,
}

impl Layout {
    pub(crate) const fn new() -> Self {
        Self { checked: OnceLock::new(), numbers: OnceLock::new() }
    }

    /// Prepares `sql` on `conn` (from its cache), binds `values` and runs
    /// `read`, which reads the statement's rows: what `read!` and `fetch!`
    /// do at each call site, with the site's own `Layout`.
    pub(crate) fn read<T>(
        &self,
        conn: &Connection,
        sql: &'static str,
        values: &[&dyn ToSql],
        read: impl FnOnce(&mut rusqlite::Statement<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut statement = self.prepared(conn, sql, values)?;
        let columns = statement.column_count();
        let in_place = self.in_place(sql);
        let start = if in_place { Reading::InPlace } else { Reading::Checking { found: 0, moved: false } };
        let _restore = Restore(READING.replace(start));
        let out = read(&mut statement);
        if !in_place
            && out.is_ok()
            && (1..=64).contains(&columns)
            && let Reading::Checking { found, moved: false } = READING.get()
            && found == u64::MAX >> (64 - columns)
        {
            let _ = self.checked.set(sql);
        }
        out
    }

    /// Prepares `sql` on `conn`, binds `values` and runs it: what `exec!`
    /// does at each call site. The rows it changed.
    pub(crate) fn execute(&self, conn: &Connection, sql: &'static str, values: &[&dyn ToSql]) -> rusqlite::Result<u64> {
        self.prepared(conn, sql, values)?.raw_execute().map(|n| n as u64)
    }

    /// `sql` prepared on `conn` (from its cache) with `values` bound by
    /// the numbers its parameters are named by: this site's kept numbers if
    /// they are `sql`'s (the same `&'static str`), else looked up (and
    /// kept, for the first text the site binds).
    fn prepared<'c>(
        &self,
        conn: &'c Connection,
        sql: &'static str,
        values: &[&dyn ToSql],
    ) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        let mut statement = conn.prepare_cached(sql)?;
        if let Some((kept_for, numbers)) = self.numbers.get()
            && std::ptr::eq(*kept_for, sql)
        {
            bind_numbered(&mut statement, numbers, values)?;
            return Ok(statement);
        }
        let numbers = parameter_numbers(&statement)?;
        bind_numbered(&mut statement, &numbers, values)?;
        let _ = self.numbers.set((sql, numbers));
        Ok(statement)
    }

    fn in_place(&self, sql: &'static str) -> bool {
        self.checked.get().is_some_and(|checked| std::ptr::eq(*checked, sql))
    }
}

/// Puts back how [`column`] found columns before a [`Layout::read`], even
/// if the read panics.
struct Restore(Reading);

impl Drop for Restore {
    fn drop(&mut self) {
        READING.set(self.0);
    }
}

/// Declares a row struct once for both drivers: sqlx's `FromRow` for the
/// pools, [`FromSqliteRow`] for the in-place reader, each reading the
/// columns by the field's name (or by the `as "column"` given after it).
macro_rules! row {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($field:ident $(as $column:literal)?: $ty:ty),* $(,)?
    }) => {
        #[derive(sqlx::FromRow)]
        $(#[$meta])*
        $vis struct $name {
            $($(#[sqlx(rename = $column)])? $field: $ty,)*
        }

        impl $crate::sqlite_reads::FromSqliteRow for $name {
            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Self::from_sqlite_at(row, 0)
            }

            fn from_sqlite_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
                // Fields are evaluated in the order written: the n-th reads
                // column `first` + n first.
                let mut index = first..;
                Ok(Self { $($field: $crate::sqlite_reads::column(
                    row,
                    index.next().unwrap_or_default(),
                    $crate::sqlite_reads::row!(@column $field $($column)?),
                )?,)* })
            }
        }
    };
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $column:literal) => { $column };
}
pub(crate) use row;

/// A read on the request path: in place on SQLite, from the pool on
/// PostgreSQL, with the same SQL and binds. `one` answers the row or
/// `NotFound`, `optional` an `Option`, `all` a `Vec`; the row type names
/// a [`row!`] struct.
macro_rules! read {
    ($store:expr, $fetch:ident $row:ty, $sql:expr, [$($bind:expr),* $(,)?]) => {
        match $store.db() {
            $crate::Db::Sqlite { readers, .. } => readers.read(|conn| {
                // One per call site; it trusts the one text it checked (see `Layout`).
                static LAYOUT: $crate::sqlite_reads::Layout = $crate::sqlite_reads::Layout::new();
                LAYOUT.read(conn, $sql, &[$(&$bind as &dyn rusqlite::ToSql),*], |statement| {
                    $crate::sqlite_reads::read!(@sqlite $fetch statement, $row)
                })
            }),
            // Boxed: sqlx's futures are kilobytes, and inline they would
            // make every caller's future that size on SQLite too, copied
            // whole each time it is moved (a tenth of an answer's
            // instructions, counted by callgrind).
            $crate::Db::Postgres { held, .. } => Box::pin(async {
                let mut conn = held.acquire().await?;
                let read = $crate::sqlite_reads::read!(@pool $fetch sqlx::query_as::<_, $row>($sql)$(.bind($bind))*, conn);
                conn.finish(read)
            })
            .await
            .map_err($crate::map_err),
        }
    };
    (@sqlite one $statement:ident, $row:ty) => { $crate::sqlite_reads::query_one::<$row>($statement) };
    (@sqlite optional $statement:ident, $row:ty) => { $crate::sqlite_reads::query_optional::<$row>($statement) };
    (@sqlite all $statement:ident, $row:ty) => { $crate::sqlite_reads::query_all::<$row>($statement) };
    (@pool one $query:expr, $conn:ident) => { $query.fetch_one(&mut *$conn).await };
    (@pool optional $query:expr, $conn:ident) => { $query.fetch_optional(&mut *$conn).await };
    (@pool all $query:expr, $conn:ident) => { $query.fetch_all(&mut *$conn).await };
}
pub(crate) use read;

#[cfg(test)]
mod tests {
    use super::*;

    row! {
        struct NumberRow {
            n: i64,
            label as "name": Option<String>,
        }
    }

    fn fresh_file(name: &str) -> (PathBuf, Connection) {
        let path = std::env::temp_dir().join(format!("vouchsafe-sqlite-reads-{name}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "wal").unwrap();
        writer.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, name TEXT)", []).unwrap();
        (path, writer)
    }

    fn number(readers: &Readers, n: i64) -> StoreResult<NumberRow> {
        readers.read(|conn| {
            conn.prepare_cached("SELECT n, name FROM t WHERE n = $1")?.query_row([n], NumberRow::from_sqlite)
        })
    }

    /// An idle reader sees a commit made after its last read (each
    /// statement reads the latest committed state), columns map by name
    /// (renamed ones too), and a missing row is `NotFound`.
    #[test]
    fn reads_see_every_commit_and_map_columns_by_name() {
        let (path, writer) = fresh_file("commits");
        let readers = Readers::new(&path);
        assert!(matches!(number(&readers, 1), Err(StoreError::NotFound)));
        writer.execute("INSERT INTO t (n, name) VALUES (1, 'one')", []).unwrap();
        let row = number(&readers, 1).unwrap();
        assert_eq!((row.n, row.label.as_deref()), (1, Some("one")));
        writer.execute("UPDATE t SET name = NULL WHERE n = 1", []).unwrap();
        assert_eq!(number(&readers, 1).unwrap().label, None, "the idle connection read the new commit");
        assert_eq!(readers.idle.lock().unwrap().len(), 1, "one thread reading needs one connection");
        let mapped = readers.read(|conn| conn.query_row("PRAGMA mmap_size", [], |r| r.get::<_, i64>(0))).unwrap();
        assert_eq!(mapped, 0, "lookups read the file without a memory map");
    }

    /// A reader keeps each statement's plan too, whatever its bound
    /// `LIMIT` (see `sqlite::plan_once`).
    #[test]
    fn a_reader_prepares_a_statement_once_whatever_its_limit() {
        let (path, _writer) = fresh_file("plan-once");
        let readers = Readers::new(&path);
        assert_eq!(readers.read(crate::sqlite::times_prepared_again).unwrap(), 0);
    }

    /// One read at a call site through a [`Layout`] (as `read!` makes
    /// them), with its own static.
    fn read_at(readers: &Readers, layout: &Layout, sql: &'static str, n: i64) -> StoreResult<NumberRow> {
        readers.read(|conn| layout.read(conn, sql, &[&n], query_one::<NumberRow>))
    }

    /// Once a read has found every column where its row reads it, the call
    /// site reads in place, and still reads the right values.
    #[test]
    fn a_call_site_reads_in_place_once_a_read_found_every_column_in_place() {
        let (path, writer) = fresh_file("in-place");
        writer.execute("INSERT INTO t (n, name) VALUES (1, 'one'), (2, NULL)", []).unwrap();
        let readers = Readers::new(&path);
        let layout = Layout::new();
        let sql = "SELECT n, name FROM t WHERE n = $1";
        assert!(matches!(read_at(&readers, &layout, sql, 9), Err(StoreError::NotFound)));
        assert!(!layout.in_place(sql), "a read that found no row checked nothing");
        assert_eq!(read_at(&readers, &layout, sql, 1).unwrap().label.as_deref(), Some("one"));
        assert!(layout.in_place(sql));
        let row = read_at(&readers, &layout, sql, 2).unwrap();
        assert_eq!((row.n, row.label), (2, None));
        assert!(matches!(READING.get(), Reading::Checking { .. }), "reads outside a call site still check");
        // Another text at the same site is not trusted for the first's sake.
        let other = "SELECT name, n FROM t WHERE n = $1";
        let row = read_at(&readers, &layout, other, 1).unwrap();
        assert_eq!((row.n, row.label.as_deref()), (1, Some("one")));
        assert!(!layout.in_place(other) && layout.in_place(sql));
    }

    /// A call site whose statement has its columns elsewhere, or one its
    /// row never reads, keeps checking (and reading by name).
    #[test]
    fn a_call_site_not_in_its_rows_order_keeps_checking() {
        let (path, writer) = fresh_file("not-in-place");
        writer.execute("INSERT INTO t (n, name) VALUES (7, 'seven')", []).unwrap();
        let readers = Readers::new(&path);
        for sql in ["SELECT name, n FROM t WHERE n = $1", "SELECT n, name, 1 AS extra FROM t WHERE n = $1"] {
            let layout = Layout::new();
            for _ in 0..2 {
                let row = read_at(&readers, &layout, sql, 7).unwrap();
                assert_eq!((row.n, row.label.as_deref()), (7, Some("seven")), "{sql}");
                assert!(!layout.in_place(sql), "{sql}");
            }
        }
    }

    /// A SELECT that lists columns in another order than the struct's
    /// still fills each field from its own column.
    #[test]
    fn columns_out_of_the_structs_order_map_by_name() {
        let (path, writer) = fresh_file("order");
        writer.execute("INSERT INTO t (n, name) VALUES (7, 'seven')", []).unwrap();
        let readers = Readers::new(&path);
        let row = readers
            .read(|conn| {
                conn.prepare_cached("SELECT name, n FROM t WHERE n = 7")?.query_row([], NumberRow::from_sqlite)
            })
            .unwrap();
        assert_eq!((row.n, row.label.as_deref()), (7, Some("seven")));
    }

    /// A struct read at an offset of a joined row takes its own columns
    /// there, even when columns before them share its names.
    #[test]
    fn a_struct_read_at_an_offset_takes_the_columns_there() {
        let (path, writer) = fresh_file("offset");
        writer.execute("INSERT INTO t (n, name) VALUES (7, 'seven')", []).unwrap();
        let readers = Readers::new(&path);
        let row = readers
            .read(|conn| {
                conn.prepare_cached("SELECT 1 AS n, 'one' AS name, n, name FROM t WHERE n = 7")?
                    .query_row([], |r| NumberRow::from_sqlite_at(r, 2))
            })
            .unwrap();
        assert_eq!((row.n, row.label.as_deref()), (7, Some("seven")));
    }

    /// `$N` binds the N-th value wherever it first appears in the text,
    /// and a repeated `$N` is one parameter; a call site binds by the
    /// numbers it kept for its text, and by its own for another text.
    #[test]
    fn parameters_bind_by_their_number_not_their_order() {
        let (path, writer) = fresh_file("numbered");
        writer.execute("INSERT INTO t (n, name) VALUES (5, 'five'), (6, 'six')", []).unwrap();
        let readers = Readers::new(&path);
        let layout = Layout::new();
        let read = |sql: &'static str, values: &[&dyn ToSql]| {
            readers.read(|conn| layout.read(conn, sql, values, query_optional::<NumberRow>)).map(|r| r.map(|r| r.n))
        };
        let named_late = "SELECT n, name FROM t WHERE name = $2 AND n = $1 AND n = $1";
        assert_eq!(read(named_late, &[&5_i64, &"five"]).unwrap(), Some(5));
        assert_eq!(read(named_late, &[&6_i64, &"six"]).unwrap(), Some(6), "bound by the numbers kept");
        assert_eq!(read(named_late, &[&6_i64, &"five"]).unwrap(), None);
        let named_early = "SELECT n, name FROM t WHERE n = $1 AND name = $2";
        assert_eq!(read(named_early, &[&6_i64, &"six"]).unwrap(), Some(6), "another text, its own numbers");
        let missing = read("SELECT n, name FROM t WHERE n = $3", &[&5_i64]);
        assert!(matches!(missing, Err(StoreError::Backend(_))), "a value missing for $3 is an error");
    }

    /// The readers' connections refuse writes, so every write keeps going
    /// through the group commit.
    #[test]
    fn readers_cannot_write() {
        let (path, _writer) = fresh_file("query-only");
        let readers = Readers::new(&path);
        let written = readers.read(|conn| conn.execute("INSERT INTO t (n) VALUES (2)", []));
        assert!(matches!(written, Err(StoreError::Backend(_))), "{written:?}");
        assert!(matches!(number(&readers, 2), Err(StoreError::NotFound)));
    }
}
