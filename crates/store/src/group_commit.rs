//! Group commit for SQLite: many writers, one transaction, one fsync.
//!
//! With `synchronous=FULL` every SQLite commit waits for an fsync of the
//! WAL, and a disk allows only a few hundred of those a second. Giving each
//! check its own transaction therefore caps the whole server at that rate
//! however fast the rest is. Here one thread owns one connection; writers
//! hand it their statements as a job, it runs every job that is waiting in
//! a single `BEGIN IMMEDIATE … COMMIT`, and only after the commit is
//! durable does each writer get its answer. Nothing is acknowledged before
//! it is on disk, so a crash loses no answered write. A job that fails
//! rolls its batch back, so an answered write is never half done, and the
//! other jobs of that batch run again in the next one.
//!
//! The writer is a plain thread with a rusqlite connection, not a task on a
//! sqlx connection: sqlx hands every statement to the connection's worker
//! thread and back, and under load those hand-offs cost more than the
//! statements. Here a batch costs one wake-up of the writer and one answer
//! per job, and the statements are plain calls (see `tx`).
//!
//! PostgreSQL needs none of this: its many connections commit in parallel
//! and its WAL writer already groups them.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::SqliteSync;
use crate::checkpoint::Checkpointer;
use crate::sqlite::BUSY_TIMEOUT;
use crate::tx::Tx;

/// How a batch ended for the jobs in it.
#[derive(Debug, Clone)]
enum Ended {
    /// Committed and durable.
    Committed,
    /// Rolled back because one of its jobs failed.
    RolledBack,
    /// BEGIN or COMMIT failed (the database, not a job).
    Failed(String),
}

/// Why a write did not happen.
#[derive(Debug)]
pub(crate) enum GroupError {
    /// Another job of its group failed, so the group was rolled back
    /// before or after this one ran: run it again, it changed nothing.
    Retry,
    /// This write failed, or the database did.
    Sql(sqlx::Error),
}

/// Called once the batch's ending is known.
type Finish = Box<dyn FnOnce(Ended) + Send>;

/// A job: runs its statements on the writer's connection, says whether
/// they succeeded, and hands back how to answer its caller.
type Job = Box<dyn FnOnce(&mut Tx<'_>) -> (bool, Finish) + Send>;

/// Jobs per transaction. Enough to absorb a burst from every connection of
/// a busy server; small enough that one batch never holds the write lock
/// for long.
const MAX_BATCH: usize = 256;

/// Distinct write statements the writer keeps prepared; more than the
/// store has, so none is ever prepared twice.
const PREPARED_STATEMENTS: usize = 128;

/// The handle writers use; cheap to clone. The writer thread ends when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Opens the writer's connection to the file at `path` and starts its
    /// thread.
    pub(crate) fn start(path: &Path, sync: SqliteSync) -> Result<Self, String> {
        let conn = open(path, sync).map_err(|e| e.to_string())?;
        let checkpointer = Checkpointer::start(path, sync)?;
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, &checkpointer))
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the next group transaction and returns its result once
    /// that transaction is durable. An error from `work` rolls the group
    /// back and is returned; the other writes of the group get
    /// [`GroupError::Retry`] (`write_tx!` runs them again).
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, GroupError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, sqlx::Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, GroupError>>();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |ended| {
                let outcome = match (ended, result) {
                    (Ended::Committed, result) => result.map_err(GroupError::Sql),
                    (Ended::RolledBack, Err(own)) => Err(GroupError::Sql(own)),
                    (Ended::RolledBack, Ok(_)) => Err(GroupError::Retry),
                    (Ended::Failed(e), _) => {
                        Err(GroupError::Sql(sqlx::Error::Protocol(format!("group commit failed: {e}"))))
                    }
                };
                let _ = answer.send(outcome);
            });
            (ok, finish)
        });
        self.jobs.send(job).await.map_err(|_| GroupError::Sql(sqlx::Error::PoolClosed))?;
        tokio::select! {
            biased;
            // A job dropped unrun (its group was rolled back before its
            // turn) changed nothing: it may simply run again.
            answer = answered => answer.unwrap_or(Err(GroupError::Retry)),
            // The writer thread is gone (a job panicked). The channel drops
            // the jobs it holds when its receiver goes, once: a job whose
            // send was under way then lands after that and stays, its
            // answer neither sent nor dropped, and without this arm its
            // caller would wait for ever.
            () = self.jobs.closed() => Err(GroupError::Sql(sqlx::Error::PoolClosed)),
        }
    }
}

