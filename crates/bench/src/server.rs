//! The server under test: the real release binary, started by
//! `vouchsafe init` and `vouchsafe serve` on a fresh database (a SQLite file
//! in a temp folder, or a new PostgreSQL database), killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;

/// Which database the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn label(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// A child process killed (and reaped) when dropped, however the
/// benchmark ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running server; killed when dropped.
pub struct Server {
    child: KillOnDrop,
    /// How durable the database's commits are: PostgreSQL's settings read
    /// back from the server, SQLite's as vouchsafe always opens it.
    pub durability: String,
    pub base: String,
    addr: std::net::SocketAddr,
    pub secret: String,
    pub ready_ms: f64,
    bin: std::path::PathBuf,
    database_url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// Creates a webhook endpoint (every event) posting to `url`; its id.
    pub async fn create_webhook_endpoint(&self, url: &str) -> anyhow::Result<String> {
        let created = reqwest::Client::new()
            .post(format!("{}/v1/webhook-endpoints", self.base))
            .bearer_auth(&self.secret)
            .json(&serde_json::json!({ "url": url }))
            .send()
            .await?;
        if !created.status().is_success() {
            bail!("could not create a webhook endpoint: {}", created.text().await?);
        }
        let created: serde_json::Value = created.json().await?;
        Ok(created["id"].as_str().with_context(|| format!("no endpoint id in {created}"))?.to_owned())
    }

    /// Deletes webhook endpoint `id`, so later rows do not fan out to it.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> anyhow::Result<()> {
        let deleted = reqwest::Client::new()
            .delete(format!("{}/v1/webhook-endpoints/{id}", self.base))
            .bearer_auth(&self.secret)
            .send()
            .await?;
        if !deleted.status().is_success() {
            bail!("could not delete webhook endpoint {id}: {}", deleted.text().await?);
        }
        Ok(())
    }

    /// A one-shot `vouchsafe` command on the server's database and key.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command.current_dir(self.dir.path()).env("VOUCHSAFE_DATABASE_URL", &self.database_url).args(args);
        command
    }

    /// Where the load generator sends its requests.
    pub fn target(&self) -> crate::load::Target {
        crate::load::Target { addr: self.addr, pid: Some(self.child.0.id()) }
    }

    /// The server's working folder (scratch files may go there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One memory figure of the server from `/proc/PID/status`, in MiB.
    fn status_mib(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).ok()?;
        let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Resident memory of the server now (Linux VmRSS), in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        self.status_mib("VmRSS")
    }

    /// Peak resident memory of the server so far (Linux VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.status_mib("VmHWM")
    }

    /// Resident memory now, split into anonymous (the heap) and file-backed
    /// (the binary, mostly), in MiB.
    pub fn rss_split_mib(&self) -> Option<(f64, f64)> {
        Some((self.status_mib("RssAnon")?, self.status_mib("RssFile")?))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A database URL for a fresh database of `engine`, and how durable its
/// commits are (PostgreSQL's settings are read from the server, since a
/// test instance may run with them off).
async fn fresh_database(engine: Engine, dir: &Path, postgres_url: &str) -> anyhow::Result<(String, String)> {
    match engine {
        Engine::Sqlite => {
            Ok((format!("sqlite://{}", dir.join("bench.db").display()), "synchronous=FULL, WAL".to_owned()))
        }
        Engine::Postgres => {
            let name = format!("vouchsafe_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(postgres_url).await.with_context(|| {
                format!("cannot reach PostgreSQL at {postgres_url} (bash .ci/postgres.sh starts one)")
            })?;
            // Earlier runs' databases (a million users each), this name's
            // among them, are dropped unless another run is using one: left
            // behind, they filled the disk and kept autovacuum busy under
            // the rows measured here.
            let earlier: Vec<(String,)> = sqlx::query_as(
                "SELECT datname FROM pg_database WHERE datname LIKE 'vouchsafe\\_bench\\_%' \
                 AND datname NOT IN (SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)",
            )
            .fetch_all(&mut admin)
            .await?;
            for (earlier,) in earlier {
                let drop = format!("DROP DATABASE IF EXISTS \"{}\"", earlier.replace('"', "\"\""));
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await {
                    eprintln!("  could not drop an earlier run's database {earlier}: {e}");
                }
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
            let mut durability = Vec::new();
            for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
                let (value,): (String,) =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("SHOW {setting}"))).fetch_one(&mut admin).await?;
                durability.push(format!("{setting}={value}"));
            }
            let (base, _) = postgres_url.rsplit_once('/').context("the PostgreSQL URL names no database")?;
            Ok((format!("{base}/{name}"), durability.join(", ")))
        }
    }
}

/// Creates a fresh database, runs `init`, starts `serve` and waits for
/// `/healthz`, timing start-up from process spawn to the first `200`. The
/// server's log goes to the end of `log`, if named.
pub async fn start(bin: &Path, engine: Engine, postgres_url: &str, log: Option<&Path>) -> anyhow::Result<Server> {
    let bin =
        std::fs::canonicalize(bin).with_context(|| format!("{} not found; cargo build --release", bin.display()))?;
    let dir = tempfile::tempdir()?;
    let (database_url, durability) = fresh_database(engine, dir.path(), postgres_url).await?;
    let init = Command::new(&bin)
        .current_dir(dir.path())
        .env("VOUCHSAFE_DATABASE_URL", &database_url)
        .args(["init", "--json"])
        .output()?;
    if !init.status.success() {
        bail!("vouchsafe init failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let secret = serde_json::from_slice::<serde_json::Value>(&init.stdout)?["secret"]
        .as_str()
        .context("init printed no secret")?
        .to_owned();

    let stderr = match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the server log {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let spawned = Instant::now();
    let child = Command::new(&bin)
        .current_dir(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("VOUCHSAFE_DATABASE_URL", &database_url)
        .env("VOUCHSAFE_LOG", "warn")
        // The benchmark's receivers run on loopback.
        .env("VOUCHSAFE_ALLOW_PRIVATE_TARGETS", "true")
        // The webhook row spreads its test events (60 per endpoint per
        // hour) over 200 endpoints of one tenant.
        .env("VOUCHSAFE_WEBHOOK_ENDPOINTS_PER_TENANT", "200")
        // The webhook row's backlog is built while the receiver holds the
        // deliveries in flight. Held past the attempt timeout (10 s by
        // default), they would fail and wait out the retry schedule, so on
        // a slow spell, when queueing the backlog took longer than that,
        // the drain timed the schedule too. The longest timeout allowed
        // keeps a hold a hold; a receiver that answers is not affected.
        .env("VOUCHSAFE_WEBHOOK_TIMEOUT_S", "120")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?;
    let mut server = Server {
        child: KillOnDrop(child),
        durability,
        base,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        secret,
        ready_ms: 0.0,
        bin,
        database_url,
        dir,
    };
    server.ready_ms = loop {
        if client.get(format!("{}/healthz", server.base)).send().await.is_ok_and(|r| r.status().is_success()) {
            break spawned.elapsed().as_secs_f64() * 1000.0;
        }
        if spawned.elapsed() > Duration::from_secs(30) {
            bail!("the server did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    Ok(server)
}
