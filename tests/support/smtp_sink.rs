//! The SMTP server of `smtp_sink.py` as a child process: a real SMTP
//! server (aiosmtpd) on loopback whose received messages the test reads.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/support/smtp_sink.py");

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    messages: Arc<Mutex<Vec<Value>>>,
}

impl SmtpSink {
    /// Requiring AUTH with `credentials` when given.
    pub fn start(credentials: Option<(&str, &str)>) -> SmtpSink {
        let mut command = Command::new("python3");
        command.arg(SCRIPT);
        if let Some((user, password)) = credentials {
            command.args([user, password]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed (.ci/run installs aiosmtpd)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let port: u16 = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SMTP sink did not start (is aiosmtpd installed?): {first:?}"));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        SmtpSink { child, port, messages }
    }

    /// The messages received so far.
    pub fn received(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let got = self.messages.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} emails arrived");
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
