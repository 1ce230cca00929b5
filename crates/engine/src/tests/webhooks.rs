//! Webhook endpoints: created under the outbound rule with a sealed
//! secret, changed, rotated with a grace period, pinged within a limit.

use vouchsafe_core::event::EventType;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::webhook::{DEFAULT_ENDPOINTS_PER_TENANT, EventFilter, TEST_EVENTS_PER_HOUR};

use super::super::error::EngineError;
use super::super::webhooks::{
    DEFAULT_ROTATION_GRACE_S, EndpointChange, EndpointError, NewEndpoint, TestEventError, create_endpoint,
    delete_endpoint, rotate_secret, secret_context, send_test_event, update_endpoint,
};
use super::fixture;

fn refused_field<T>(result: Result<T, EndpointError>) -> String {
    match result {
        Err(EndpointError::Invalid(e)) => e.field,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted"),
    }
}

/// The secret is answered once and stored sealed to its endpoint; the
/// fields are checked first.
#[tokio::test]
async fn an_endpoint_keeps_its_secret_sealed_to_itself() {
    let f = fixture(Settings::default()).await;
    let (e, secret) = f.endpoint(None, Some("  orders  ")).await.unwrap();
    assert_eq!((e.description.as_str(), &e.events, e.enabled), ("orders", &EventFilter::All, true));
    let sealed = f.engine.store.webhook_secrets(&f.tenant.id, &e.id).await.unwrap().current;
    let opened = f.engine.sealer.open(&sealed, &secret_context(&e.id)).unwrap();
    assert_eq!(opened.as_slice(), secret.as_bytes());
    let (other, _) = f.endpoint(None, None).await.unwrap();
    assert!(f.engine.sealer.open(&sealed, &secret_context(&other.id)).is_err(), "bound to its endpoint");
    assert_eq!(f.audited("webhook_endpoint.created").await, 2);

    let unknown = vec!["no.such_event".to_owned()];
    assert_eq!(refused_field(f.endpoint(Some(&unknown), None).await), "events");
    let long = "d".repeat(201);
    assert_eq!(refused_field(f.endpoint(None, Some(&long)).await), "description");
    assert!(f.endpoint(None, Some(&long[..200])).await.is_ok());
    let request = NewEndpoint {
        tenant_id: &f.tenant.id,
        actor: "test",
        url: "ftp://example.com/x",
        events: None,
        description: None,
    };
    let bad_url = create_endpoint(
        &f.engine.outbound,
        f.engine.store.as_ref(),
        &f.engine.sealer,
        f.now(),
        DEFAULT_ENDPOINTS_PER_TENANT,
        request,
    )
    .await;
    assert_eq!(refused_field(bad_url), "url");
}

/// An update changes only what it names; re-enabling clears why the
/// server disabled it.
#[tokio::test]
async fn an_update_changes_what_it_names() {
    let f = fixture(Settings::default()).await;
    let (e, _) = f.endpoint(None, Some("first")).await.unwrap();
    let events = vec!["verification.approved".to_owned()];
    f.advance(5);
    let change = EndpointChange { events: Some(&events), enabled: Some(false), ..Default::default() };
    let changed = update_endpoint(&f.engine, &f.tenant.id, "test", &e.id, change).await.unwrap();
    assert_eq!(changed.events, EventFilter::Only(vec![EventType::VerificationApproved]));
    assert_eq!((changed.description.as_str(), changed.enabled, changed.updated_at), ("first", false, f.now()));
    let stored = f.engine.store.webhook_endpoint(&f.tenant.id, &e.id).await.unwrap();
    assert_eq!((stored.enabled, &stored.events), (false, &changed.events));
    let change = EndpointChange {
        url: Some("http://127.0.0.1:10/other"),
        description: Some(" second "),
        enabled: Some(true),
        ..Default::default()
    };
    let changed = update_endpoint(&f.engine, &f.tenant.id, "test", &e.id, change).await.unwrap();
    assert_eq!(
        (changed.url.as_str(), changed.description.as_str(), changed.enabled),
        ("http://127.0.0.1:10/other", "second", true)
    );
    assert!(changed.disabled_reason.is_none());
    let bad = EndpointChange { url: Some("ftp://x"), ..Default::default() };
    assert!(matches!(update_endpoint(&f.engine, &f.tenant.id, "test", &e.id, bad).await, Err(EngineError::Refused(_))));
    let long = "d".repeat(201);
    let bad = EndpointChange { description: Some(&long), ..Default::default() };
    assert!(matches!(update_endpoint(&f.engine, &f.tenant.id, "test", &e.id, bad).await, Err(EngineError::Refused(_))));
    let unknown = vec!["nope".to_owned()];
    let bad = EndpointChange { events: Some(&unknown), ..Default::default() };
    assert!(matches!(update_endpoint(&f.engine, &f.tenant.id, "test", &e.id, bad).await, Err(EngineError::Refused(_))));
    assert_eq!(f.audited("webhook_endpoint.updated").await, 2);
    delete_endpoint(&f.engine, &f.tenant.id, "test", &e.id).await.unwrap();
    assert!(f.engine.store.webhook_endpoint(&f.tenant.id, &e.id).await.is_err());
}

