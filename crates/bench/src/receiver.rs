//! A bare HTTP/1.1 receiver on loopback that answers every request `204`:
//! the cheapest possible far end, so what is measured is vouchsafe. It
//! counts requests (webhook deliveries) and keeps the `to` → `code` pairs
//! of JSON bodies (codes sent through an `http` provider), so the load can
//! check right codes. Webhook deliveries can be held at a gate (counted
//! as they arrive, answered once it opens), so a backlog builds up in the
//! outbox and its drain can be timed on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Received {
    pub count: AtomicUsize,
    /// Of those, the requests to a path under `/hook` (webhook deliveries).
    hooks: AtomicUsize,
    codes: Mutex<HashMap<String, String>>,
    /// Open (`true`) unless webhook deliveries are being held.
    gate: tokio::sync::watch::Sender<bool>,
}

impl Default for Received {
    fn default() -> Self {
        Self {
            count: AtomicUsize::new(0),
            hooks: AtomicUsize::new(0),
            codes: Mutex::default(),
            gate: tokio::sync::watch::Sender::new(true),
        }
    }
}

impl Received {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Requests to a path under `/hook`: the webhook deliveries.
    pub fn hooks(&self) -> usize {
        self.hooks.load(Ordering::Relaxed)
    }

    /// Holds webhook deliveries (`open == false`) or lets them, and those
    /// held, be answered.
    pub fn set_gate(&self, open: bool) {
        self.gate.send_replace(open);
    }

    /// Waits until webhook deliveries may be answered.
    async fn gate_open(&self) {
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
    }

    /// The last code sent to `to`.
    pub fn code_for(&self, to: &str) -> Option<String> {
        self.codes.lock().ok()?.get(to).cloned()
    }

    /// Counts a request whose head (lower case) is `head`, and keeps the
    /// code of one that is not a webhook delivery (a delivery's body is
    /// not read: parsing it would take CPU from the server, which shares
    /// the machine); answers whether it is a webhook delivery.
    pub(crate) fn record(&self, head: &str, body: &[u8]) -> bool {
        self.count.fetch_add(1, Ordering::Relaxed);
        let hook = head.split(' ').nth(1).is_some_and(|path| path.starts_with("/hook"));
        if hook {
            self.hooks.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if let Ok(Sent { to, code }) = serde_json::from_slice::<Sent>(body)
            && let Ok(mut codes) = self.codes.lock()
        {
            codes.insert(to, code);
        }
        false
    }
}

/// A code the `http` provider sent (the body of [`sms_provider`]'s template).
#[derive(serde::Deserialize)]
struct Sent {
    to: String,
    code: String,
}

/// The body of `PUT /v1/providers/{name}` for an `http` provider that
/// sends SMS to the receiver on `port` as `{"to", "code"}`, first in line.
pub fn sms_provider(port: u16) -> serde_json::Value {
    serde_json::json!({"type": "http", "channels": ["sms"], "priority": 1,
        "settings": {"url": format!("http://127.0.0.1:{port}/sms"),
                     "body_template": "{\"to\": \"{to}\", \"code\": \"{code}\"}"}})
}

/// Starts the receiver; returns its port.
pub async fn start() -> anyhow::Result<(u16, Arc<Received>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let received = Arc::new(Received::default());
    let shared = received.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let received = shared.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending = Vec::new();
                loop {
                    let Ok(n) = conn.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    // One response per complete request (headers + content-length body).
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if pending.len() < end + 4 + len {
                            break;
                        }
                        if received.record(&head, &pending[end + 4..end + 4 + len]) {
                            received.gate_open().await;
                        }
                        pending.drain(..end + 4 + len);
                        if conn.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok((port, received))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_code_is_kept_and_a_webhook_delivery_is_only_counted() {
        let received = Received::default();
        assert!(!received.record("post /sms http/1.1", br#"{"to": "+4915300000001", "code": "123456"}"#));
        assert!(received.record("post /hook/3 http/1.1", br#"{"to": "+4915300000002", "code": "654321"}"#));
        assert_eq!((received.count(), received.hooks()), (2, 1));
        assert_eq!(received.code_for("+4915300000001").as_deref(), Some("123456"));
        assert_eq!(received.code_for("+4915300000002"), None, "a delivery's body is not read");
    }
}
