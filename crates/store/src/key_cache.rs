//! API keys by the keyed hash of their secret, kept between requests.
//! Every API request authenticates. On PostgreSQL reading the key was a
//! round trip of its own, one of a wrong-code check's two; on SQLite a
//! read transaction of its own, which under a steady writer finds its
//! connection's page cache emptied and reads its pages again (8% of the
//! server's time on wrong TOTP answers, `bench/RESULTS.md`).
//!
//! A kept key must stop working on every node once it is revoked. Each
//! revocation notifies the channel [`CHANNEL`] inside its own transaction,
//! so PostgreSQL tells every node's listener as the revocation commits, and
//! the listener forgets every kept key (the revoking node forgets at once).
//! The cache serves only while it can show it hears that channel: each
//! node notifies it with a numbered beat every [`BEAT`], stamped with when
//! it was sent, and serves kept keys only until [`TRUST`] after the
//! sending of its own latest beat heard, with no number missed. A lost or
//! silent listener connection, or a missed beat (a pooler in transaction
//! mode hands notifications to whichever client holds the server
//! connection), stops serving and forgets; every lookup then reads the
//! database, as it always did. A lookup that began before a revocation was
//! heard never keeps what it read ([`KeyCache::put`] with the epoch it
//! began in).
//!
//! Why that bounds every node, however far behind its listener is:
//! PostgreSQL delivers a channel's notifications in commit order, so a node
//! that has heard an own beat sent after a revocation committed has heard
//! the revocation first and forgotten. A node still serving a revoked key
//! is serving on a beat sent before the revocation, so it stops by
//! [`TRUST`] after the revocation at the latest. The revoking node waits
//! that long ([`SETTLE`]) before it answers, so when `DELETE` answers, no
//! node accepts the key: the contract's "the key's next request answers
//! 401" holds on every node, not just the revoking one.
//!
//! On SQLite the processes sharing the file (servers, the CLI, an
//! operator's shell) have no channel, so the file counts instead: triggers
//! add one to `meta`'s `api_key_changes` in the transaction of every
//! change to a key, however made (migration 0016). Each process polls the
//! count every [`BEAT`], stamping a poll before its read begins; a count
//! that moved forgets every kept key, and kept keys are served only until
//! [`TRUST`] after the stamp of the latest poll that read. The same bound
//! follows: a process still serving a key revoked at R is serving on a
//! poll whose read began before R (a later one would have seen the count
//! move and forgotten), so it stops by R + [`TRUST`]; the revoking process
//! waits [`SETTLE`] before it answers. One machine, one monotonic clock:
//! no allowance for clocks is needed there, the margin is kept anyway. A
//! poll that fails (the file unreadable, the count gone) stops serving.
//!
//! Only keys that exist are kept (an unknown secret reads the database each
//! time, so an outsider cannot grow the map), and the map is bounded.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPoolOptions};
use vouchsafe_core::api_key::ApiKey;

use crate::sqlite_reads::Readers;

/// The channel revocations and beats are notified on.
pub(crate) const CHANNEL: &str = "vouchsafe_api_keys";
/// What a revocation notifies (anything that is not a beat forgets all).
pub(crate) const REVOKED: &str = "revoked";
/// How often each node notifies its numbered beat (PostgreSQL), or polls
/// the count of key changes (SQLite).
const BEAT: Duration = Duration::from_millis(250);
/// How long after sending its own latest beat heard (or beginning its
/// latest poll) a node serves kept keys.
const TRUST: Duration = Duration::from_secs(1);
/// How long a revocation waits after its commit before it answers: past
/// [`TRUST`] by a margin for the rate at which two machines' clocks run.
pub(crate) const SETTLE: Duration = Duration::from_millis(1_100);
const MAX_KEYS: usize = 10_000;

pub(crate) struct KeyCache {
    state: Mutex<State>,
    /// What a beat's stamp counts from (milliseconds since).
    born: Instant,
    /// This cache's name in its beats, random, so no two nodes share it.
    node: String,
    following: AtomicBool,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, ApiKey>,
    /// Moves with every forgetting: a lookup may keep what it read only in
    /// the epoch it began in.
    epoch: u64,
    serve_until: Option<Instant>,
}

impl State {
    fn serving(&self, now: Instant) -> bool {
        self.serve_until.is_some_and(|until| now < until)
    }

    fn forget_all(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.keys.clear();
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            state: Mutex::default(),
            born: Instant::now(),
            node: uuid::Uuid::new_v4().simple().to_string(),
            following: AtomicBool::new(false),
        }
    }
}

impl KeyCache {
    /// The live key with this secret hash, if kept and the cache may serve.
    pub(crate) fn get(&self, secret_hash: &str) -> Option<ApiKey> {
        let state = self.state.lock().ok()?;
        if !state.serving(Instant::now()) {
            return None;
        }
        state.keys.get(secret_hash).cloned()
    }

