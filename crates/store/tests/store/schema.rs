//! The SQLite and PostgreSQL migrations describe the same schema: the same
//! tables, the same columns with the same nullability, the same named
//! indexes (unique or not). Column types are each engine's own spelling
//! and are not compared. Needs PostgreSQL whichever `TEST_DB` is set
//! (`bash .ci/postgres.sh` starts one; `scripts/test.sh` does).

use std::collections::BTreeMap;

use vouchsafe_store::DatabaseUrl;
use vouchsafe_store::testing::{connect, fresh_database_on};

/// Table → (columns as `name NULL|NOT NULL`, indexes as `name [unique]`).
type Schema = BTreeMap<String, (Vec<String>, Vec<String>)>;

/// The engine's own bookkeeping, not ours.
fn ours(table: &str) -> bool {
    !table.starts_with("_sqlx") && !table.starts_with("sqlite_")
}

fn sqlite_schema(path: &std::path::Path) -> Schema {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut schema = Schema::new();
    for table in tables.into_iter().filter(|t| ours(t)) {
        let mut columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap()
            .query_map([], |r| {
                let (name, not_null, pk): (String, bool, i64) = (r.get(1)?, r.get(3)?, r.get(5)?);
                // SQLite lets a primary key column hold NULL unless told.
                Ok(format!("{name} {}", if not_null || pk > 0 { "NOT NULL" } else { "NULL" }))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        columns.sort();
        let mut indexes: Vec<String> = conn
            .prepare(&format!("PRAGMA index_list({table})"))
            .unwrap()
            .query_map([], |r| {
                let (name, unique): (String, bool) = (r.get(1)?, r.get(2)?);
                Ok((name, unique))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("sqlite_autoindex"))
            .map(|(name, unique)| if unique { format!("{name} unique") } else { name })
            .collect();
        indexes.sort();
        schema.insert(table, (columns, indexes));
    }
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // Named indexes only: primary keys and UNIQUE constraints are the
    // engine's (`…_pkey`, `…_key`), as SQLite's autoindexes are.
    let indexes: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, x.indisunique FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut schema = Schema::new();
    for (table, column, nullable) in columns.into_iter().filter(|(t, ..)| ours(t)) {
        let null = if nullable == "YES" { "NULL" } else { "NOT NULL" };
        schema.entry(table).or_default().0.push(format!("{column} {null}"));
    }
    for (table, index, unique) in indexes.into_iter().filter(|(t, ..)| ours(t)) {
        schema.entry(table).or_default().1.push(if unique { format!("{index} unique") } else { index });
    }
    for (columns, indexes) in schema.values_mut() {
        columns.sort();
        indexes.sort();
    }
    schema
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_describe_the_same_schema() {
    let sqlite = fresh_database_on(false).await.unwrap();
    connect(&sqlite).await.unwrap().migrate().await.unwrap();
    let DatabaseUrl::Sqlite { path, .. } = &sqlite.url else { panic!("a SQLite database") };
    let postgres = fresh_database_on(true).await.unwrap();
    connect(&postgres).await.unwrap().migrate().await.unwrap();
    let (lite, pg) = (sqlite_schema(path), postgres_schema(&postgres.url_text).await);
    assert!(lite.len() > 10, "{lite:?}");
    let tables = |s: &Schema| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(tables(&lite), tables(&pg), "the same tables");
    for (table, (columns, indexes)) in &lite {
        assert_eq!(columns, &pg[table].0, "columns of {table}");
        assert_eq!(indexes, &pg[table].1, "indexes of {table}");
    }
}
