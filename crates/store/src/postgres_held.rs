//! The PostgreSQL connections of the request path, held out of sqlx's pool
//! between uses.
//!
//! sqlx pings every connection given back to its pool (one round trip, and
//! the connection stays busy until the answer comes) and offers no way to
//! turn that off; by default it pings on checkout as well. On the request
//! path, where a statement is one round trip, that tripled the round trips
//! per statement: a wrong-code check made three statements and six pings.
//! So the point reads and writes of the request
//! path (`read!`, `SqlStore::write`, `SqlStore::write_statement`) take their
//! connection from here: connections checked out of sqlx's pool once and
//! kept, handed from one use to the next with no round trip in between.
//!
//! A connection is kept only after a use that finished without error. One
//! whose statement failed or whose future was dropped part-way (a client
//! gone, a timeout) goes back to sqlx, whose ping on return flushes a
//! pending rollback or finds the connection broken and closes it. A kept
//! connection idle for longer than [`PING_IF_IDLE_FOR`] is pinged before
//! it is used, so one left broken by a database restart fails no request.
//!
//! At most [`HELD`] connections are out at once (a fair semaphore orders
//! the waiters); sqlx's pool is sized above that, so listings and
//! migrations always find a connection of their own. A second set of
//! [`UNFLUSHED`] holds the connections of writes that do not wait for
//! their flush, from a pool of its own whose sessions start with
//! `synchronous_commit` off.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgPool, Postgres};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How many connections the request path may use at once.
pub(crate) const HELD: usize = 16;

/// How many more it may use at once for writes that do not wait for their
/// flush (a send's counters, a claim of webhook messages): each holds its
/// connection for one short statement or transaction.
pub(crate) const UNFLUSHED: usize = 8;

/// A kept connection idle longer than this is pinged before it is used.
pub(crate) const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// How long a use waits for a connection before it fails, all told: for
/// its permit and then, if no connection is kept, for sqlx's pool.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The kept connections and the permits to use them.
#[derive(Debug)]
pub(crate) struct HeldConnections {
    pool: PgPool,
    permits: Semaphore,
    /// Connections not in use, each with when it was last given back.
    idle: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    /// [`ACQUIRE_TIMEOUT`], but in tests.
    acquire_timeout: Duration,
}

/// One connection in use. [`HeldConnection::finish`] ends the use; one
/// dropped without it (a future cancelled part-way) gives its connection
/// back to sqlx, which checks it.
pub(crate) struct HeldConnection<'h> {
    owner: &'h HeldConnections,
    conn: PoolConnection<Postgres>,
    permit: SemaphorePermit<'h>,
}

impl HeldConnections {
    /// At most `permits` connections of `pool` out at once.
    pub(crate) fn new(pool: PgPool, permits: usize) -> Self {
        Self::waiting_at_most(pool, permits, ACQUIRE_TIMEOUT)
    }

    fn waiting_at_most(pool: PgPool, permits: usize, acquire_timeout: Duration) -> Self {
        Self { pool, permits: Semaphore::new(permits), idle: Mutex::new(Vec::new()), acquire_timeout }
    }

    /// A connection for one use: a kept one if any (pinged first if it sat
    /// idle), else a new checkout from sqlx's pool. One deadline covers
    /// both waits, so a request waits at most the timeout, not the
    /// timeout for its permit and then sqlx's own for a connection.
    pub(crate) async fn acquire(&self) -> Result<HeldConnection<'_>, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match kept {
                Some((mut conn, since)) => {
                    if since.elapsed() > PING_IF_IDLE_FOR && conn.ping().await.is_err() {
                        // Dropped: sqlx's own return ping fails and closes it.
                        continue;
                    }
                    conn
                }
                None => tokio::time::timeout_at(deadline, self.pool.acquire())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??,
            };
            return Ok(HeldConnection { owner: self, conn, permit });
        }
    }

    /// The pool the connections come from.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Gives every kept connection back to sqlx's pool and stops keeping
    /// them, so the pool can close.
    pub(crate) fn release_all(&self) {
        self.permits.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl HeldConnection<'_> {
    /// Ends the use: the connection is kept if `outcome` is a success, and
    /// otherwise given back to sqlx to be checked.
    pub(crate) fn finish<T>(self, outcome: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        let HeldConnection { owner, conn, permit } = self;
        if outcome.is_ok() {
            let mut idle = owner.idle.lock().unwrap_or_else(|e| e.into_inner());
            // Once closed, nothing is kept: the pool is waiting for its
            // connections. Read under the lock `release_all` clears under.
            if !owner.permits.is_closed() {
                idle.push((conn, Instant::now()));
            }
        }
        // Only now may a waiter run: it finds the connection kept.
        drop(permit);
        outcome
    }
}