    /// How many keys are served from memory now (for tests).
    #[cfg(feature = "testing")]
    pub(crate) fn serving_len(&self) -> usize {
        self.state.lock().map(|s| if s.serving(Instant::now()) { s.keys.len() } else { 0 }).unwrap_or(0)
    }

    /// The epoch a lookup begins in: taken before it reads the database.
    pub(crate) fn epoch(&self) -> u64 {
        self.state.lock().map(|s| s.epoch).unwrap_or(u64::MAX)
    }

    /// Keeps `key`, read by a lookup that began in epoch `began`, unless
    /// anything was forgotten since (it may have been read before a
    /// revocation committed) or the cache is not serving.
    pub(crate) fn put(&self, secret_hash: &str, key: &ApiKey, began: u64) {
        let Ok(mut state) = self.state.lock() else { return };
        if state.epoch != began || !state.serving(Instant::now()) {
            return;
        }
        if state.keys.len() >= MAX_KEYS {
            state.keys.clear();
        }
        state.keys.insert(secret_hash.to_owned(), key.clone());
    }

    /// Forgets every kept key (a key was revoked somewhere).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.forget_all();
        }
    }

    /// Forgets, and serves nothing until the channel is heard again (in
    /// one hold of the lock, so nothing is kept in between).
    fn stop_serving(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.forget_all();
            state.serve_until = None;
        }
    }

    /// Serves until [`TRUST`] after `since`: the sending of an own beat
    /// just heard, or the start of a poll that found no change.
    fn trust_from(&self, since: Instant) {
        if let Ok(mut state) = self.state.lock() {
            state.serve_until = Some(since + TRUST);
        }
    }

    /// Whether this call is the first to start following. Every key
    /// lookup asks, so later calls only read the flag: a swap on each
    /// would write its cache line from every worker thread.
    fn first_to_follow(&self) -> bool {
        !self.following.load(Ordering::Acquire) && !self.following.swap(true, Ordering::AcqRel)
    }

    /// Starts following revocations (once per cache): a listener on its
    /// own connection, and this node's beats sent through `pool`. Both
    /// end soon after the cache is dropped.
    pub(crate) fn follow(self: &Arc<Self>, pool: &sqlx::PgPool) {
        if !self.first_to_follow() {
            return;
        }
        tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
        tokio::spawn(beat(Arc::downgrade(self), pool.clone(), self.node.clone(), self.born));
    }

    /// Starts following changes to keys in a SQLite file (once per
    /// cache): a poll of its count every [`BEAT`] through `readers`, until
    /// the cache is dropped.
    pub(crate) fn follow_file(self: &Arc<Self>, readers: &Arc<Readers>) {
        if !self.first_to_follow() {
            return;
        }
        tokio::spawn(poll(Arc::downgrade(self), readers.clone()));
    }
}

/// Polls the SQLite file's count of key changes until the cache is gone:
/// a count that moved forgets every kept key, each poll that read serves
/// until [`TRUST`] after it began, one that failed stops serving.
async fn poll(cache: Weak<KeyCache>, readers: Arc<Readers>) {
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<String> = None;
    loop {
        tick.tick().await;
        let Some(kept) = cache.upgrade() else { return };
        // Stamped before the read begins, so never later than its snapshot.
        let began = Instant::now();
        let count = readers.read(|conn| {
            conn.prepare_cached("SELECT value FROM meta WHERE key = 'api_key_changes'")?
                .query_row([], |row| row.get::<_, String>(0))
        });
        match count {
            Ok(count) => {
                if last.as_ref().is_some_and(|last| *last != count) {
                    kept.forget_all();
                }
                last = Some(count);
                kept.trust_from(began);
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the count of API-key changes; keys are read each time");
                last = None;
                kept.stop_serving();
            }
        }
    }
}

/// Notifies this node's beats, numbered from 1, until the cache is gone.
/// A beat that fails to send leaves a gap, which the listener takes as a
/// missed notification.
async fn beat(cache: Weak<KeyCache>, pool: sqlx::PgPool, node: String, born: Instant) {
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for number in 1u64.. {
        tick.tick().await;
        if cache.strong_count() == 0 {
            return;
        }
        // Stamped before it is sent, so the stamp is never later than
        // its commit.
        let sent_ms = born.elapsed().as_millis();
        let payload = format!("beat {node} {number} {sent_ms}");
        let sent = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&pool).await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not send the API-key cache's beat");
        }
    }
}

/// Listens on [`CHANNEL`] on a connection of its own, reconnecting after
/// any trouble, until the cache is gone.
async fn listen(cache: Weak<KeyCache>, pool: sqlx::PgPool) {
    let options = (*pool.connect_options()).clone();
    drop(pool);
    let mut failing = false;
    // A new cache serves nothing, and every pass below ends by stopping.
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        // A pool of one, so the listener's connection is not taken from
        // the pool the requests use.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options.clone());
        let listening = async {
            let mut listener = PgListener::connect_with(&own).await?;
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        match listening {
            Ok(mut listener) => {
                failing = false;
                hear(&cache, &mut listener).await;
            }
            // Said once per outage, not once per retry.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot listen for API-key revocations; keys are read each time");
            }
            Err(e) => tracing::debug!(error = %e, "still cannot listen for API-key revocations"),
        }
        // Whatever was notified from here on goes unheard: stop serving
        // now, not after reconnecting.
        if let Some(kept) = cache.upgrade() {
            kept.stop_serving();
        }
        own.close().await;
        tokio::time::sleep(if failing { TRUST } else { BEAT }).await;
    }
}

