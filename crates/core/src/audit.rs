//! The audit log: per tenant, append-only and hash-chained. Each event's
//! hash covers its own fields and the previous event's hash, so editing,
//! deleting or reordering any stored event breaks every hash after it and
//! [`verify_chain`] names the first sequence number that no longer fits.
//!
//! The chain is keyed: each hash is an HMAC under a key derived from the
//! master key ([`AuditKey`]), so someone who can write to the database but
//! does not hold the key cannot rewrite an event and re-chain the rest.
//! Keyed hashes say so (`hmac-sha256:…`); bare SHA-256 hashes are events
//! written before chains were keyed. Those still verify, but only before a
//! chain's first keyed event, and a chain must end on a keyed event: the
//! first command that opens the key after an upgrade appends
//! `audit.keyed`, whose HMAC pins the whole unkeyed past. So rewriting an
//! old chain as all unkeyed fails too.
//!
//! Events say who (the API key id, `cli`, or `system`), did what, to which
//! object, with what outcome. They never carry a secret or a code: callers
//! pass ids and outcomes only.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::clock::to_unix_ms;
use crate::crypto::{KeyedHasher, MasterKey, hex};
use crate::ids::TenantId;
use crate::store::{AuditStore, StoreResult};

/// Marks a keyed hash; a hash without it is an unkeyed SHA-256.
pub const KEYED_PREFIX: &str = "hmac-sha256:";

/// The key the chain's HMACs are made with, derived from the master key.
#[derive(Clone)]
pub struct AuditKey(KeyedHasher);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl AuditKey {
    pub fn new(master: &MasterKey) -> Self {
        Self(master.hasher("audit chain"))
    }
}

/// The action of the keyed event that pins a chain written before keying.
pub const PIN_ACTION: &str = "audit.keyed";

/// The entry that pins a chain written before keying: the only keyed event
/// a chain may have right after an unkeyed one.
pub fn pin_entry(at: OffsetDateTime) -> AuditEntry {
    AuditEntry::success("system", PIN_ACTION, "audit", at)
}

/// Whether `hash` was made with the key.
pub fn is_keyed(hash: &str) -> bool {
    hash.starts_with(KEYED_PREFIX)
}

/// The hash before the first event of every tenant.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a change asks the store to append, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// `key_…` of the API key, or `cli`.
    pub actor: String,
    /// `api_key.created`, `settings.updated`, …
    pub action: String,
    /// The object acted on (`key_…`, `VA…`, `settings`, …).
    pub target: String,
    /// `success`, or a short machine word (`denied`, `expired`).
    pub outcome: String,
    /// When the change happened (the server's clock).
    pub at: OffsetDateTime,
}

impl AuditEntry {
    pub fn new(
        actor: impl Into<String>,
        action: &str,
        target: impl Into<String>,
        outcome: &str,
        at: OffsetDateTime,
    ) -> Self {
        Self { actor: actor.into(), action: action.to_owned(), target: target.into(), outcome: outcome.to_owned(), at }
    }

    /// A successful change.
    pub fn success(actor: impl Into<String>, action: &str, target: impl Into<String>, at: OffsetDateTime) -> Self {
        Self::new(actor, action, target, "success", at)
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: i64,
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The previous hash and every field, each length-prefixed so no two
/// different events can serialise to the same bytes.
fn chained_fields(prev_hash: &str, seq: i64, entry: &AuditEntry) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    for field in [
        prev_hash,
        &seq.to_string(),
        &to_unix_ms(entry.at).to_string(),
        &entry.actor,
        &entry.action,
        &entry.target,
        &entry.outcome,
    ] {
        bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    bytes
}

/// The hash of a new event: an HMAC under the audit key.
pub fn chain_hash(key: &AuditKey, prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
    format!("{KEYED_PREFIX}{}", key.0.hash(&chained_fields(prev_hash, seq, entry)))
}

/// The hash events had before chains were keyed: a bare SHA-256.
pub fn unkeyed_hash(prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
    hex(&Sha256::digest(chained_fields(prev_hash, seq, entry)))
}

/// Outcome of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    pub valid: bool,
    pub count: u64,
    /// The first event whose sequence, link or hash is wrong (one past the
    /// last event when the chain does not end on a keyed event).
    pub first_bad_seq: Option<i64>,
    /// The hash of the last event checked, for an operator to record
    /// elsewhere: a later check that ends on the same hash at that `seq`
    /// proves nothing before it changed. `None` for an empty chain.
    pub head_hash: Option<String>,
}

/// Incremental checker, so long chains can be read page by page.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    key: AuditKey,
    expected_seq: i64,
    prev_hash: String,
    count: u64,
    first_bad_seq: Option<i64>,
}

