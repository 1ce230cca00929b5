//! The outbound-address rule against hostile URL forms (issue 16, item 1):
//! every form is refused where a URL or host is saved (webhook endpoints,
//! each provider type's `url`/`base_url`, the SMTP host) and, planted in
//! the database behind the server's back (a row saved by an older
//! version), on every path that connects (ping, test, dispatch, provider
//! sends). A raw TCP listener on loopback proves that nothing connected.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

/// Counts every TCP connection made to it, on 127.0.0.1 and ::1.
struct Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let mut listeners = vec![listener];
        // The same port on ::1 too, where the machine has IPv6 loopback.
        match TcpListener::bind(("::1", port)) {
            Ok(v6) => listeners.push(v6),
            Err(e) => eprintln!("no IPv6 loopback listener ({e}); IPv6 forms are checked against 127.0.0.1 only"),
        }
        for listener in listeners {
            let counter = accepted.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                }
            });
        }
        Self { port, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Hostile URL forms; `P` is the listener's port. Each reaches loopback,
/// a private or special address, or carries credentials, as some parser
/// reads it.
fn hostile_urls(p: u16) -> Vec<String> {
    [
        "http://127.0.0.1:P\\@8.8.8.8/a",
        "http://127.0.0.1:P\\\\@8.8.8.8/a",
        "http://127.0.0.1:P/\\@8.8.8.8/",
        "http:\\\\127.0.0.1:P/",
        "http:/127.0.0.1:P/",
        "http:127.0.0.1:P/",
        "HTTP://127.0.0.1:P/",
        "http://127.0.0.1:P/",
        "http://127.0.0.1.:P/",
        "http://127.1:P/",
        "http://127.0.1:P/",
        "http://2130706433:P/",
        "http://0x7f000001:P/",
        "http://0x7f.0.0.1:P/",
        "http://0177.0.0.1:P/",
        "http://017700000001:P/",
        "http://0x7f.1:P/",
        "http://%31%32%37.0.0.1:P/",
        "http://127%2e0%2e0%2e1:P/",
        "http://１２７.０.０.１:P/",
        "http://127。0。0。1:P/",
        "http://0.0.0.0:P/",
        "http://0:P/",
        "http://localhost:P/",
        "http://LOCALHOST:P/",
        "http://localhost.:P/",
        "http://a.b.localhost:P/",
        "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:P/",
        "http://ip6-localhost:P/",
        "http://[::1]:P/",
        "http://[0:0:0:0:0:0:0:1]:P/",
        "http://[::ffff:127.0.0.1]:P/",
        "http://[::ffff:7f00:1]:P/",
        "http://[::127.0.0.1]:P/",
        "http://[64:ff9b::127.0.0.1]:P/",
        "http://[2002:7f00:1::]:P/",
        "http://[::]:P/",
        "http://[fe80::1%25lo]:P/",
        "http://user:secret@127.0.0.1:P/",
        "http://8.8.8.8@127.0.0.1:P/",
        "http://8.8.8.8:80@127.0.0.1:P/",
        "http://@127.0.0.1:P/",
        "http://user@8.8.8.8/",
        "http://127.0.0.1:P#@8.8.8.8/",
        "http://127.0.0.1:P?@8.8.8.8/",
        " http://127.0.0.1:P/",
        "http://127.0.0.1:P/\n",
        "http://127.0.0.1\t:P/",
        "http://10.0.0.1:8080\\@1.1.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://192.0.2.1/",
        "gopher://127.0.0.1:P/",
        "ftp://127.0.0.1:P/",
        "file:///etc/passwd",
        "ws://127.0.0.1:P/",
    ]
    .iter()
    .map(|u| u.replace('P', &p.to_string()))
    .collect()
}

/// SMTP host forms that reach loopback or are not plain host names.
const HOSTILE_SMTP_HOSTS: &[&str] = &[
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "localhost",
    "LOCALHOST.",
    "a.localhost",
    "[::1]",
    "::1",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "10.0.0.1",
    "169.254.169.254",
    "127.0.0.1:25",
    "user@127.0.0.1",
    "127.0.0.1\\@8.8.8.8",
    "mail.example.com/x",
    "ⓛocalhost",
    "",
];

/// The settings a provider type needs besides its URL.
fn base_settings(kind: &str) -> serde_json::Value {
    match kind {
        "http" => json!({"body_template": "{}"}),
        "twilio" => json!({"from": "+15005550006"}),
        _ => json!({}),
    }
}

async fn strict_app() -> TestApp {
    spawn_app_with(false).await
}

#[tokio::test]
async fn hostile_urls_are_refused_wherever_a_url_is_saved() {
    let app = strict_app().await;
    let listener = Listener::start();
    let urls = hostile_urls(listener.port);
    assert!(urls.len() >= 40);
    // An endpoint with a public address literal (no DNS needed) to patch.
    let saved = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": "https://8.8.8.8/hook"})).await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.text);
    let id = saved.body["id"].as_str().unwrap().to_owned();
    for url in &urls {
        let created = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": url})).await;
        assert_eq!(created.status, StatusCode::UNPROCESSABLE_ENTITY, "create {url:?}: {}", created.text);
        assert_eq!(created.body["error"]["field"], "url", "{url:?}");
        let patched = app.patch(&format!("/v1/webhook-endpoints/{id}"), &app.admin, json!({"url": url})).await;
        assert_eq!(patched.status, StatusCode::UNPROCESSABLE_ENTITY, "patch {url:?}: {}", patched.text);
        for (kind, field) in [("http", "url"), ("twilio", "base_url"), ("telesign", "base_url")] {
            let mut settings = base_settings(kind);
            settings[field] = json!(url);
            let reply = app.put("/v1/providers/p", &app.admin, json!({"type": kind, "settings": settings})).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{kind} {url:?}: {}", reply.text);
            assert_eq!(reply.body["error"]["field"], format!("settings.{field}"), "{kind} {url:?}");
        }
    }
    for host in HOSTILE_SMTP_HOSTS {
        let settings = json!({"host": host, "port": listener.port, "tls": "none", "from": "a@example.com"});
        let reply = app.put("/v1/providers/p", &app.admin, json!({"type": "smtp", "settings": settings})).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "smtp {host:?}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], "settings.host", "{host:?}");
    }
    let listed = app.get(&format!("/v1/webhook-endpoints/{id}"), &app.admin).await;
    assert_eq!(listed.body["url"], "https://8.8.8.8/hook", "a refused patch changes nothing");
    assert_eq!(app.get("/v1/providers", &app.admin).await.body["providers"].as_array().unwrap().len(), 1);
    assert_eq!(listener.connections(), 0);
}

/// Rows saved before the rule was tightened still connect nowhere inward.
#[tokio::test]
async fn planted_hostile_urls_connect_nowhere_when_used() {
    let app = strict_app().await;
    let listener = Listener::start();
    let urls: Vec<String> =
        hostile_urls(listener.port).into_iter().filter(|u| u.contains(&listener.port.to_string())).collect();

    // Webhooks: ping and test on every planted URL, and the outbox's dispatch.
    let saved = app.post("/v1/webhook-endpoints", &app.admin, json!({"url": "https://8.8.8.8/hook"})).await;
    let id = saved.body["id"].as_str().unwrap().to_owned();
    for url in &urls {
        let planted = app
            .execute_sql(&format!("UPDATE webhook_endpoints SET url = '{}' WHERE id = '{id}'", url.replace('\'', "''")))
            .await;
        assert_eq!(planted, 1);
        let ping = app.post(&format!("/v1/webhook-endpoints/{id}/ping"), &app.admin, json!({})).await;
        assert_eq!(ping.status, StatusCode::OK, "{url:?}: {}", ping.text);
        assert_eq!(ping.body["healthy"], false, "{url:?}");
        assert!(ping.body["status_code"].is_null(), "{url:?}: {}", ping.text);
        let test = app.post(&format!("/v1/webhook-endpoints/{id}/test"), &app.admin, json!({})).await;
        assert!(test.status.is_success() || test.status == StatusCode::TOO_MANY_REQUESTS, "{url:?}: {}", test.text);
        // Give the dispatcher (polling every 25 ms) time to try it.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    // Providers: one of each type per planted URL, tried in turn by failover,
    // six URLs at a time (a tenant has at most 20 providers).
    app.delete("/v1/providers/console", &app.admin).await;
    app.put("/v1/credentials/basic", &app.admin, json!({"type": "basic", "username": "AC1", "password": "pw"})).await;
    for (chunk, some) in urls.chunks(6).enumerate() {
        let mut names = Vec::new();
        for (n, url) in some.iter().enumerate() {
            for (kind, field) in [("http", "url"), ("twilio", "base_url"), ("telesign", "base_url")] {
                let name = format!("{kind}-{chunk}-{n}");
                let mut settings = base_settings(kind);
                settings["timeout_ms"] = json!(500);
                settings[field] = json!("https://8.8.8.8/x");
                let reply = app
                    .put(
                        &format!("/v1/providers/{name}"),
                        &app.admin,
                        json!({"type": kind, "channels": ["sms"], "credential": "basic", "settings": settings}),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                settings[field] = json!(url);
                let planted = app
                    .execute_sql(&format!(
                        "UPDATE providers SET settings = '{}' WHERE name = '{name}'",
                        settings.to_string().replace('\'', "''")
                    ))
                    .await;
                assert_eq!(planted, 1);
                names.push(name);
            }
        }
        // A number per chunk: each one's send limit is its own.
        let to = format!("+4474009000{chunk:02}");
        let sms = app.post("/v1/verifications", &app.admin, json!({"to": to, "channel": "sms"})).await;
        assert_eq!(sms.status, StatusCode::BAD_GATEWAY, "{}", sms.text);
        let delivery =
            app.post("/v1/deliveries", &app.admin, json!({"to": to, "channel": "sms", "code": "482913"})).await;
        assert_eq!(delivery.body["result"], "PROVIDER_ERROR", "{}", delivery.text);
        for name in names {
            assert_eq!(app.delete(&format!("/v1/providers/{name}"), &app.admin).await.status, StatusCode::NO_CONTENT);
        }
    }
    let mut smtp_hosts: Vec<&str> = HOSTILE_SMTP_HOSTS.to_vec();
    smtp_hosts.retain(|h| !h.is_empty());
    for (n, host) in smtp_hosts.iter().enumerate() {
        let name = format!("smtp-{n}");
        let mut settings = json!({"host": "8.8.4.4", "port": listener.port, "tls": "none",
            "from": "a@example.com", "timeout_ms": 500});
        let reply =
            app.put(&format!("/v1/providers/{name}"), &app.admin, json!({"type": "smtp", "settings": settings})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        settings["host"] = json!(host);
        let planted = app
            .execute_sql(&format!(
                "UPDATE providers SET settings = '{}' WHERE name = '{name}'",
                settings.to_string().replace('\'', "''")
            ))
            .await;
        assert_eq!(planted, 1, "{host:?}");
    }
    let email = app.post("/v1/verifications", &app.admin, json!({"to": "jane@example.com", "channel": "email"})).await;
    assert_eq!(email.status, StatusCode::BAD_GATEWAY, "{}", email.text);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listener.connections(), 0, "something connected to loopback");
}