/// Applies what the listener hears until it falls silent for [`TRUST`],
/// loses its connection, or the cache is gone.
async fn hear(cache: &Weak<KeyCache>, listener: &mut PgListener) {
    let mut own = OwnBeats::default();
    loop {
        let heard = tokio::time::timeout(TRUST, listener.try_recv()).await;
        let Some(kept) = cache.upgrade() else { return };
        let Ok(Ok(Some(notification))) = heard else { return };
        match parse_beat(notification.payload()) {
            Some(beat) if beat.node == kept.node => {
                if own.in_sequence(beat.number) {
                    kept.trust_from(kept.born + Duration::from_millis(beat.sent_ms));
                } else {
                    kept.stop_serving();
                }
            }
            Some(_) => {}
            None => kept.forget_all(),
        }
    }
}

/// A beat as heard: `beat NODE NUMBER SENT_MS`.
#[derive(Debug, PartialEq, Eq)]
struct Beat<'a> {
    node: &'a str,
    number: u64,
    /// When it was sent, in milliseconds since its cache was made.
    sent_ms: u64,
}

/// The beat `payload` is, or `None` for anything else (a revocation).
fn parse_beat(payload: &str) -> Option<Beat<'_>> {
    let mut parts = payload.strip_prefix("beat ")?.split(' ');
    let beat = Beat { node: parts.next()?, number: parts.next()?.parse().ok()?, sent_ms: parts.next()?.parse().ok()? };
    parts.next().is_none().then_some(beat)
}

/// The numbers of this node's own beats as heard on one connection.
#[derive(Default)]
struct OwnBeats {
    last: Option<u64>,
}

impl OwnBeats {
    /// Whether `number` follows the last one heard (the first heard on a
    /// connection starts the sequence).
    fn in_sequence(&mut self, number: u64) -> bool {
        let follows = self.last.is_none_or(|last| number == last + 1);
        self.last = Some(number);
        follows
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use vouchsafe_core::ids::{ApiKeyId, TenantId};
    use vouchsafe_core::role::Role;

    use super::*;

    fn key() -> ApiKey {
        ApiKey {
            id: ApiKeyId::from_stored("key_a".into()),
            tenant_id: TenantId::from_stored("ten_a".into()),
            name: String::new(),
            role: Role::Admin,
            hint: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            revoked_at: None,
        }
    }

    #[test]
    fn nothing_is_served_until_its_own_beat_is_heard_nor_after_trust_runs_out() {
        let cache = KeyCache::default();
        cache.put("h", &key(), cache.epoch());
        assert_eq!(cache.get("h"), None, "not serving: nothing kept");
        cache.trust_from(Instant::now());
        cache.put("h", &key(), cache.epoch());
        assert_eq!(cache.get("h"), Some(key()));
        cache.trust_from(Instant::now() - TRUST);
        assert_eq!(cache.get("h"), None, "a beat sent longer ago than TRUST serves nothing, however late heard");
    }

    #[test]
    fn a_lookup_that_began_before_a_forgetting_keeps_nothing() {
        let cache = KeyCache::default();
        cache.trust_from(Instant::now());
        let began = cache.epoch();
        cache.forget_all();
        cache.put("h", &key(), began);
        assert_eq!(cache.get("h"), None);
        cache.put("h", &key(), cache.epoch());
        cache.stop_serving();
        cache.trust_from(Instant::now());
        assert_eq!(cache.get("h"), None, "stopping forgets what was kept");
    }

    #[test]
    fn only_beats_are_beats_and_a_gap_in_the_own_numbers_shows() {
        assert_eq!(parse_beat("beat ab12 7 250"), Some(Beat { node: "ab12", number: 7, sent_ms: 250 }));
        for other in [REVOKED, "beat", "beat ab12", "beat ab12 7", "beat ab12 x 250", "beat ab12 7 250 1", ""] {
            assert_eq!(parse_beat(other), None, "{other:?}");
        }
        let mut own = OwnBeats::default();
        assert!(own.in_sequence(5) && own.in_sequence(6));
        assert!(!own.in_sequence(8), "7 was missed");
        assert!(own.in_sequence(9));
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let cache = KeyCache::default();
        cache.trust_from(Instant::now());
        for n in 0..MAX_KEYS + 5 {
            cache.put(&format!("h{n}"), &key(), cache.epoch());
        }
        let held = cache.state.lock().map(|s| s.keys.len()).unwrap_or(usize::MAX);
        assert!(held <= MAX_KEYS, "{held}");
    }
}
