//! Issue 16, item 17: one tenant cannot stall every tenant's webhooks. A
//! tenant floods test events to endpoints that accept the connection and
//! never answer; another tenant's event still arrives while those attempts
//! hang, the flood never holds more than its share of attempts at once,
//! and test events are limited per endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use vouchsafe_core::role::Role;
use vouchsafe_core::webhook::{IN_FLIGHT_PER_TENANT, TEST_EVENTS_PER_HOUR};

use crate::helpers::spawn_app;
use crate::receiver::Receiver;

/// A listener that accepts connections and never answers; counts those
/// open now and the most open at once.
struct Hang {
    port: u16,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

async fn hang() -> Hang {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, p) = (open.clone(), peak.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                // Read the request and never answer, until the client gives up.
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Hang { port, open, peak }
}

#[tokio::test]
async fn a_flood_to_dead_endpoints_does_not_delay_another_tenants_event() {
    let app = spawn_app().await;
    let dead = hang().await;
    let (_, flooder, _) = app.new_tenant("flooder", Role::Admin).await;
    let mut endpoints = Vec::new();
    for i in 0..4 {
        let url = format!("http://127.0.0.1:{}/hook{i}", dead.port);
        let created = app.post("/v1/webhook-endpoints", &flooder, json!({"url": url})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        endpoints.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let floods = endpoints.iter().flat_map(|id| std::iter::repeat_n(id.clone(), 40)).map(|id| {
        let path = format!("/v1/webhook-endpoints/{id}/test");
        let app = &app;
        let flooder = flooder.clone();
        async move { app.call(Method::POST, &path, Some(&flooder), None).await.status }
    });
    let statuses = futures::future::join_all(floods).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED), "{statuses:?}");
    // Wait until the flood's attempts hang.
    for _ in 0..400 {
        if dead.open.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let receiver = Receiver::start();
    let created = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": receiver.url})).await;
    receiver.configure(json!({"secret": created.body["secret"]})).await;
    let id = created.body["id"].as_str().unwrap();
    let sent = Instant::now();
    let reply = app.call(Method::POST, &format!("/v1/webhook-endpoints/{id}/test"), Some(&app.admin), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let waited = sent.elapsed();
    let hanging = dead.open.load(Ordering::SeqCst);
    assert_eq!(got.len(), 1, "the quiet tenant's event arrived");
    assert_eq!(got[0]["verified"], true, "{got:?}");
    // Causal, not a stopwatch: it arrived while the flood's attempts were
    // still hanging (they end only at the 5 s attempt timeout).
    assert!(hanging > 0, "delivered while {hanging} flood attempts hang");
    println!("quiet tenant's event delivered after {waited:?} while {hanging} flood attempts hung");
    let peak = dead.peak.load(Ordering::SeqCst);
    assert!(peak as i64 <= IN_FLIGHT_PER_TENANT, "the flood held {peak} attempts at once");
    println!("peak flood attempts in flight: {peak}");
}

#[tokio::test]
async fn test_events_are_limited_per_endpoint() {
    let app = spawn_app().await;
    let dead = hang().await;
    let url = format!("http://127.0.0.1:{}/hook", dead.port);
    let created = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": url})).await;
    let path = format!("/v1/webhook-endpoints/{}/test", created.body["id"].as_str().unwrap());
    for n in 0..TEST_EVENTS_PER_HOUR {
        let reply = app.call(Method::POST, &path, Some(&app.admin), None).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "test event {n}: {}", reply.text);
    }
    let refused = app.call(Method::POST, &path, Some(&app.admin), None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    assert!(refused.headers.get("retry-after").is_some());
    let events = app.count_rows("SELECT COUNT(*) FROM events WHERE type = 'ping'").await;
    assert_eq!(events, i64::from(TEST_EVENTS_PER_HOUR), "the refused one queued nothing");
}
