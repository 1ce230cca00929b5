//! Copying the SQLite WAL back into the database file, beside the writer
//! rather than inside its commits.
//!
//! SQLite's own checkpoint runs inside the commit that takes the WAL past
//! its threshold, so the group-commit writer would copy those pages into
//! the database file and fsync it while every job of that batch, and
//! every job queued behind it, waits. With a large table the pages are
//! scattered (a million users: each answer dirties a different leaf), and
//! that fsync took 16–18 ms at 1,000 pages, several times a second, and
//! 75–100 ms at tens of thousands: it was the p99 of TOTP answers at a
//! million users (bench/RESULTS.md).
//!
//! So a thread of its own, with its own connection, does nearly all of
//! it, every [`PAUSE`]: a `PASSIVE` checkpoint copies what the WAL holds
//! without taking the write lock or waiting for readers, and the thread
//! then syncs the database file itself. SQLite syncs it only when a copy
//! reaches the WAL's end, which while the writer commits every
//! millisecond it almost never does, so without that sync the pages stay
//! dirty in the kernel for the writer's checkpoint to flush. The thread
//! copies and syncs again while a pass found much to copy, then asks the
//! writer for the tail: between two batches, after their callers have
//! their answers, the writer runs a `PASSIVE` checkpoint of its own,
//! which copies the few frames left, reaches the WAL's end (no commit can
//! come between), syncs a file with little left to flush, and so lets
//! the next transaction start the WAL again from its beginning.
//!
//! Waiting [`PAUSE`] between rounds copies a page rewritten many times in
//! that while once, and keeps the database file's writes away from the
//! writer's thread. The thread writes a large copy out a range of the file
//! at a time ([`write_out`]), a millisecond apart, rather than in one
//! `fdatasync`: the disk then never holds more than a few hundred of the
//! file's pages for the WAL's next sync to wait behind. (On this project's
//! virtual disk every sync persists all that was written before it; one
//! sync of thousands of scattered pages held the writer's WAL syncs up to
//! 15 ms, bench/RESULTS.md.) SQLite's own checkpoint stays
//! on as the backstop, at [`BACKSTOP_PAGES`], far above what a round
//! leaves. Nothing here changes what is durable: a commit is durable once
//! the WAL is synced, before any checkpoint, and SQLite never reuses the
//! WAL before the database file holds and has synced all of it.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::SqliteSync;

/// The least time between two rounds of checkpoints: the WAL pages written
/// meanwhile are copied together (a page rewritten many times is copied
/// once), and the database file is synced a few times a round at most.
const PAUSE: Duration = Duration::from_millis(500);

/// A pass that copied fewer frames than this leaves the rest to the
/// writer: about what the writer copies in a millisecond or two.
const TAIL_FRAMES: i64 = 512;

/// Passes a round makes at most before it hands the writer the tail. A
/// pass written out range by range takes a while, and the next copies
/// what was committed meanwhile: each pass finds a fraction of the one
/// before, and five leave the writer a tail of a few hundred frames.
const MAX_PASSES: usize = 5;

/// Frames of a pass written out per range of the database file, about: a
/// pass that copied fewer than two ranges' worth is synced at once.
const FRAMES_PER_RANGE: i64 = 256;

/// The pause between two ranges' write-outs: the writer's WAL syncs in
/// between carry none of the database file's pages.
const RANGE_GAP: Duration = Duration::from_millis(1);

/// The writer's own automatic checkpoint (SQLite's `wal_autocheckpoint`,
/// in pages): it runs only if the rounds fall this far behind, about
/// three seconds of the heaviest load the benchmark makes (a million
/// users' wrong answers, about 18,000 pages a second) and 200 MiB of WAL.
pub(crate) const BACKSTOP_PAGES: i64 = 50_000;

