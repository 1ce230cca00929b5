//! `spawn_app()`: a server of our own on 127.0.0.1:0 with a fresh database,
//! a tenant `default` and an admin key, plus a client that speaks to it.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use time::OffsetDateTime;
use vouchsafe_core::api_key::{SecretHasher, issue};
use vouchsafe_core::audit::{AuditEntry, AuditKey};
use vouchsafe_core::clock::ManualClock;
use vouchsafe_core::crypto::MasterKey;
use vouchsafe_core::role::Role;
use vouchsafe_core::settings::Settings;
use vouchsafe_core::store::{ApiKeyStore, TenantStore};
use vouchsafe_core::tenant::Tenant;

use vouchsafe_core::webhook::{DEFAULT_ENDPOINTS_PER_TENANT, RetrySchedule};
use vouchsafe_server::{Application, ConnectionLimits, ServerConfig, WebhookConfig};
use vouchsafe_store::SqlStore;
use vouchsafe_store::testing::{TestDatabase, fresh_database};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<SqlStore>,
    pub master: MasterKey,
    pub db: TestDatabase,
    pub clock: Arc<ManualClock>,
    pub tenant: Tenant,
    /// Secret of an admin key of `tenant`.
    pub admin: String,
    pub admin_key_id: String,
    pub config: ServerConfig,
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(true).await
}

/// A server whose outbound-address rule is on (`allow_private = false`) or off.
pub async fn spawn_app_with(allow_private: bool) -> TestApp {
    spawn(allow_private, false).await
}

/// A server whose public URL is `http://localhost:PORT`: a host name, as a
/// WebAuthn relying party needs (and a secure context for the browser).
pub async fn spawn_app_at_localhost() -> TestApp {
    spawn(true, true).await
}

/// A server with these connection limits (header-read timeout, cap).
pub async fn spawn_app_with_connections(connections: ConnectionLimits) -> TestApp {
    spawn_with(true, false, connections, DEFAULT_ENDPOINTS_PER_TENANT).await
}

/// A server that lets a tenant have at most `per_tenant` webhook endpoints.
pub async fn spawn_app_with_endpoint_limit(per_tenant: u32) -> TestApp {
    spawn_with(true, false, ConnectionLimits::default(), per_tenant).await
}

async fn spawn(allow_private: bool, localhost: bool) -> TestApp {
    spawn_with(allow_private, localhost, ConnectionLimits::default(), DEFAULT_ENDPOINTS_PER_TENANT).await
}

/// With `TEST_LOG` set (a filter such as `debug` or `vouchsafe_server=trace`),
/// the servers' logs are printed, so a 500 in a test shows its cause:
/// `TEST_LOG=debug cargo test -p vouchsafe-server --test api NAME -- --nocapture`.
fn log_if_asked() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

async fn spawn_with(
    allow_private: bool,
    localhost: bool,
    connections: ConnectionLimits,
    endpoints_per_tenant: u32,
) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    log_if_asked();
    let db = fresh_database().await.expect("test database");
    let store = Arc::new(SqlStore::connect(&db.url).await.unwrap());
    store.migrate().await.unwrap();
    let master = MasterKey::generate().unwrap();
    store.use_audit_key(AuditKey::new(&master)).unwrap();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let port =
        if localhost { std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port() } else { 0 };
    let config = ServerConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        public_url: localhost.then(|| format!("http://localhost:{port}")),
        allow_private_targets: allow_private,
        connections,
        webhooks: WebhookConfig {
            schedule: RetrySchedule::parse("0,5,60,300").unwrap(),
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(25),
            endpoints_per_tenant,
        },
    };
    let app = Application::build(config.clone(), store.clone(), clock.clone(), &master).await.unwrap();
    let addr: SocketAddr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    let tenant = create_tenant(&store, "default").await;
    let (admin, admin_key_id) = create_key(&store, &master, &tenant, Role::Admin).await;
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store,
        master,
        db,
        clock,
        tenant,
        admin,
        admin_key_id,
        config,
    }
}

/// A second server process on the same database (own pool, same master
/// key and clock), as a second node behind a load balancer; its base URL.
pub async fn spawn_second_node(app: &TestApp) -> String {
    let store = Arc::new(SqlStore::connect(&app.db.url).await.unwrap());
    store.use_audit_key(AuditKey::new(&app.master)).unwrap();
    let node = Application::build(app.config.clone(), store, app.clock.clone(), &app.master).await.unwrap();
    let base = format!("http://{}", node.local_addr());
    tokio::spawn(node.run_until(std::future::pending()));
    base
}

