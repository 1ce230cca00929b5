//! The webhook receiver of `webhook_receiver.py` as a child process: a real
//! HTTP server on loopback that verifies signatures with the official
//! `standardwebhooks` Python package. Shared by the API and CLI tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/support/webhook_receiver.py");

pub struct Receiver {
    child: Child,
    pub port: u16,
    pub url: String,
    client: reqwest::Client,
}

impl Receiver {
    /// On a free port.
    pub fn start() -> Receiver {
        Self::start_on(0)
    }

    pub fn start_on(port: u16) -> Receiver {
        let mut child = Command::new("python3")
            .args([SCRIPT, &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed (.ci/run installs it with standardwebhooks)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("receiver did not start (is standardwebhooks installed?): {line:?}"));
        Receiver { child, port, url: format!("http://127.0.0.1:{port}/hook"), client: reqwest::Client::new() }
    }

    /// `{"secret", "fail_first", "failure_status", "status", "delay_ms"}`.
    pub async fn configure(&self, settings: Value) {
        let url = format!("http://127.0.0.1:{}/configure", self.port);
        assert!(self.client.post(url).json(&settings).send().await.unwrap().status().is_success());
    }

    pub async fn received(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/received", self.port);
        self.client.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received().await;
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
