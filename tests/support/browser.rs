//! `node/browser_driver.js` as a child process: headless Chromium driven
//! by Playwright, one command at a time, for the page tests.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/support/node/browser_driver.js");

pub struct Browser {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    /// A fresh context (with Chrome's virtual authenticator unless
    /// `javascript` is false).
    pub async fn start(javascript: bool) -> Browser {
        let mut child = Command::new("node")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node with playwright-core, and /usr/bin/chromium (.ci/run installs them)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut browser = Browser { _child: child, stdin, stdout };
        browser.run(serde_json::json!({"op": "start", "javascript": javascript})).await;
        browser
    }

    /// Runs one command; panics with the driver's error.
    pub async fn run(&mut self, command: Value) -> Value {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).await.unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("browser driver said {line:?}"));
        match reply.get("error") {
            Some(e) => panic!("browser: {}", e.as_str().unwrap_or_default()),
            None => reply["ok"].clone(),
        }
    }
}
