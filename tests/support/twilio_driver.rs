//! `twilio_driver.py` as a child process: the official `twilio` Python
//! SDK, one command at a time, against the test server's `/v2` surface.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/support/twilio_driver.py");

pub struct TwilioSdk {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl TwilioSdk {
    pub fn start(base: &str, account_sid: &str, secret: &str) -> TwilioSdk {
        let mut child = Command::new("python3")
            .args([SCRIPT, base, account_sid, secret])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with the twilio package (.ci/run installs it)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        TwilioSdk { _child: child, stdin, stdout }
    }

    /// Runs one command; `Ok(fields)` or `Err({"status","code","message"})`.
    pub async fn run(&mut self, command: Value) -> Result<Value, Value> {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).await.unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("driver said {line:?}"));
        match reply.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(reply["ok"].clone()),
        }
    }
}