impl ChainVerifier {
    pub fn new(key: &AuditKey) -> Self {
        Self { key: key.clone(), expected_seq: 1, prev_hash: GENESIS_HASH.to_owned(), count: 0, first_bad_seq: None }
    }

    pub fn push(&mut self, event: &AuditEvent) {
        self.count += 1;
        if self.first_bad_seq.is_some() {
            return;
        }
        // An unkeyed event is only believed before the first keyed one, and
        // the keyed event after it must be the pin: any other appended on
        // an unkeyed head would vouch for whatever was written there.
        let after_unkeyed = self.prev_hash != GENESIS_HASH && !is_keyed(&self.prev_hash);
        let expected = if is_keyed(&event.hash) {
            let pins = event.entry.action == PIN_ACTION && event.entry.actor == "system";
            (!after_unkeyed || pins).then(|| chain_hash(&self.key, &event.prev_hash, event.seq, &event.entry))
        } else {
            (!is_keyed(&self.prev_hash)).then(|| unkeyed_hash(&event.prev_hash, event.seq, &event.entry))
        };
        let fits = event.seq == self.expected_seq
            && event.prev_hash == self.prev_hash
            && expected.is_some_and(|hash| hash.as_bytes().ct_eq(event.hash.as_bytes()).into());
        if fits {
            self.expected_seq += 1;
            self.prev_hash = event.hash.clone();
        } else {
            self.first_bad_seq = Some(event.seq.min(self.expected_seq));
        }
    }

    /// The verdict; `head_seq` is the last sequence number the store handed
    /// out, so a deleted tail is noticed too. A chain that ends on an
    /// unkeyed event is missing the keyed one that pins it.
    pub fn finish(self, head_seq: i64) -> ChainCheck {
        let unpinned = self.count > 0 && !is_keyed(&self.prev_hash);
        let first_bad_seq =
            self.first_bad_seq.or((head_seq >= self.expected_seq || unpinned).then_some(self.expected_seq));
        let head_hash = (self.expected_seq > 1).then_some(self.prev_hash);
        ChainCheck { valid: first_bad_seq.is_none(), count: self.count, first_bad_seq, head_hash }
    }
}

/// Checks a whole chain at once.
pub fn verify_chain(key: &AuditKey, events: &[AuditEvent], head_seq: i64) -> ChainCheck {
    let mut verifier = ChainVerifier::new(key);
    events.iter().for_each(|e| verifier.push(e));
    verifier.finish(head_seq)
}

