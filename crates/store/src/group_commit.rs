//! Group commit for SQLite: many writers, one transaction, one fsync.
//!
//! With `synchronous=FULL` every SQLite commit waits for an fsync of the
//! WAL, and a disk allows only a few hundred of those a second. Giving each
//! check its own transaction therefore caps the whole server at that rate
//! however fast the rest is. Here one task owns one connection; writers
//! hand it their statements as a job, it runs every job that is waiting in
//! a single `BEGIN IMMEDIATE … COMMIT`, and only after the commit is
//! durable does each writer get its answer. Nothing is acknowledged before
//! it is on disk, so a crash loses no answered write; a job that fails
//! takes its batch down with it, so an answered write is never half done.
//!
//! PostgreSQL needs none of this: its many connections commit in parallel
//! and its WAL writer already groups them.

use std::future::Future;
use std::pin::Pin;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// A boxed future borrowing the writer's connection.
pub(crate) type ConnFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// Called once the batch's commit is known: `Ok` when durable.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A job: runs its statements on the writer's connection, says whether
/// they succeeded, and hands back how to answer its caller.
type Job = Box<
    dyn for<'c> FnOnce(&'c mut SqliteConnection) -> Pin<Box<dyn Future<Output = (bool, Finish)> + Send + 'c>> + Send,
>;

/// Jobs per transaction. Enough to absorb a burst from every connection of
/// a busy server; small enough that one batch never holds the write lock
/// for long.
const MAX_BATCH: usize = 256;

/// The handle writers use; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on its own connection.
    pub(crate) fn start(conn: SqliteConnection) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(conn, queue));
        Self { jobs }
    }

    /// Runs `work` in the next group transaction and returns its result once
    /// that transaction is durable. An error from `work` (or from any other
    /// job of the group) rolls the group back and is returned.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> ConnFuture<'c, T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, sqlx::Error>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = work(conn).await;
                let ok = result.is_ok();
                let finish: Finish = Box::new(move |committed| {
                    let outcome = match committed {
                        Ok(()) => result,
                        Err(e) => Err(sqlx::Error::Protocol(format!("group commit failed: {e}"))),
                    };
                    let _ = answer.send(outcome);
                });
                (ok, finish)
            })
        });
        self.jobs.send(job).await.map_err(|_| sqlx::Error::PoolClosed)?;
        answered.await.map_err(|_| sqlx::Error::Protocol("group commit failed before this write ran".into()))?
    }
}

async fn run(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut finishes = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let committed = run_batch(&mut conn, &mut batch, &mut finishes).await.map_err(|e| e.to_string());
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = finishes.len() + batch.len(), "group commit failed");
        }
        for finish in finishes.drain(..) {
            finish(committed.clone());
        }
        // A job left unrun (the batch failed before its turn) is dropped
        // with its answer channel, which its caller sees as a failed write.
        batch.clear();
    }
}

/// Runs every job of the batch in one transaction. A job that fails fails
/// the whole batch: it is rolled back and every job of it is answered with
/// the error, so no job's half-done statements can ever be committed.
///
/// Why not a savepoint per job: each statement on a sqlx SQLite connection
/// is a hand-off to its worker thread, and under load those hand-offs are
/// what the CPU is spent on; two more per job cost about a third of the
/// throughput. Jobs fail only on errors that would sink the commit anyway
/// (I/O, a full disk) or on a bug, so the rare cost lands on the rare case.
async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &mut Vec<Job>,
    finishes: &mut Vec<Finish>,
) -> Result<(), sqlx::Error> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that
    // reads first could be refused the upgrade, and busy_timeout cannot
    // wait that refusal out.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut failed = false;
    for job in batch.drain(..) {
        let (ok, finish) = job(&mut tx).await;
        finishes.push(finish);
        if !ok {
            failed = true;
            break;
        }
    }
    if failed {
        tx.rollback().await?;
        return Err(sqlx::Error::Protocol("a write of this group failed; the group was rolled back".into()));
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

    use super::*;

    async fn writer_on_fresh_file(name: &str) -> (GroupCommit, SqliteConnectOptions) {
        let path = std::env::temp_dir().join(format!("vouchsafe-group-commit-{name}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let options = SqliteConnectOptions::from_str("sqlite:")
            .unwrap()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(&mut conn).await.unwrap();
        (GroupCommit::start(conn), options)
    }

    /// Many concurrent writers share transactions; a job that fails after
    /// writing leaves nothing of itself behind, every write answered Ok is
    /// in the file, and every write answered with an error is not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exactly_the_writes_answered_ok_are_stored() {
        let (group, options) = writer_on_fresh_file("isolation").await;
        let writes = (0..300i64).map(|n| {
            let group = group.clone();
            tokio::spawn(async move {
                group
                    .write(move |conn| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO t (n) VALUES ($1)").bind(n).execute(&mut *conn).await?;
                            if n == 150 {
                                // Fails after its insert: the insert must go too.
                                sqlx::query("INSERT INTO t (n) VALUES ($1)").bind(n).execute(&mut *conn).await?;
                            }
                            Ok(n)
                        })
                    })
                    .await
            })
        });
        let mut answered_ok = Vec::new();
        for write in writes.collect::<Vec<_>>() {
            if let Ok(n) = write.await.unwrap() {
                answered_ok.push(n);
            }
        }
        let mut reader = SqliteConnection::connect_with(&options).await.unwrap();
        let stored: Vec<(i64,)> = sqlx::query_as("SELECT n FROM t ORDER BY n").fetch_all(&mut reader).await.unwrap();
        let stored: Vec<i64> = stored.into_iter().map(|(n,)| n).collect();
        answered_ok.sort_unstable();
        assert_eq!(stored, answered_ok, "exactly the writes answered Ok are stored");
        assert!(!stored.is_empty(), "writes that were not in a failing group committed");
        assert!(!stored.contains(&150), "the failed job left its row behind");
    }
}
