//! Group commit for SQLite: many writers, one transaction, one fsync.
//!
//! With `synchronous=FULL` every SQLite commit waits for an fsync of the
//! WAL, and a disk allows only a few hundred of those a second. Giving each
//! check its own transaction therefore caps the whole server at that rate
//! however fast the rest is. Here one task owns one connection; writers
//! hand it their statements as a job, it runs every job that is waiting in
//! a single `BEGIN IMMEDIATE … COMMIT`, and only after the commit is
//! durable does each writer get its answer. Nothing is acknowledged before
//! it is on disk, so a crash loses no answered write. A job that fails
//! rolls its batch back, so an answered write is never half done, and the
//! other jobs of that batch run again in the next one.
//!
//! PostgreSQL needs none of this: its many connections commit in parallel
//! and its WAL writer already groups them.

use std::future::Future;
use std::pin::Pin;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// A boxed future borrowing the writer's connection.
pub(crate) type ConnFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

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
    /// that transaction is durable. An error from `work` rolls the group
    /// back and is returned; the other writes of the group get
    /// [`GroupError::Retry`] (`write_tx!` runs them again).
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, GroupError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> ConnFuture<'c, T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, GroupError>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = work(conn).await;
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
            })
        });
        self.jobs.send(job).await.map_err(|_| GroupError::Sql(sqlx::Error::PoolClosed))?;
        // A job dropped unrun (its group was rolled back before its turn)
        // changed nothing: it may simply run again.
        answered.await.unwrap_or(Err(GroupError::Retry))
    }
}

async fn run(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut finishes = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ended = match run_batch(&mut conn, &mut batch, &mut finishes).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!(error = %e, jobs = finishes.len() + batch.len(), "group commit failed");
                Ended::Failed(e.to_string())
            }
        };
        for finish in finishes.drain(..) {
            finish(ended.clone());
        }
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
/// Why not a savepoint per job: each statement on a sqlx SQLite connection
/// is a hand-off to its worker thread, and under load those hand-offs are
/// what the CPU is spent on; two more per job cost about a third of the
/// throughput. Jobs fail only on a lost race they did not catch, a bug or a
/// failing disk, so the rare cost lands on the rare case.
async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &mut Vec<Job>,
    finishes: &mut Vec<Finish>,
) -> Result<Ended, sqlx::Error> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that
    // reads first could be refused the upgrade, and busy_timeout cannot
    // wait that refusal out.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for job in batch.drain(..) {
        let (ok, finish) = job(&mut tx).await;
        finishes.push(finish);
        if !ok {
            tx.rollback().await?;
            return Ok(Ended::RolledBack);
        }
    }
    tx.commit().await?;
    Ok(Ended::Committed)
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
    /// writing leaves nothing of itself behind and gets its own error, and
    /// every other write, run again when its group was rolled back, is
    /// stored exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_leaves_nothing_and_the_others_are_stored_once() {
        let (group, options) = writer_on_fresh_file("isolation").await;
        let writes = (0..300i64).map(|n| {
            let group = group.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                loop {
                    runs += 1;
                    let written = group
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
        let mut reader = SqliteConnection::connect_with(&options).await.unwrap();
        let stored: Vec<(i64,)> = sqlx::query_as("SELECT n FROM t ORDER BY n").fetch_all(&mut reader).await.unwrap();
        let stored: Vec<i64> = stored.into_iter().map(|(n,)| n).collect();
        answered_ok.sort_unstable();
        assert_eq!(stored, answered_ok, "exactly the writes answered Ok are stored");
        assert_eq!(stored, (0..300).filter(|n| *n != 150).collect::<Vec<_>>(), "every other write is stored");
        assert!(reruns > 0, "the failing job shared its group with others, which ran again");
    }
}
