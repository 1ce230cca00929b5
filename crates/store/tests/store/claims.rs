//! Webhook claims against a model of the fair-share rule: over outboxes of
//! varied shapes (tenants, endpoints, backlogs, leases held and given
//! back), every claim takes exactly the messages the rule picks. The claim
//! statement reads only the slots it can take (see the store's `claim`
//! module); this is what shows that the shortcut never changes the answer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::store::{DueMessage, Finished, MessageOutcome, WebhookStore};
use vouchsafe_core::webhook::{EventFilter, IN_FLIGHT_PER_ENDPOINT, IN_FLIGHT_PER_TENANT};

use vouchsafe_core::ids::WebhookEndpointId;
use vouchsafe_core::tenant::Tenant;
use vouchsafe_store::SqlStore;

use crate::contract::{at, attempt_of, endpoint, finish, tenant};
use crate::store;

/// One queued message, as the model sees it.
#[derive(Debug, Clone)]
struct Queued {
    event: String,
    tenant: usize,
    endpoint: usize,
    /// Due time in seconds; distinct across the outbox, so the rule's order
    /// never falls back to ids.
    due: i64,
    leased: bool,
}

/// The fair-share rule, written out plainly: an endpoint's unleased due
/// messages take slots after its leases, earliest first, up to its share; a
/// tenant's take turns by slot, up to its share less its leases; tenants
/// interleave by turn; the first `limit` are claimed.
fn rule_picks(outbox: &[Queued], limit: usize) -> BTreeSet<String> {
    let share = |n: i64| usize::try_from(n).unwrap();
    let busy = |key: &dyn Fn(&Queued) -> usize| {
        let mut n = BTreeMap::new();
        for q in outbox.iter().filter(|q| q.leased) {
            *n.entry(key(q)).or_insert(0usize) += 1;
        }
        n
    };
    let (busy_endpoint, busy_tenant) = (busy(&|q| q.endpoint), busy(&|q| q.tenant));
    let mut by_endpoint: BTreeMap<usize, Vec<&Queued>> = BTreeMap::new();
    for q in outbox.iter().filter(|q| !q.leased) {
        by_endpoint.entry(q.endpoint).or_default().push(q);
    }
    let mut by_tenant: BTreeMap<usize, Vec<(usize, &Queued)>> = BTreeMap::new();
    for (e, mut queued) in by_endpoint {
        queued.sort_by_key(|q| q.due);
        let leased = busy_endpoint.get(&e).copied().unwrap_or(0);
        for (i, q) in queued.into_iter().enumerate() {
            let slot = leased + i + 1;
            if slot <= share(IN_FLIGHT_PER_ENDPOINT) {
                by_tenant.entry(q.tenant).or_default().push((slot, q));
            }
        }
    }
    let mut turns = Vec::new();
    for (t, mut candidates) in by_tenant {
        candidates.sort_by_key(|(slot, q)| (*slot, q.due));
        let leased = busy_tenant.get(&t).copied().unwrap_or(0);
        for (i, (_, q)) in candidates.into_iter().enumerate() {
            let turn = i + 1;
            if turn + leased <= share(IN_FLIGHT_PER_TENANT) {
                turns.push((turn, q.due, q.event.clone()));
            }
        }
    }
    turns.sort();
    turns.into_iter().take(limit).map(|(_, _, event)| event).collect()
}

/// A small deterministic generator, so a failing shape can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap() % n
    }
}

#[tokio::test]
async fn every_claim_takes_exactly_what_the_fair_share_rule_picks() {
    for seed in 1..=24u64 {
        let mut rng = Lcg(seed);
        let (store, _db) = store().await;
        // The outbox: up to three tenants with up to six endpoints each,
        // backlogs from none to past an endpoint's share.
        let mut endpoints = Vec::new();
        for t in 0..1 + rng.below(3) {
            let tenant = tenant(&store, &format!("t{t}")).await;
            for _ in 0..1 + rng.below(6) {
                endpoints.push((t, tenant.id.clone(), endpoint(&store, &tenant, EventFilter::All, true).await.id));
            }
        }
        let mut slots = Vec::new();
        for (e, _) in endpoints.iter().enumerate() {
            slots.extend(std::iter::repeat_n(e, [0, 1, 3, 12, 25][rng.below(5)]));
        }
        let mut dues: Vec<i64> = (1..=i64::try_from(slots.len()).unwrap()).collect();
        for i in (1..dues.len()).rev() {
            dues.swap(i, rng.below(i + 1));
        }
        let mut outbox = Vec::new();
        for (&e, &due) in slots.iter().zip(&dues) {
            let (t, tenant_id, endpoint_id) = &endpoints[e];
            let event = Event::new(tenant_id.clone(), EventType::Ping, json!({}), at(due));
            store.enqueue_event(&event, Some(endpoint_id)).await.unwrap();
            outbox.push(Queued { event: event.id.to_string(), tenant: *t, endpoint: e, due, leased: false });
        }
        // Claims of varied sizes; half of each claim's messages are
        // delivered (their leases given back), the rest stay in flight.
        let mut held: Vec<DueMessage> = Vec::new();
        for (round, limit) in [7usize, 1, 30, 64, 3, 64, 64].into_iter().enumerate() {
            let expected = rule_picks(&outbox, limit);
            let claimed =
                store.claim_due_messages(at(10_000), at(20_000), i64::try_from(limit).unwrap()).await.unwrap();
            let got: BTreeSet<String> = claimed.iter().map(|m| m.event_id.to_string()).collect();
            assert_eq!(got, expected, "seed {seed}, round {round}: limit {limit}, {} queued", outbox.len());
            for q in outbox.iter_mut().filter(|q| got.contains(&q.event)) {
                q.leased = true;
            }
            for (i, m) in claimed.into_iter().enumerate() {
                if i % 2 == 0 {
                    finish(&store, &m, MessageOutcome::Delivered, 10_000).await;
                    outbox.retain(|q| q.event != m.event_id.to_string());
                } else {
                    held.push(m);
                }
            }
        }
        assert!(!held.is_empty(), "seed {seed}: the shape held no leases, so shares were not exercised");
    }
}

