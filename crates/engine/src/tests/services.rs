//! Changing a service: only the members named, validated, written on the
//! version read.

use vouchsafe_core::channel::Channel;
use vouchsafe_core::ids::ServiceId;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::StoreError;

use super::super::admin::create_service;
use super::super::services::{ServiceChange, UpdateError, conflict_backoff, update};
use super::fixture;

#[tokio::test]
async fn an_update_changes_the_members_it_names() {
    let f = fixture(Settings::default()).await;
    let t = f.tenant_id();
    let s = create_service(&f.engine, &f.admin(), "Shop", Some(8), Some(300), None).await.unwrap();
    f.advance(3);
    let change = ServiceChange { name: Some("  Store ".into()), ..Default::default() };
    let changed = update(&f.engine, &t, "test", &s.id, &change).await.unwrap();
    assert_eq!((changed.name.as_str(), changed.code_length, changed.ttl_s), ("Store", Some(8), Some(300)));
    assert_eq!(changed.updated_at, f.now());
    let change = ServiceChange {
        code_length: Some(None),
        ttl_s: Some(Some(120)),
        channels: Some(vec![Channel::Email]),
        ..Default::default()
    };
    let changed = update(&f.engine, &t, "test", &s.id, &change).await.unwrap();
    assert_eq!((changed.code_length, changed.ttl_s, changed.channels.clone()), (None, Some(120), vec![Channel::Email]));
    let stored = f.engine.store.service(&t, &s.id).await.unwrap();
    assert_eq!(stored.value, changed);
    assert_eq!(f.audited("service.updated").await, 2);

    let bad = ServiceChange { code_length: Some(Some(99)), ..Default::default() };
    assert!(matches!(update(&f.engine, &t, "test", &s.id, &bad).await, Err(UpdateError::Invalid(_))));
    let missing = update(&f.engine, &t, "test", &ServiceId::generate(), &ServiceChange::default()).await;
    assert!(matches!(missing, Err(UpdateError::Store(StoreError::NotFound))), "{missing:?}");
    create_service(&f.engine, &f.admin(), "Other", None, None, None).await.unwrap();
    let taken = ServiceChange { name: Some("Other".into()), ..Default::default() };
    assert!(matches!(
        update(&f.engine, &t, "test", &s.id, &taken).await,
        Err(UpdateError::Store(StoreError::Conflict(_)))
    ));
}

/// A lost race backs off a random 0 to 2 × attempt milliseconds, so
/// writers that collided spread out: at attempt 10, from nearly nothing
/// to never more than 20 ms, 10 ms on average.
#[tokio::test(start_paused = true)]
async fn a_lost_race_backs_off_up_to_twice_its_attempt_in_ms() {
    let started = tokio::time::Instant::now();
    let (mut shortest, mut longest) = (std::time::Duration::MAX, std::time::Duration::ZERO);
    for _ in 0..200 {
        let before = tokio::time::Instant::now();
        conflict_backoff(10).await;
        shortest = shortest.min(before.elapsed());
        longest = longest.max(before.elapsed());
    }
    let total = started.elapsed();
    assert!(longest <= std::time::Duration::from_millis(20), "{longest:?}");
    // Spread from (nearly) nothing: 200 waits all above 5 ms would happen
    // once in 10^25 runs.
    assert!(shortest <= std::time::Duration::from_millis(5), "{shortest:?}");
    // 200 waits of 10 ms on average add up to 2 s; their spread is about
    // 0.08 s, far inside these bounds.
    let expected = std::time::Duration::from_millis(1_500)..=std::time::Duration::from_millis(2_500);
    assert!(expected.contains(&total), "{total:?}");
}