/// A rotation keeps the old secret signing for its grace period (a day
/// unless asked, at most a week).
#[tokio::test]
async fn a_rotation_keeps_the_old_secret_for_its_grace() {
    let f = fixture(Settings::default()).await;
    let (e, old) = f.endpoint(None, None).await.unwrap();
    let (new, until) = rotate_secret(&f.engine, &f.tenant.id, "test", &e.id, None).await.unwrap();
    assert_eq!(until, f.now() + time::Duration::seconds(i64::from(DEFAULT_ROTATION_GRACE_S)));
    let secrets = f.engine.store.webhook_secrets(&f.tenant.id, &e.id).await.unwrap();
    let context = secret_context(&e.id);
    assert_eq!(f.engine.sealer.open(&secrets.current, &context).unwrap().as_slice(), new.as_bytes());
    let (previous, previous_until) = secrets.previous.unwrap();
    assert_eq!(f.engine.sealer.open(&previous, &context).unwrap().as_slice(), old.as_bytes());
    assert_eq!(previous_until, until);
    let (_, until) = rotate_secret(&f.engine, &f.tenant.id, "test", &e.id, Some(604_800)).await.unwrap();
    assert_eq!(until, f.now() + time::Duration::weeks(1));
    let (_, until) = rotate_secret(&f.engine, &f.tenant.id, "test", &e.id, Some(0)).await.unwrap();
    assert_eq!(until, f.now());
    let too_long = rotate_secret(&f.engine, &f.tenant.id, "test", &e.id, Some(604_801)).await;
    assert!(matches!(too_long, Err(EngineError::Refused(_))));
    assert_eq!(f.audited("webhook_endpoint.secret_rotated").await, 3);
}

/// A test event is a queued `ping` for that endpoint alone, refused while
/// it is disabled and beyond the hourly limit.
#[tokio::test]
async fn test_events_are_queued_within_their_hourly_limit() {
    let f = fixture(Settings::default()).await;
    let (e, _) = f.endpoint(Some(&["verification.approved".to_owned()]), None).await.unwrap();
    let (other, _) = f.endpoint(None, None).await.unwrap();
    let ping = send_test_event(&f.engine, &f.tenant.id, &e.id).await.unwrap();
    assert_eq!(ping.event_type, EventType::Ping);
    let body: serde_json::Value = serde_json::from_str(ping.body()).unwrap();
    assert_eq!(body["data"]["endpoint_id"], e.id.as_str());
    let due = f.engine.store.claim_due_messages(f.now(), f.now() + time::Duration::minutes(1), 100).await.unwrap();
    let endpoints: Vec<_> = due.iter().map(|m| m.endpoint_id.clone()).collect();
    assert_eq!(endpoints, vec![e.id.clone()], "queued for that endpoint only, whatever its filter");
    for _ in 1..TEST_EVENTS_PER_HOUR {
        send_test_event(&f.engine, &f.tenant.id, &e.id).await.unwrap();
    }
    match send_test_event(&f.engine, &f.tenant.id, &e.id).await {
        Err(TestEventError::Limited { retry_after_s }) => assert!((1..=3600).contains(&retry_after_s)),
        other => panic!("{other:?}"),
    }
    assert!(send_test_event(&f.engine, &f.tenant.id, &other.id).await.is_ok(), "each endpoint has its own limit");
    let off = EndpointChange { enabled: Some(false), ..Default::default() };
    update_endpoint(&f.engine, &f.tenant.id, "test", &other.id, off).await.unwrap();
    assert!(matches!(send_test_event(&f.engine, &f.tenant.id, &other.id).await, Err(TestEventError::Disabled)));
}
