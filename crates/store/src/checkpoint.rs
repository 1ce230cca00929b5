//! Copying the SQLite WAL back into the database file, beside the writer
//! rather than inside its commits.
//!
//! SQLite's own checkpoint runs inside the commit that takes the WAL past
//! 1,000 pages, so the group-commit writer would copy those pages into the
//! database file and fsync it while every job of that batch, and every
//! job queued behind it, waits. With a large table the pages are scattered
//! (a million users: each answer dirties a different leaf), and that
//! fsync took 16–18 ms, several times a second: it was the p99 of TOTP
//! answers at a million users. Here a thread of its own, with its own
//! connection, runs a `PASSIVE` checkpoint shortly after commits, which
//! copies what the WAL holds without taking the write lock or waiting for
//! readers, so the writer keeps committing meanwhile.
//!
//! The writer's own automatic checkpoint stays on, as the backstop: when
//! the WAL reaches 1,000 pages it still checkpoints, finds almost every
//! page already copied and synced, and lets the next transaction start
//! the WAL again from its beginning (only a checkpoint that finishes with
//! no commit after it can, which under steady load only the writer's
//! own does). Nothing here changes what is durable: a commit is durable
//! once the WAL is synced, before any checkpoint.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::SqliteSync;

/// The least time between two checkpoints: the WAL pages written meanwhile
/// are copied together (a page rewritten many times is copied once), and
/// the database file is synced at most this often.
const PAUSE: Duration = Duration::from_millis(20);

/// Tells the checkpoint thread that commits happened; cheap enough to call
/// after every one. The thread ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    nudge: SyncSender<()>,
}

impl Checkpointer {
    /// Opens a connection to the file at `path` and starts the thread.
    pub(crate) fn start(path: &Path, sync: SqliteSync) -> Result<Self, String> {
        let conn = open(path, sync).map_err(|e| e.to_string())?;
        let (nudge, nudged) = sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &nudged))
            .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
        Ok(Self { nudge })
    }

    /// Asks for a checkpoint soon; a request already waiting covers this one.
    pub(crate) fn nudge(&self) {
        match self.nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

fn open(path: &Path, sync: SqliteSync) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // A checkpoint syncs the database file as this connection's
    // `synchronous` says: the same as the writer's.
    conn.pragma_update(None, "synchronous", crate::group_commit::synchronous(sync))?;
    Ok(conn)
}

fn run(conn: &Connection, nudged: &Receiver<()>) {
    while nudged.recv().is_ok() {
        // PASSIVE never waits: busy (the writer's own checkpoint is
        // running) or not, the next nudge tries again.
        let checkpoint = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0));
        if let Err(e) = checkpoint {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
        std::thread::sleep(PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Committed pages reach the database file soon after the commit, long
    /// before the WAL fills to SQLite's own checkpoint.
    #[test]
    fn committed_pages_are_copied_into_the_database_file_without_waiting_for_the_wal_to_fill() {
        let path = std::env::temp_dir().join(format!("vouchsafe-checkpoint-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("PRAGMA journal_mode = wal; CREATE TABLE t (b BLOB)").unwrap();
        writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        // About 100 pages: a tenth of what SQLite waits for.
        writer.execute("INSERT INTO t (b) SELECT zeroblob(400000)", []).unwrap();
        let checkpointer = Checkpointer::start(&path, SqliteSync::Full).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before, "nothing is copied before a nudge");
        checkpointer.nudge();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < before + 300_000 {
            assert!(std::time::Instant::now() < deadline, "the nudged checkpoint copied the pages");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(checkpointer);
        let _ = std::fs::remove_file(&path);
    }
}
