//! `twilio_driver.py` (the official `twilio` Python SDK) or
//! `node/twilio_driver.js` (the official `twilio` npm package) as a child
//! process, one command at a time, against the test server's `/v2` surface.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/support/twilio_driver.py");
const NODE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/support/node/twilio_driver.js");

pub struct TwilioSdk {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl TwilioSdk {
    /// The Python SDK.
    pub fn start(base: &str, account_sid: &str, secret: &str) -> TwilioSdk {
        Self::spawn("python3", PYTHON, base, account_sid, secret)
    }

    /// The Node.js SDK (`npm install` in `tests/support/node`).
    pub fn node(base: &str, account_sid: &str, secret: &str) -> TwilioSdk {
        Self::spawn("node", NODE, base, account_sid, secret)
    }

    fn spawn(program: &str, script: &str, base: &str, account_sid: &str, secret: &str) -> TwilioSdk {
        let mut child = Command::new(program)
            .args([script, base, account_sid, secret])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} with the twilio package (.ci/run installs it): {e}"));
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