impl std::ops::Deref for HeldConnection<'_> {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for HeldConnection<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    //! These run on PostgreSQL whatever `TEST_DB` says: the held
    //! connections exist only there.

    use super::*;
    use crate::testing::fresh_database_on;

    async fn fresh() -> (HeldConnections, PgPool) {
        let db = fresh_database_on(true).await.unwrap();
        let pool =
            sqlx::postgres::PgPoolOptions::new().max_connections(HELD as u32 + 2).connect(&db.url_text).await.unwrap();
        (HeldConnections::new(pool.clone(), HELD), pool)
    }

    async fn backend_pid(held: &HeldConnections) -> i32 {
        let mut conn = held.acquire().await.unwrap();
        let read = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await;
        conn.finish(read).unwrap()
    }

    fn kept(held: &HeldConnections) -> usize {
        held.idle.lock().unwrap().len()
    }

    /// Waits (up to 10 s) until sqlx's pool has `n` idle connections: a
    /// connection given back is checked in a task of its own.
    async fn until_sqlx_idle(pool: &PgPool, n: usize) {
        for _ in 0..1000 {
            if pool.num_idle() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sqlx's pool has {} idle connections, not {n}", pool.num_idle());
    }

    #[tokio::test]
    async fn a_use_that_finished_keeps_its_connection_out_of_sqlxs_pool() {
        let (held, pool) = fresh().await;
        let first = backend_pid(&held).await;
        assert_eq!(kept(&held), 1);
        assert_eq!(pool.num_idle(), 0, "sqlx's pool would ping it on return");
        assert_eq!(backend_pid(&held).await, first, "the next use takes the kept connection");
        assert_eq!(pool.size(), 1);
    }

    #[tokio::test]
    async fn a_use_that_failed_gives_its_connection_back_to_sqlx() {
        let (held, pool) = fresh().await;
        let mut conn = held.acquire().await.unwrap();
        let failed = sqlx::query("SELECT 1 / 0").execute(&mut *conn).await;
        assert!(conn.finish(failed).is_err());
        assert_eq!(kept(&held), 0);
        until_sqlx_idle(&pool, 1).await;
    }

    #[tokio::test]
    async fn a_use_dropped_part_way_is_not_kept_and_the_next_use_reads_its_own_answer() {
        let (held, _pool) = fresh().await;
        let mut conn = held.acquire().await.unwrap();
        let cut_off =
            tokio::time::timeout(Duration::from_millis(100), sqlx::query("SELECT pg_sleep(1)").execute(&mut *conn))
                .await;
        assert!(cut_off.is_err(), "the statement was cut off");
        drop(conn);
        assert_eq!(kept(&held), 0);
        let mut conn = held.acquire().await.unwrap();
        let read: Result<i32, _> = sqlx::query_scalar("SELECT 42").fetch_one(&mut *conn).await;
        assert_eq!(conn.finish(read).unwrap(), 42);
    }

    #[tokio::test]
    async fn a_kept_connection_broken_while_idle_is_replaced_before_use() {
        let (held, pool) = fresh().await;
        let first = backend_pid(&held).await;
        // As a database restart would, from outside the held set.
        let ended: bool =
            sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(first).fetch_one(&pool).await.unwrap();
        assert!(ended);
        tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(200)).await;
        let second = backend_pid(&held).await;
        assert_ne!(second, first);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_concurrent_uses_share_at_most_held_connections() {
        let (held, pool) = fresh().await;
        let held = std::sync::Arc::new(held);
        let uses = (0..100).map(|n: i32| {
            let held = held.clone();
            tokio::spawn(async move {
                let mut conn = held.acquire().await.unwrap();
                let read: Result<i32, _> =
                    sqlx::query_scalar("SELECT $1 FROM pg_sleep(0.01)").bind(n).fetch_one(&mut *conn).await;
                conn.finish(read).unwrap()
            })
        });
        let answers: Vec<i32> = in_order(uses).await;
        assert_eq!(answers, (0..100).collect::<Vec<_>>());
        assert!(pool.size() as usize <= HELD, "{} connections opened", pool.size());
        assert_eq!(kept(&held), pool.size() as usize);
    }

    async fn in_order(tasks: impl Iterator<Item = tokio::task::JoinHandle<i32>>) -> Vec<i32> {
        let mut out = Vec::new();
        for task in tasks.collect::<Vec<_>>() {
            out.push(task.await.unwrap());
        }
        out
    }

    /// A use that waits for its permit and then for sqlx's pool waits at
    /// most the one timeout in all, not each wait's own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_use_waits_at_most_one_timeout_for_its_permit_and_its_connection() {
        let db = fresh_database_on(true).await.unwrap();
        // No connection beyond the held set's, and sqlx's own wait far longer.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(HELD as u32)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&db.url_text)
            .await
            .unwrap();
        let timeout = Duration::from_secs(2);
        let held = HeldConnections::waiting_at_most(pool.clone(), HELD, timeout);
        // Every permit is taken, and every connection of the pool is out
        // beside the held set: the next use waits for both in turn.
        let mut permits = Vec::new();
        for _ in 0..HELD {
            permits.push(held.permits.acquire().await.unwrap());
        }
        let mut outside = Vec::new();
        for _ in 0..HELD {
            outside.push(pool.acquire().await.unwrap());
        }
        let started = Instant::now();
        let waiting = held.acquire();
        let releasing = async {
            tokio::time::sleep(timeout / 2).await;
            drop(permits);
        };
        let (waited, ()) = tokio::join!(waiting, releasing);
        assert!(matches!(waited, Err(sqlx::Error::PoolTimedOut)), "{:?}", waited.err());
        let elapsed = started.elapsed();
        assert!(elapsed >= timeout && elapsed < timeout * 2, "waited {elapsed:?}, the timeout being {timeout:?}");
        drop(outside);
    }

    #[tokio::test]
    async fn after_release_all_the_pool_closes_and_nothing_more_is_kept() {
        let (held, pool) = fresh().await;
        backend_pid(&held).await;
        let mut conn = held.acquire().await.unwrap();
        held.release_all();
        let read: Result<i32, _> = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await;
        conn.finish(read).unwrap();
        assert_eq!(kept(&held), 0);
        tokio::time::timeout(Duration::from_secs(10), pool.close()).await.expect("the pool closed");
        assert!(held.acquire().await.is_err(), "a closed set hands out nothing");
    }
}
