//! PostgreSQL: the tables the request path updates keep room in their
//! pages (migration 0017), so an update of a row packed in by a bulk load
//! (a million users imported) stays on the row's page, a heap-only tuple
//! that adds no index entry, instead of moving to another page and adding
//! an entry to every index. Needs PostgreSQL whichever `TEST_DB` is set,
//! as the schema test does.

use sqlx::PgPool;
use vouchsafe_store::testing::{connect, fresh_database_on};

/// The tables updated on the request path, and the most of each page a
/// bulk load may fill.
const UPDATED_PER_REQUEST: [(&str, u32); 6] = [
    ("verifications", 80),
    ("challenges", 80),
    ("deliveries", 90),
    ("users", 90),
    ("authenticators", 90),
    ("user_failures", 80),
];

async fn migrated_postgres() -> PgPool {
    let db = fresh_database_on(true).await.unwrap();
    connect(&db).await.unwrap().migrate().await.unwrap();
    PgPool::connect(&db.url_text).await.unwrap()
}

/// Each row's page: the block number of its `ctid`, by id.
async fn pages_of_users(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT id, (ctid::text::point)[0]::bigint FROM users ORDER BY id").fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn locks_set_on_imported_users_leave_each_user_on_its_page() {
    let pool = migrated_postgres().await;
    sqlx::query(
        "INSERT INTO tenants (id, name, account_sid, default_service_id, created_at) VALUES ('t', 't', 'AC1', 's', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Packed as an import packs them: one statement, page after page.
    sqlx::query(
        "INSERT INTO users (tenant_id, id, phone, email, display_name, privileged, locked_until, \
         created_at, updated_at) \
         SELECT 't', 'user-' || lpad(n::text, 5, '0'), NULL, NULL, NULL, FALSE, 0, 0, 0 \
         FROM generate_series(1, 3000) AS n",
    )
    .execute(&pool)
    .await
    .unwrap();
    let before = pages_of_users(&pool).await;
    assert!(before.iter().map(|(_, page)| page).max() > Some(&10), "the users fill many pages");
    // A lock for every twentieth user (about five on each page), each
    // committed on its own, as the answers that set them are. Few enough
    // that the room holds their new versions without pruning the old
    // ones, which a snapshot held anywhere in the cluster could put off.
    let locked: Vec<_> = before.iter().step_by(20).collect();
    for (id, _) in &locked {
        sqlx::query("UPDATE users SET locked_until = 2, updated_at = 1 WHERE tenant_id = 't' AND id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    let after = pages_of_users(&pool).await;
    let moved = before.iter().zip(&after).filter(|((_, was), (_, is))| was != is).count();
    // At 100% (PostgreSQL's default) at least the first locked user of
    // each packed page moved, adding an entry to the users' index.
    assert_eq!(moved, 0, "{moved} of {} locked users moved to another page", locked.len());
}

#[tokio::test]
async fn every_table_updated_per_request_leaves_room_in_its_pages() {
    let pool = migrated_postgres().await;
    for (table, most) in UPDATED_PER_REQUEST {
        let options: (Option<Vec<String>>,) = sqlx::query_as("SELECT reloptions FROM pg_class WHERE relname = $1")
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(options.0, Some(vec![format!("fillfactor={most}")]), "{table}");
    }
}