/// The writer's side: cheap to call after every commit. The thread ends
/// when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    nudge: SyncSender<()>,
    /// Set by the thread when only the WAL's tail is left to copy.
    tail: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Opens a connection to the file at `path` and starts the thread.
    pub(crate) fn start(path: &Path, sync: SqliteSync) -> Result<Self, String> {
        let conn = open(path, sync).map_err(|e| e.to_string())?;
        // Only for syncing: Linux syncs a file through any descriptor. Read
        // and write, because a range's `msync` writes out only through a
        // shared mapping that may be written (nothing writes through it).
        let file = open_to_sync(path).map_err(|e| e.to_string())?;
        let (nudge, nudged) = sync_channel(1);
        let tail = Arc::new(AtomicBool::new(false));
        let wants_tail = tail.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &file, &nudged, &wants_tail))
            .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
        Ok(Self { nudge, tail })
    }

    /// Asks for a round soon; a request already waiting covers this one.
    pub(crate) fn nudge(&self) {
        match self.nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }

    /// Copies the WAL's tail on the writer's connection, if the thread asked
    /// for it, between two of its transactions. Asked again after the next
    /// batch if a reader held the copy back from the WAL's end.
    pub(crate) fn copy_tail(&self, writer: &Connection) {
        if !self.tail.load(Ordering::Relaxed) {
            return;
        }
        match checkpoint(writer) {
            Ok(wal) if !wal.reached_end() => {}
            Ok(_) => self.tail.store(false, Ordering::Relaxed),
            Err(e) => {
                self.tail.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "WAL checkpoint on the writer failed");
            }
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

/// The database file, opened to be synced (see [`Checkpointer::start`]).
fn open_to_sync(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).write(true).open(path)
}

/// What a checkpoint left: the WAL's frames, and how many of them the
/// database file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wal {
    frames: i64,
    copied: i64,
}

impl Wal {
    /// Whether the database file holds the whole WAL (SQLite then synced
    /// it). A checkpoint refused as busy (another was running) reports −1
    /// for both, and reached nothing.
    fn reached_end(self) -> bool {
        self.frames >= 0 && self.copied == self.frames
    }

    /// Frames this checkpoint copied, given what the one before left: all
    /// it holds if the WAL started again from its beginning meanwhile.
    fn copied_since(self, before: Wal) -> i64 {
        if self.frames < before.frames || self.copied < before.copied {
            self.copied
        } else {
            self.copied - before.copied
        }
    }
}

/// A `PASSIVE` checkpoint on `conn`: copies what it can without waiting.
fn checkpoint(conn: &Connection) -> rusqlite::Result<Wal> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok(Wal { frames: row.get(1)?, copied: row.get(2)? }))
}

fn run(conn: &Connection, file: &File, nudged: &Receiver<()>, tail: &AtomicBool) {
    let mut last = Wal { frames: 0, copied: 0 };
    while nudged.recv().is_ok() {
        if let Err(e) = round(conn, file, tail, &mut last) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
        std::thread::sleep(PAUSE);
    }
}

/// One round: passes of copy and sync while they find much to copy, then
/// the tail handed to the writer. `last` is what the last pass left.
/// Answers how many ranges its passes wrote out one by one.
///
/// A pass cannot tell whether it reached the WAL's end: it reports the
/// frames the WAL held when it began, and the writer commits while it
/// copies. So each pass that copied anything syncs the file (with nothing
/// left dirty, a sync costs little), and only the writer's own checkpoint,
/// which no commit can interleave, finishes the WAL.
fn round(conn: &Connection, file: &File, tail: &AtomicBool, last: &mut Wal) -> Result<usize, String> {
    let mut ranges = 0;
    for _ in 0..MAX_PASSES {
        let wal = checkpoint(conn).map_err(|e| e.to_string())?;
        if wal.frames < 0 {
            // Busy: the writer's own checkpoint is running; it copies.
            break;
        }
        let copied = wal.copied_since(*last);
        *last = wal;
        if copied > 0 {
            match write_out(file, copied) {
                Ok(written) => ranges += written,
                // The sync below writes the pass out at once, as it did
                // before ranges: slower for the writer, never wrong.
                Err(e) => WRITE_OUT_FAILED.call_once(|| {
                    tracing::warn!(error = %e, "cannot write the database file out by ranges; syncing it at once");
                }),
            }
            file.sync_data().map_err(|e| format!("syncing the database file: {e}"))?;
        }
        if copied < TAIL_FRAMES {
            break;
        }
    }
    tail.store(true, Ordering::Relaxed);
    Ok(ranges)
}