/// Opens the writer's connection with the pool's pragmas.
fn open(path: &Path, sync: SqliteSync) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", synchronous(sync))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", crate::checkpoint::BACKSTOP_PAGES)?;
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    crate::sqlite::plan_once(&conn)?;
    Ok(conn)
}

/// The `synchronous` pragma's value for `sync`.
pub(crate) fn synchronous(sync: SqliteSync) -> &'static str {
    match sync {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    }
}

fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>, checkpointer: &Checkpointer) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut finishes = Vec::with_capacity(MAX_BATCH);
    while queue.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let ended = match run_batch(&mut conn, &mut batch, &mut finishes) {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!(error = %e, jobs = finishes.len() + batch.len(), "group commit failed");
                // Whatever the batch left open must not swallow the next one.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Ended::Failed(e.to_string())
            }
        };
        if matches!(ended, Ended::Committed) {
            checkpointer.nudge();
        }
        for finish in finishes.drain(..) {
            finish(ended.clone());
        }
        // After the answers: the next batch waits for this, this one does not.
        checkpointer.copy_tail(&conn);
        // A job left unrun (the group ended before its turn) is dropped with
        // its answer channel; its caller runs it again.
        batch.clear();
    }
}

/// Runs every job of the batch in one transaction. A job that fails ends
/// the batch: it is rolled back, the failing job gets its own error and
/// every other job is told to run again, so no job's half-done statements
/// are ever committed and no innocent write is lost.
///
/// Why not a savepoint per job: two more statements per job, for a case
/// that needs a lost race nobody caught, a bug or a failing disk; the rare
/// cost lands on the rare case.
fn run_batch(conn: &mut Connection, batch: &mut Vec<Job>, finishes: &mut Vec<Finish>) -> rusqlite::Result<Ended> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that
    // reads first could be refused the upgrade, and busy_timeout cannot
    // wait that refusal out.
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    for job in batch.drain(..) {
        let (ok, finish) = job(&mut Tx::Writer(conn));
        finishes.push(finish);
        if !ok {
            conn.prepare_cached("ROLLBACK")?.execute([])?;
            return Ok(Ended::RolledBack);
        }
    }
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(Ended::Committed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::exec;

    fn writer_on_fresh_file(name: &str) -> (GroupCommit, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("vouchsafe-group-commit-{name}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let setup = Connection::open(&path).unwrap();
        setup.execute_batch("PRAGMA journal_mode = wal; CREATE TABLE t (n INTEGER PRIMARY KEY)").unwrap();
        (GroupCommit::start(&path, SqliteSync::Full).unwrap(), path)
    }

    /// The writer keeps each statement's plan: a claim's `LIMIT $3`,
    /// bound anew at every claim, used to have SQLite parse and plan the
    /// whole claim again each time (see `sqlite::plan_once`).
    #[test]
    fn the_writer_prepares_a_statement_once_whatever_its_limit() {
        let (group, path) = writer_on_fresh_file("plan-once");
        drop(group);
        let conn = open(&path, SqliteSync::Full).unwrap();
        assert_eq!(crate::sqlite::times_prepared_again(&conn).unwrap(), 0);
    }

    /// SQLite's own checkpoint, which would run inside a commit, waits
    /// for the WAL to reach the backstop; until then the checkpoint thread
    /// and the writer between batches keep the WAL short.
    #[test]
    fn the_writers_own_checkpoint_is_only_the_backstop() {
        let (group, path) = writer_on_fresh_file("backstop");
        drop(group);
        let conn = open(&path, SqliteSync::Full).unwrap();
        let pages: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0)).unwrap();
        assert_eq!(pages, crate::checkpoint::BACKSTOP_PAGES);
    }

    /// Under steady writes the WAL starts again from its beginning long
    /// before SQLite's own checkpoint would (its backstop is far above what
    /// this test writes): the checkpoint thread copies, the writer copies
    /// the tail between batches, and the WAL file stops growing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steady_writes_keep_the_wal_short_without_the_backstop() {
        let (group, path) = writer_on_fresh_file("wal-short");
        let wal = path.with_extension("db-wal");
        let (mut written, page) = (0u64, 4096u64);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        group
            .write(|conn| crate::tx::run_in_place(async move { exec!(conn, "CREATE TABLE b (x BLOB)", []) }))
            .await
            .unwrap();
        // Each commit adds a row of two pages; stop once four times the
        // WAL file's size has gone through it.
        while written < 4 * std::fs::metadata(&wal).map_or(0, |m| m.len()).max(page * 100) {
            assert!(std::time::Instant::now() < deadline, "the WAL kept growing: {written} bytes written");
            group
                .write(|conn| {
                    crate::tx::run_in_place(async move { exec!(conn, "INSERT INTO b (x) VALUES (zeroblob(6000))", []) })
                })
                .await
                .unwrap();
            written += 2 * page;
        }
        assert!(written / page < crate::checkpoint::BACKSTOP_PAGES as u64, "the backstop was never reached");
        drop(group);
        let _ = std::fs::remove_file(&path);
    }

    /// Many concurrent writers share transactions; a job that fails after
    /// writing leaves nothing of itself behind and gets its own error, and
    /// every other write, run again when its group was rolled back, is
    /// stored exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_leaves_nothing_and_the_others_are_stored_once() {
        let (group, path) = writer_on_fresh_file("isolation");
        let writes = (0..300i64).map(|n| {
            let group = group.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                loop {
                    runs += 1;
                    let written = group
                        .write(move |conn| {
                            crate::tx::run_in_place(async move {
                                exec!(conn, "INSERT INTO t (n) VALUES ($1)", [n])?;
                                if n == 150 {
                                    // Fails after its insert: the insert must go too.
                                    exec!(conn, "INSERT INTO t (n) VALUES ($1)", [n])?;
                                }
                                Ok(n)
                            })
                        })
                        .await;
                    match written {
                        Err(GroupError::Retry) => continue,
                        Ok(n) => break (Some(n), runs),
                        Err(GroupError::Sql(_)) => break (None, runs),
                    }
                }
            })
        });
        let mut answered_ok = Vec::new();
        let mut reruns = 0;
        for write in writes.collect::<Vec<_>>() {
            let (written, runs) = write.await.unwrap();
            reruns += runs - 1;
            answered_ok.extend(written);
        }
        let reader = Connection::open(&path).unwrap();
        let stored: Vec<i64> = reader
            .prepare("SELECT n FROM t ORDER BY n")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        answered_ok.sort_unstable();
        assert_eq!(stored, answered_ok, "exactly the writes answered Ok are stored");
        assert_eq!(stored, (0..300).filter(|n| *n != 150).collect::<Vec<_>>(), "every other write is stored");
        assert!(reruns > 0, "the failing job shared its group with others, which ran again");
    }

    /// A writer thread that dies (a job panicked) fails every write in
    /// flight or sent after, and none waits for ever: writes sent as it
    /// dies can land in its channel after the channel dropped what it held.
    /// The time limit only turns a hang into a failure. Without the wait on
    /// the channel's closing, one of these 400 rounds of 64 writes hung
    /// (round 338 in the run that checked it; the race is rare, so the
    /// rounds are many).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_write_waits_for_ever_on_a_writer_that_died() {
        for round in 0..400 {
            let (group, path) = writer_on_fresh_file(&format!("dies-{round}"));
            let writes: Vec<_> = (0..64i64)
                .map(|n| {
                    let group = group.clone();
                    tokio::spawn(async move {
                        loop {
                            let written = group
                                .write(move |conn| {
                                    crate::tx::run_in_place(async move {
                                        exec!(conn, "INSERT OR IGNORE INTO t (n) VALUES ($1)", [n])?;
                                        Ok(())
                                    })
                                })
                                .await;
                            if let Err(GroupError::Sql(_)) = written {
                                break;
                            }
                        }
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            let killed = group.write(|_| -> Result<(), sqlx::Error> { panic!("the writer thread dies here") }).await;
            assert!(killed.is_err(), "the panicking write fails");
            let all_ended = async {
                for write in writes {
                    write.await.unwrap();
                }
            };
            let ended = tokio::time::timeout(std::time::Duration::from_secs(30), all_ended).await;
            assert!(ended.is_ok(), "round {round}: a write still waits on a dead writer");
            let _ = std::fs::remove_file(&path);
        }
    }
}
