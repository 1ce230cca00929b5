//! The audit log: per tenant, append-only and hash-chained. Each event's
//! hash covers its own fields and the previous event's hash, so editing,
//! deleting or reordering any stored event breaks every hash after it and
//! [`verify_chain`] names the first sequence number that no longer fits.
//!
//! Events say who (the API key id, or `cli`), did what, to which object,
//! with what outcome. They never carry a secret or a code: callers pass
//! ids and outcomes only.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::clock::to_unix_ms;
use crate::crypto::hex;

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

/// SHA-256 over the previous hash and every field, each length-prefixed so
/// no two different events can serialise to the same bytes.
pub fn chain_hash(prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    for field in [
        prev_hash,
        &seq.to_string(),
        &to_unix_ms(entry.at).to_string(),
        &entry.actor,
        &entry.action,
        &entry.target,
        &entry.outcome,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex(&h.finalize())
}

/// Outcome of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    pub valid: bool,
    pub count: u64,
    /// The first event whose sequence, link or hash is wrong.
    pub first_bad_seq: Option<i64>,
}

/// Incremental checker, so long chains can be read page by page.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    count: u64,
    first_bad_seq: Option<i64>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { expected_seq: 1, prev_hash: GENESIS_HASH.to_owned(), count: 0, first_bad_seq: None }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, event: &AuditEvent) {
        self.count += 1;
        if self.first_bad_seq.is_some() {
            return;
        }
        let fits = event.seq == self.expected_seq
            && event.prev_hash == self.prev_hash
            && event.hash == chain_hash(&event.prev_hash, event.seq, &event.entry);
        if fits {
            self.expected_seq += 1;
            self.prev_hash = event.hash.clone();
        } else {
            self.first_bad_seq = Some(event.seq.min(self.expected_seq));
        }
    }

    /// The verdict; `head_seq` is the last sequence number the store handed
    /// out, so a deleted tail is noticed too.
    pub fn finish(self, head_seq: i64) -> ChainCheck {
        let first_bad_seq = self.first_bad_seq.or((head_seq >= self.expected_seq).then_some(self.expected_seq));
        ChainCheck { valid: first_bad_seq.is_none(), count: self.count, first_bad_seq }
    }
}

/// Checks a whole chain at once.
pub fn verify_chain(events: &[AuditEvent], head_seq: i64) -> ChainCheck {
    let mut verifier = ChainVerifier::default();
    events.iter().for_each(|e| verifier.push(e));
    verifier.finish(head_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let at = OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq).unwrap();
                let entry = AuditEntry::success("key_x", "settings.updated", "settings", at);
                let hash = chain_hash(&prev, seq, &entry);
                let event = AuditEvent { seq, entry, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                event
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_is_valid() {
        assert_eq!(verify_chain(&chain(5), 5), ChainCheck { valid: true, count: 5, first_bad_seq: None });
        assert_eq!(verify_chain(&[], 0), ChainCheck { valid: true, count: 0, first_bad_seq: None });
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        events[2].entry.outcome = "denied".into();
        assert_eq!(verify_chain(&events, 5).first_bad_seq, Some(3));
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut events = chain(5);
        events[2].entry.actor = "key_someone_else".into();
        events[2].hash = chain_hash(&events[2].prev_hash, 3, &events[2].entry);
        assert_eq!(verify_chain(&events, 5).first_bad_seq, Some(4));
    }

    #[test]
    fn deleted_events_are_noticed_in_the_middle_and_at_the_end() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(verify_chain(&events, 5).first_bad_seq, Some(2));
        let events = chain(5);
        assert_eq!(verify_chain(&events[..4], 5).first_bad_seq, Some(5));
    }

    #[test]
    fn fields_cannot_bleed_into_each_other() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let a = chain_hash(GENESIS_HASH, 1, &AuditEntry::success("ab", "c", "t", at));
        let b = chain_hash(GENESIS_HASH, 1, &AuditEntry::success("a", "bc", "t", at));
        assert_ne!(a, b);
    }
}
