//! API-key secrets exist only in the response that created them: not in
//! the database (in clear), not in later responses.

use serde_json::json;
use sqlx::Row;
use vouchsafe_store::DatabaseUrl;

use crate::helpers::{TestApp, spawn_app};

/// Everything the database holds, as text: the SQLite file and its WAL
/// byte for byte, or every row of every PostgreSQL table.
pub async fn database_contents(app: &TestApp) -> String {
    match &app.db.url {
        DatabaseUrl::Sqlite { path, .. } => {
            let mut bytes = std::fs::read(path).unwrap();
            let wal = path.with_extension("db-wal");
            if let Ok(more) = std::fs::read(&wal) {
                bytes.extend(more);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let tables = sqlx::query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_all(&pool)
                .await
                .unwrap();
            let mut out = String::new();
            for table in tables {
                let name: String = table.get(0);
                let sql = format!("SELECT CAST(t AS TEXT) FROM \"{name}\" t");
                for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap() {
                    out.push_str(&row.get::<String, _>(0));
                    out.push('\n');
                }
            }
            pool.close().await;
            out
        }
    }
}

#[tokio::test]
async fn api_key_secrets_are_never_stored_or_shown_again() {
    let app = spawn_app().await;
    let mut secrets = vec![app.admin.clone()];
    for role in ["admin", "agent", "webhook"] {
        let created = app.post("/v1/api-keys", &app.admin, json!({"role": role})).await;
        secrets.push(created.body["secret"].as_str().unwrap().to_owned());
    }
    let contents = database_contents(&app).await;
    assert!(contents.contains(app.tenant.id.as_str()), "the dump must see the data at all");
    let later = [
        app.get("/v1/api-keys", &app.admin).await.text,
        app.get("/v1/tenant", &app.admin).await.text,
        app.get("/v1/settings", &app.admin).await.text,
    ];
    for secret in &secrets {
        // The random part alone must not appear either (hashes are hex).
        let random = &secret[4..];
        assert!(!contents.contains(random), "an API-key secret is in the database in clear");
        for text in &later {
            assert!(!text.contains(random), "an API-key secret was shown again");
        }
    }
}
