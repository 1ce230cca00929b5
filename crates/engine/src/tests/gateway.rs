//! A message gateway on loopback for the engine's tests: a real HTTP/1.1
//! server that records each body it is sent (the `http` provider's JSON,
//! or Twilio's form) and answers `200 {"id": …, "sid": …}` (what both read
//! back as the message id), or `503` while told to fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Gateway {
    pub url: String,
    /// Scheme, host and port, for providers that build their own paths.
    pub base: String,
    bodies: Arc<Mutex<Vec<String>>>,
    failing: Arc<AtomicBool>,
}

impl Gateway {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let url = format!("{base}/send");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let (b, f) = (bodies.clone(), failing.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, b.clone(), f.clone()));
            }
        });
        Self { url, base, bodies, failing }
    }

    /// From now on every request is answered `503`.
    pub fn fail(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    /// The JSON bodies received, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.raw().iter().map(|b| serde_json::from_str(b).unwrap_or(Value::Null)).collect()
    }

    /// The bodies received as sent, in order.
    pub fn raw(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// The last message's body.
    pub fn last(&self) -> Value {
        self.bodies().last().cloned().expect("the gateway received a message")
    }

    /// The code of the last message.
    pub fn last_code(&self) -> String {
        self.last()["code"].as_str().unwrap().to_owned()
    }
}

/// Answers the requests of one connection (kept alive by the client).
async fn serve(mut stream: TcpStream, bodies: Arc<Mutex<Vec<String>>>, failing: Arc<AtomicBool>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
        buffer.drain(..end + 4 + length);
        let answer = if failing.load(Ordering::SeqCst) {
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_owned()
        } else {
            let n = {
                let mut list = bodies.lock().unwrap();
                list.push(body);
                list.len()
            };
            let reply = format!("{{\"id\":\"gw-{n}\",\"sid\":\"SMgw{n}\"}}");
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                reply.len()
            )
        };
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}
