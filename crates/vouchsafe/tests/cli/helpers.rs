//! Running the binary: one-shot commands, and `serve` as a child process
//! whose JSON log lines are collected as they come.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use vouchsafe_store::testing::{TestDatabase, fresh_database};

pub const BIN: &str = env!("CARGO_BIN_EXE_vouchsafe");

/// A working folder and a fresh database for one test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub db: TestDatabase,
}

pub async fn workspace() -> Workspace {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Workspace { dir: tempfile::tempdir().unwrap(), db: fresh_database().await.unwrap() }
}

impl Workspace {
    /// A command in the working folder, on the test database, with no
    /// VOUCHSAFE_* variables inherited from the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path()).args(args).args(["--database-url", &self.db.url_text]);
        for (name, _) in std::env::vars() {
            if name.starts_with("VOUCHSAFE_") {
                cmd.env_remove(name);
            }
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed and print JSON.
    pub fn run_json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out:?}"))
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `statements` on the database behind the server's back, as an
    /// attacker with write access to it would.
    pub async fn execute_sql(&self, statements: &[String]) {
        match &self.db.url {
            vouchsafe_store::DatabaseUrl::Sqlite { path, .. } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                for sql in statements {
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&pool).await.unwrap();
                }
                pool.close().await;
            }
            vouchsafe_store::DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                for sql in statements {
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&pool).await.unwrap();
                }
                pool.close().await;
            }
        }
    }
}

/// `vouchsafe serve` running as a child process.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
    /// The thread copying the server's stderr into `log`, until the pipe closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `serve` on a free port with JSON logs at `log_level` and
    /// waits until it says it is ready.
    pub fn start(ws: &Workspace, log_level: &str) -> Server {
        Self::start_with(ws, &[], &[("VOUCHSAFE_LOG", log_level)])
    }

    /// Like [`Server::start`], with more flags and environment variables.
    pub fn start_with(ws: &Workspace, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut command = ws.command(&["serve", "--listen", "127.0.0.1:0"]);
        command.args(args).env("VOUCHSAFE_LOG_FORMAT", "json").env("VOUCHSAFE_LOG", "info").envs(envs.iter().copied());
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Logged before announcing readiness, so the ready line is in
                // the log by the time the test reads it.
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "vouchsafe is ready"
                {
                    let _ = ready_tx.send(v["fields"]["listen"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        let listen = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve never became ready; log:\n{}", log.lock().unwrap()));
        Server { child, base: format!("http://{listen}"), log, reader: Some(reader) }
    }

    /// `GET {path}` with a bearer key; the JSON answer, whatever its status.
    pub async fn get_json(&self, secret: &str, path: &str) -> Value {
        let reply =
            reqwest::Client::new().get(format!("{}{path}", self.base)).bearer_auth(secret).send().await.unwrap();
        reply.json().await.unwrap_or(Value::Null)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Stops the server (SIGTERM) and returns its whole log, every line
    /// it wrote read once it has exited.
    pub fn stop(&mut self) -> String {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10)).expect("the server must exit after SIGTERM");
        self.log()
    }

    /// Waits for the process to exit; `None` if it did not within `limit`.
    /// Once it has, the log holds every line it wrote: the lines still in
    /// the pipe when it exited are read before this returns.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    reader.join().unwrap();
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unix permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