/// Checks a tenant's stored chain page by page, up to the head read first
/// (events appended meanwhile are beyond it).
pub async fn verify_stored_chain(
    store: &(impl AuditStore + ?Sized),
    tenant: &TenantId,
    key: &AuditKey,
) -> StoreResult<ChainCheck> {
    let head = store.audit_head(tenant).await?;
    let mut verifier = ChainVerifier::new(key);
    let mut after = 0;
    while after < head {
        let page = store.audit_events(tenant, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.iter().filter(|e| e.seq <= head).for_each(|e| verifier.push(e));
    }
    Ok(verifier.finish(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::new(&MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap())
    }

    fn entry(seq: i64) -> AuditEntry {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq).unwrap();
        AuditEntry::success("key_x", "settings.updated", "settings", at)
    }

    /// `unkeyed` events first (as written before chains were keyed), then
    /// keyed ones up to `n`.
    fn chain_with(key: &AuditKey, unkeyed: i64, n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = if unkeyed > 0 && seq == unkeyed + 1 { pin_entry(entry(seq).at) } else { entry(seq) };
                let hash =
                    if seq <= unkeyed { unkeyed_hash(&prev, seq, &entry) } else { chain_hash(key, &prev, seq, &entry) };
                let event = AuditEvent { seq, entry, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                event
            })
            .collect()
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        chain_with(&key(), 0, n)
    }

    #[test]
    fn an_untouched_chain_is_valid_and_names_its_head() {
        let events = chain(5);
        let check = verify_chain(&key(), &events, 5);
        assert_eq!(
            check,
            ChainCheck { valid: true, count: 5, first_bad_seq: None, head_hash: Some(events[4].hash.clone()) }
        );
        assert!(check.head_hash.unwrap().starts_with(KEYED_PREFIX));
        let empty = verify_chain(&key(), &[], 0);
        assert_eq!(empty, ChainCheck { valid: true, count: 0, first_bad_seq: None, head_hash: None });
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        events[2].entry.outcome = "denied".into();
        assert_eq!(verify_chain(&key(), &events, 5).first_bad_seq, Some(3));
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut events = chain(5);
        events[2].entry.actor = "key_someone_else".into();
        events[2].hash = chain_hash(&key(), &events[2].prev_hash, 3, &events[2].entry);
        assert_eq!(verify_chain(&key(), &events, 5).first_bad_seq, Some(4));
    }

    /// Issue 16, item 12: without the key a writer cannot re-chain an edit,
    /// neither with another key nor by writing the chain unkeyed.
    #[test]
    fn without_the_key_an_edit_cannot_be_rechained() {
        let other = AuditKey::new(&MasterKey::generate().unwrap());
        let mut forged = chain(5);
        forged[2].entry.outcome = "denied".into();
        let mut prev = forged[1].hash.clone();
        for e in &mut forged[2..] {
            e.prev_hash = prev.clone();
            e.hash = chain_hash(&other, &prev, e.seq, &e.entry);
            prev = e.hash.clone();
        }
        assert_eq!(verify_chain(&key(), &forged, 5).first_bad_seq, Some(3), "another key's HMACs");

        let mut unkeyed = chain_with(&key(), 5, 5);
        unkeyed[2].entry.outcome = "denied".into();
        let mut prev = GENESIS_HASH.to_owned();
        for e in &mut unkeyed {
            e.prev_hash = prev.clone();
            e.hash = unkeyed_hash(&prev, e.seq, &e.entry);
            prev = e.hash.clone();
        }
        let check = verify_chain(&key(), &unkeyed, 5);
        assert_eq!(check.first_bad_seq, Some(6), "an all-unkeyed chain lacks the keyed event that pins it");

        let mut unpinned = chain_with(&key(), 3, 5);
        unpinned[3].entry = entry(4);
        unpinned[3].hash = chain_hash(&key(), &unpinned[3].prev_hash, 4, &unpinned[3].entry);
        assert_eq!(
            verify_chain(&key(), &unpinned, 5).first_bad_seq,
            Some(4),
            "a keyed event other than the pin right after unkeyed ones (the server appending on a forged head)"
        );

        let mut downgraded = chain_with(&key(), 2, 5);
        downgraded[4].hash = unkeyed_hash(&downgraded[4].prev_hash, 5, &downgraded[4].entry);
        assert_eq!(verify_chain(&key(), &downgraded, 5).first_bad_seq, Some(5), "no unkeyed event after a keyed one");
    }

    #[test]
    fn chains_from_before_keying_still_verify_once_pinned() {
        let events = chain_with(&key(), 3, 5);
        assert!(!is_keyed(&events[2].hash) && is_keyed(&events[3].hash));
        assert!(verify_chain(&key(), &events, 5).valid);
    }

    #[test]
    fn an_edit_before_keying_is_still_noticed() {
        let mut events = chain_with(&key(), 3, 5);
        events[1].entry.outcome = "denied".into();
        assert_eq!(verify_chain(&key(), &events, 5).first_bad_seq, Some(2));
        assert_eq!(unkeyed_hash(GENESIS_HASH, 1, &entry(1)).len(), 64, "a bare SHA-256 in hex");
    }

    /// Only the system's own pin may follow unkeyed events: the pin action
    /// written by another actor does not count.
    #[test]
    fn the_pin_must_be_the_systems() {
        let mut events = chain_with(&key(), 3, 5);
        events[3].entry.actor = "key_someone".into();
        events[3].hash = chain_hash(&key(), &events[3].prev_hash, 4, &events[3].entry);
        assert_eq!(verify_chain(&key(), &events, 5).first_bad_seq, Some(4));
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", key()), "AuditKey(…)");
    }

    /// An audit store of `events` whose head was read as `head`; it
    /// records the `after` of each page asked for.
    struct Paged {
        events: Vec<AuditEvent>,
        head: i64,
        asked: std::sync::Mutex<Vec<i64>>,
    }

    #[async_trait::async_trait]
    impl AuditStore for Paged {
        async fn audit_events(&self, _: &TenantId, after: i64, limit: i64) -> StoreResult<Vec<AuditEvent>> {
            self.asked.lock().unwrap().push(after);
            Ok(self.events.iter().filter(|e| e.seq > after).take(limit as usize).cloned().collect())
        }
        async fn audit_head(&self, _: &TenantId) -> StoreResult<i64> {
            Ok(self.head)
        }
        async fn chain_audit(&self) -> StoreResult<u64> {
            Ok(0)
        }
        async fn pin_unkeyed_chains(&self, _: &AuditEntry) -> StoreResult<u64> {
            Ok(0)
        }
    }

    /// Pages of a thousand up to the head read first; events appended
    /// after it are neither read nor judged.
    #[tokio::test]
    async fn a_stored_chain_is_read_page_by_page_up_to_its_head() {
        let tenant = TenantId::generate();
        let store = Paged { events: chain(2_500), head: 2_500, asked: Default::default() };
        let check = verify_stored_chain(&store, &tenant, &key()).await.unwrap();
        assert_eq!((check.valid, check.count), (true, 2_500), "{check:?}");
        assert_eq!(*store.asked.lock().unwrap(), vec![0, 1_000, 2_000], "no page past the head");

        let mut events = chain(2_500);
        let mut appended = chain(2_501).pop().unwrap();
        appended.hash = "appended meanwhile, not checked".into();
        events.push(appended);
        let growing = Paged { events, head: 2_500, asked: Default::default() };
        let check = verify_stored_chain(&growing, &tenant, &key()).await.unwrap();
        assert_eq!((check.valid, check.count), (true, 2_500), "{check:?}");
        let empty = Paged { events: Vec::new(), head: 0, asked: Default::default() };
        assert!(verify_stored_chain(&empty, &tenant, &key()).await.unwrap().valid);
        assert!(empty.asked.lock().unwrap().is_empty());
    }

    #[test]
    fn deleted_events_are_noticed_in_the_middle_and_at_the_end() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(verify_chain(&key(), &events, 5).first_bad_seq, Some(2));
        let events = chain(5);
        assert_eq!(verify_chain(&key(), &events[..4], 5).first_bad_seq, Some(5));
    }

    #[test]
    fn fields_cannot_bleed_into_each_other() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let a = chain_hash(&key(), GENESIS_HASH, 1, &AuditEntry::success("ab", "c", "t", at));
        let b = chain_hash(&key(), GENESIS_HASH, 1, &AuditEntry::success("a", "bc", "t", at));
        assert_ne!(a, b);
    }
}