async fn create_tenant(store: &SqlStore, name: &str) -> Tenant {
    let (tenant, service) = Tenant::new(name, OffsetDateTime::now_utc()).unwrap();
    let audit = AuditEntry::success("cli", "tenant.created", tenant.id.as_str(), tenant.created_at);
    store.create_tenant(&tenant, &service, &Settings::default(), &audit).await.unwrap();
    tenant
}

/// A new key, made the way `vouchsafe keys create` does; (secret, key id).
async fn create_key(store: &SqlStore, master: &MasterKey, tenant: &Tenant, role: Role) -> (String, String) {
    let (new, secret) = issue(&tenant.id, role, "test", &SecretHasher::new(master), OffsetDateTime::now_utc()).unwrap();
    let audit = AuditEntry::success("cli", "api_key.created", new.key.id.as_str(), new.key.created_at);
    store.create_api_key(&new, &audit).await.unwrap();
    (secret.expose().to_owned(), new.key.id.to_string())
}

impl TestApp {
    /// Creates a tenant with one key of `role`; returns (tenant, secret, key id).
    pub async fn new_tenant(&self, name: &str, role: Role) -> (Tenant, String, String) {
        let tenant = create_tenant(&self.store, name).await;
        let (secret, key_id) = create_key(&self.store, &self.master, &tenant, role).await;
        (tenant, secret, key_id)
    }

    /// A new key of `role` for the main tenant.
    pub async fn key(&self, role: Role) -> String {
        create_key(&self.store, &self.master, &self.tenant, role).await.0
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional Bearer secret and JSON body.
    pub async fn call(&self, method: Method, path: &str, secret: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(secret) = secret {
            req = req.bearer_auth(secret);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, secret: &str) -> Reply {
        self.call(Method::GET, path, Some(secret), None).await
    }

    pub async fn post(&self, path: &str, secret: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(secret), Some(body)).await
    }

    pub async fn patch(&self, path: &str, secret: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(secret), Some(body)).await
    }

    pub async fn put(&self, path: &str, secret: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(secret), Some(body)).await
    }

    pub async fn delete(&self, path: &str, secret: &str) -> Reply {
        self.call(Method::DELETE, path, Some(secret), None).await
    }
}

impl TestApp {
    /// Runs a `SELECT COUNT(*) …` directly against the test database.
    pub async fn count_rows(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.db.url {
            vouchsafe_store::DatabaseUrl::Sqlite { path, .. } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
            vouchsafe_store::DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
        }
    }

    /// The event bodies of `event_type`, oldest first, read directly from
    /// the test database.
    pub async fn event_bodies(&self, event_type: &str) -> Vec<Value> {
        let sql = "SELECT body FROM events WHERE type = $1 ORDER BY created_at, id";
        let rows: Vec<(String,)> = match &self.db.url {
            vouchsafe_store::DatabaseUrl::Sqlite { path, .. } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                let rows = sqlx::query_as(sql).bind(event_type).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            }
            vouchsafe_store::DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let rows = sqlx::query_as(sql).bind(event_type).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            }
        };
        rows.into_iter().map(|(body,)| serde_json::from_str(&body).unwrap()).collect()
    }

    /// Runs one SQL statement directly against the test database, behind
    /// the server's back (to tamper with stored rows).
    pub async fn execute_sql(&self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.db.url {
            vouchsafe_store::DatabaseUrl::Sqlite { path, .. } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                let n = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
                pool.close().await;
                n
            }
            vouchsafe_store::DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let n = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
                pool.close().await;
                n
            }
        }
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, body, text }
}

/// Runs `python3 -c script args…` and answers what it printed, trimmed.
/// The script needs `package` from PyPI; a missing interpreter or package
/// fails the test saying so (`scripts/test.sh` installs both), never
/// answers an empty string.
pub fn python(package: &str, script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is missing ({e}); scripts/test.sh installs it, with {package}"));
    assert!(
        out.status.success(),
        "python3 with {package} failed (scripts/test.sh installs {package} with pip): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!printed.is_empty(), "python3 with {package} printed nothing");
    printed
}

/// A TOTP code as `pyotp` (not our code) makes it, at Unix time `unix`.
pub fn pyotp(secret: &str, unix: i64) -> String {
    python("pyotp", &format!("import pyotp; print(pyotp.TOTP('{secret}').at({unix}))"), &[])
}

/// A code of the same length that is certainly not `code`.
pub fn wrong(code: &str) -> String {
    let flipped = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{flipped}{}", &code[1..])
}

/// The value of one Prometheus series in `/metrics` text (0 when absent).
/// Counters are process-wide and tests run side by side, so a test reads a
/// series before and after what it does and asserts on the difference.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

impl TestApp {
    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.call(reqwest::Method::GET, "/metrics", None, None).await.text
    }
}