/// A tenant with one endpoint and `n` events for it, due at 1, 2, … `n` s.
async fn one_endpoint_with_events(store: &SqlStore, n: i64) -> (Tenant, WebhookEndpointId) {
    let t = tenant(store, "a").await;
    let e = endpoint(store, &t, EventFilter::All, true).await.id;
    for i in 1..=n {
        store.enqueue_event(&Event::new(t.id.clone(), EventType::Ping, json!({}), at(i)), Some(&e)).await.unwrap();
    }
    (t, e)
}

/// An endpoint at its share: recording one outcome and claiming in the
/// same write takes exactly the slot that outcome frees, and never the
/// message just recorded.
#[tokio::test]
async fn an_outcome_frees_its_slot_for_the_claim_in_the_same_write() {
    let (store, _db) = store().await;
    one_endpoint_with_events(&store, 40).await;
    let held = store.claim_due_messages(at(100), at(400), 64).await.unwrap();
    assert_eq!(held.len() as i64, IN_FLIGHT_PER_ENDPOINT);
    assert!(store.claim_due_messages(at(100), at(400), 64).await.unwrap().is_empty(), "at its share");

    let first = &held[0];
    let outcome = Finished {
        message: first.clone(),
        outcome: MessageOutcome::Delivered,
        attempt: attempt_of(first, "delivered", 100),
    };
    let next = store.finish_and_claim(&[outcome], at(100), at(400), 64).await.unwrap();
    assert_eq!(next.len(), 1, "the one slot the outcome freed");
    assert!(held.iter().all(|m| m.id != next[0].id), "a new message, not one in flight or just delivered");
    assert_eq!(store.outbox_depth().await.unwrap(), 40 - 1, "the recorded one is out of the outbox");
}

/// A batch of outcomes written together (one statement on PostgreSQL):
/// every attempt is logged, and each message moves on only while its lease
/// is the one the batch names: delivered and dead ones leave the outbox, a
/// retry waits for its time, and one whose lease ran out stays as it was.
#[tokio::test]
async fn a_batch_of_outcomes_moves_each_message_on_as_one_would() {
    let (store, _db) = store().await;
    let (t, e) = one_endpoint_with_events(&store, 5).await;
    let mut claimed = store.claim_due_messages(at(100), at(400), 64).await.unwrap();
    claimed.sort_by_key(|m| m.event_id.to_string());
    assert_eq!(claimed.len(), 5);
    let outcome = |m: &DueMessage, outcome: MessageOutcome| Finished {
        message: m.clone(),
        outcome,
        attempt: attempt_of(m, outcome.as_str(), 100),
    };
    let mut stale = claimed[3].clone();
    stale.lease += 1;
    let batch = [
        outcome(&claimed[0], MessageOutcome::Delivered),
        outcome(&claimed[1], MessageOutcome::RetryAt(at(1_000))),
        outcome(&claimed[2], MessageOutcome::Dead),
        outcome(&stale, MessageOutcome::Delivered),
    ];
    store.finish_messages(&batch).await.unwrap();

    let logged = store.webhook_attempts(&t.id, &e, None, 50).await.unwrap();
    assert_eq!(logged.len(), 4, "every attempt is logged, the stale one too");
    assert_eq!(store.outbox_depth().await.unwrap(), 3, "the retried one, the stale one and the untouched one");
    assert!(store.claim_due_messages(at(101), at(400), 64).await.unwrap().is_empty(), "leased, or not yet due");
    let later: std::collections::BTreeSet<String> = store
        .claim_due_messages(at(1_000), at(1_400), 64)
        .await
        .unwrap()
        .iter()
        .map(|m| m.event_id.to_string())
        .collect();
    let expected = [1, 3, 4].iter().map(|&i| claimed[i].event_id.to_string()).collect();
    assert_eq!(later, expected, "the retry when due, and the two whose leases ran out");
}

/// A batch of outcomes written twice, as the dispatcher writes it again
/// after a write that failed but may have committed (its answer lost with
/// the connection): the second write succeeds and changes nothing, in a
/// batch (one statement on PostgreSQL) and alone.
#[tokio::test]
async fn outcomes_written_twice_are_recorded_once() {
    let (store, _db) = store().await;
    let (t, e) = one_endpoint_with_events(&store, 3).await;
    let claimed = store.claim_due_messages(at(100), at(400), 64).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let outcome = |m: &DueMessage, outcome: MessageOutcome| Finished {
        message: m.clone(),
        outcome,
        attempt: attempt_of(m, outcome.as_str(), 100),
    };
    let batch =
        [outcome(&claimed[0], MessageOutcome::Delivered), outcome(&claimed[1], MessageOutcome::RetryAt(at(1_000)))];
    let alone = [outcome(&claimed[2], MessageOutcome::Dead)];
    for _ in 0..2 {
        store.finish_messages(&batch).await.unwrap();
        store.finish_messages(&alone).await.unwrap();
    }
    let logged = store.webhook_attempts(&t.id, &e, None, 50).await.unwrap();
    assert_eq!(logged.len(), 3, "each attempt logged once");
    assert_eq!(store.outbox_depth().await.unwrap(), 1, "only the retry is left");
    let later = store.claim_due_messages(at(1_000), at(1_400), 64).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, claimed[1].id, "the retry, when due");
}