/// Warns once, not every pass, when [`write_out`] fails.
static WRITE_OUT_FAILED: std::sync::Once = std::sync::Once::new();

/// Writes the database file out a range at a time, [`RANGE_GAP`] apart,
/// after a pass copied `copied` frames into it: as many ranges as the
/// copy holds [`FRAMES_PER_RANGE`]s, each a whole number of pages (the
/// copied pages are scattered over the file, so each range holds about
/// its share). A range's `msync(MS_SYNC)` writes the dirty pages in it
/// and no others, and flushes the disk. Answers the ranges written out;
/// none for a small copy, which the `fdatasync` after it writes at once.
fn write_out(file: &File, copied: i64) -> std::io::Result<usize> {
    let len = file.metadata()?.len();
    let ranges = file_ranges(len, copied / FRAMES_PER_RANGE);
    if ranges.len() < 2 {
        return Ok(0);
    }
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // A raw mapping hands out pointers only, and nothing reads or writes
    // through them: it exists for `msync`, which a mapping needs.
    let map = memmap2::MmapOptions::new().len(len).map_raw(file)?;
    for (start, range) in &ranges {
        map.flush_range(*start, *range)?;
        std::thread::sleep(RANGE_GAP);
    }
    Ok(ranges.len())
}

/// A file of `len` bytes cut into `count` ranges of whole pages (the last
/// one shorter), as (start, length); none for an empty file.
fn file_ranges(len: u64, count: i64) -> Vec<(usize, usize)> {
    const PAGE: u64 = 4096;
    let count = u64::try_from(count).unwrap_or(0).max(1);
    let step = len.div_ceil(count).next_multiple_of(PAGE).max(PAGE);
    (0..len)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .filter_map(|start| Some((usize::try_from(start).ok()?, usize::try_from(step.min(len - start)).ok()?)))
        .collect()
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

    /// A WAL file at a fresh path, with about 100 pages committed to it
    /// and not yet copied, and SQLite's own checkpoint off; its writer.
    fn wal_with_pages(name: &str) -> (std::path::PathBuf, Connection) {
        let path = std::env::temp_dir().join(format!("vouchsafe-checkpoint-{name}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = wal; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (b BLOB)")
            .unwrap();
        writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        writer.execute("INSERT INTO t (b) SELECT zeroblob(400000)", []).unwrap();
        (path, writer)
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_round_copies_and_then_asks_the_writer_for_the_tail() {
        let (path, _writer) = wal_with_pages("round");
        let before = file_len(&path);
        let (conn, file) = (open(&path, SqliteSync::Full).unwrap(), open_to_sync(&path).unwrap());
        let (tail, mut last) = (AtomicBool::new(false), Wal { frames: 0, copied: 0 });
        assert_eq!(round(&conn, &file, &tail, &mut last).unwrap(), 0, "a small copy is synced at once");
        assert!(tail.load(Ordering::Relaxed), "the round handed the tail to the writer");
        assert!(last.copied >= 90, "the round copied the WAL's pages: {last:?}");
        assert!(file_len(&path) >= before + 300_000, "the pages are in the database file");
        let _ = std::fs::remove_file(&path);
    }

    /// One round over a WAL of about 1,100 pages (four ranges' worth),
    /// syncing through the descriptor `open_file` gives; checks that the
    /// pages reached the database file and the tail went to the writer,
    /// and answers the ranges written out and the frames copied.
    fn round_over_a_large_wal(name: &str, open_file: fn(&Path) -> File) -> (usize, i64) {
        let (path, writer) = wal_with_pages(name);
        writer.execute("INSERT INTO t (b) SELECT zeroblob(4000000)", []).unwrap();
        let before = file_len(&path);
        let (conn, file) = (open(&path, SqliteSync::Full).unwrap(), open_file(&path));
        let (tail, mut last) = (AtomicBool::new(false), Wal { frames: 0, copied: 0 });
        let ranges = round(&conn, &file, &tail, &mut last).unwrap();
        assert!(file_len(&path) >= before + 4_000_000, "the pages are in the database file");
        assert!(tail.load(Ordering::Relaxed), "and the tail handed to the writer");
        let _ = std::fs::remove_file(&path);
        (ranges, last.copied)
    }

    #[test]
    fn a_large_copy_is_written_out_a_range_at_a_time() {
        let (ranges, copied) = round_over_a_large_wal("ranges", |path| open_to_sync(path).unwrap());
        assert!(ranges >= 3, "the copy of {copied} frames was written out in ranges: {ranges}");
    }

    /// A write-out that fails (here: a descriptor that cannot be mapped)
    /// leaves the pass to the one sync after it, and the round goes on.
    #[test]
    fn a_failed_write_out_falls_back_to_one_sync() {
        let (ranges, _) = round_over_a_large_wal("fallback", |path| File::open(path).unwrap());
        assert_eq!(ranges, 0, "nothing written out by ranges");
    }

    /// `msync` writes nothing out through a mapping that may not be
    /// written, so the file is opened to be written, and a descriptor
    /// opened only to read is refused rather than silently ignored.
    #[test]
    fn writing_out_needs_a_descriptor_that_may_write() {
        let (path, _writer) = wal_with_pages("descriptor");
        let read_only = File::open(&path).unwrap();
        assert!(
            write_out(&read_only, 4 * FRAMES_PER_RANGE).is_err(),
            "a read-only descriptor cannot be mapped to sync"
        );
        assert!(write_out(&open_to_sync(&path).unwrap(), 4 * FRAMES_PER_RANGE).is_ok());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_file_is_cut_into_page_aligned_ranges_that_cover_it_once() {
        for (len, count) in [(1_000_000_u64, 7_i64), (4096 * 10, 3), (4096 * 10 + 1, 10), (5_000, 4), (300_000_000, 80)]
        {
            let ranges = file_ranges(len, count);
            assert!(ranges.len() as i64 <= count, "at most {count} ranges of {len} bytes: {ranges:?}");
            let mut next = 0;
            for (start, range) in &ranges {
                assert_eq!(
                    (*start, start % 4096),
                    (next, 0),
                    "ranges of {len} bytes start where the last ended, on a page"
                );
                next = start + range;
            }
            assert_eq!(next as u64, len, "the ranges cover all {len} bytes");
        }
        assert_eq!(file_ranges(1_000_000, 0).len(), 1, "no count is one range");
        assert!(file_ranges(0, 5).is_empty(), "an empty file has no ranges");
    }

    #[test]
    fn the_writer_copies_the_tail_only_when_asked_and_then_is_not_asked_again() {
        let (path, writer) = wal_with_pages("tail");
        let before = file_len(&path);
        let (nudge, _nudged) = sync_channel(1);
        let checkpointer = Checkpointer { nudge, tail: Arc::new(AtomicBool::new(false)) };
        checkpointer.copy_tail(&writer);
        assert_eq!(file_len(&path), before, "unasked, the writer copies nothing");
        checkpointer.tail.store(true, Ordering::Relaxed);
        checkpointer.copy_tail(&writer);
        assert!(file_len(&path) >= before + 300_000, "asked, the writer copied the WAL into the database file");
        assert!(!checkpointer.tail.load(Ordering::Relaxed), "a tail copied to the WAL's end is not asked for again");
        // The whole WAL is in the database file, so the next commit starts
        // the WAL again from its beginning rather than growing it.
        writer.execute("INSERT INTO t (b) VALUES (x'01')", []).unwrap();
        let wal = checkpoint(&writer).unwrap();
        assert!(wal.frames < 10, "the WAL started again: {wal:?}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn frames_copied_count_from_the_last_pass_or_from_a_wal_started_again() {
        let last = Wal { frames: 900, copied: 400 };
        assert_eq!(Wal { frames: 1000, copied: 900 }.copied_since(last), 500);
        assert_eq!(Wal { frames: 900, copied: 400 }.copied_since(last), 0);
        assert_eq!(Wal { frames: 300, copied: 120 }.copied_since(last), 120, "the WAL started again");
        assert_eq!(Wal { frames: 1000, copied: 100 }.copied_since(last), 100, "started again and grew past it");
        assert!(Wal { frames: 5, copied: 5 }.reached_end());
        assert!(!Wal { frames: 5, copied: 4 }.reached_end());
        assert!(!Wal { frames: -1, copied: -1 }.reached_end(), "a busy checkpoint copied nothing");
    }
}
