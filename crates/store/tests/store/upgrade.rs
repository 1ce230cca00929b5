//! Upgrading a database made by an earlier version: its rows arrive in the
//! schema the current statements read. Each test migrates a fresh database
//! up to the last migration before a change of layout, writes rows the way
//! that version's statements did, then runs every migration as `serve`
//! does and reads them back through the store.

use time::OffsetDateTime;
use vouchsafe_core::ids::TenantId;
use vouchsafe_core::store::{Lockout, UserStore};
use vouchsafe_store::DatabaseUrl;
use vouchsafe_store::testing::{TestDatabase, connect, fresh_database};

const T0: i64 = 1_700_000_000;

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0 + s).unwrap()
}

fn ms(s: i64) -> i64 {
    (T0 + s) * 1_000
}

/// Applies the migrations up to and including `version`, and then runs
/// `rows` (statements of that version's schema, `$1`-free) on the result.
async fn migrated_to(db: &TestDatabase, version: i64, rows: &[String]) {
    match &db.url {
        DatabaseUrl::Sqlite { path, .. } => {
            let file = sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(file).await.unwrap();
            sqlx::migrate!("./migrations/sqlite").run_to(version, &pool).await.unwrap();
            for sql in rows {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::migrate!("./migrations/postgres").run_to(version, &pool).await.unwrap();
            for sql in rows {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }
}

/// Migration 0021 moved `users.failures` into `user_failures`: a user's
/// count and lock survive the upgrade, the lockout reads the old count,
/// and a user with none gets no row.
#[tokio::test]
async fn failure_counts_and_locks_survive_the_move_to_their_own_table() {
    let db = fresh_database().await.unwrap();
    let user = |id: &str, failures: i64, locked_until: i64| {
        format!(
            "INSERT INTO users (tenant_id, id, phone, email, display_name, privileged, failures, \
             locked_until, created_at, updated_at) \
             VALUES ('ten_old', '{id}', NULL, NULL, NULL, FALSE, {failures}, {locked_until}, {c}, {u})",
            c = ms(0),
            u = ms(5),
        )
    };
    let rows = [
        format!(
            "INSERT INTO tenants (id, name, account_sid, default_service_id, created_at) \
             VALUES ('ten_old', 'old', 'AC0123456789abcdef0123456789abcdef', 'VA0', {})",
            ms(0)
        ),
        user("counting", 3, 0),
        user("locked", 5, ms(900)),
        user("clean", 0, 0),
    ];
    migrated_to(&db, 20, &rows).await;

    let store = connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let tenant = TenantId::from_stored("ten_old".into());

    let counting = store.user(&tenant, "counting").await.unwrap();
    assert_eq!((counting.failures, counting.locked_until), (3, None), "the count moved, no lock appeared");
    assert_eq!(counting.updated_at, at(5), "the user's row kept its time");
    let locked = store.user(&tenant, "locked").await.unwrap();
    assert_eq!((locked.failures, locked.locked_until), (5, Some(at(900))), "the lock and its count stayed");
    assert!(locked.is_locked(at(10)));
    let clean = store.user(&tenant, "clean").await.unwrap();
    assert_eq!((clean.failures, clean.locked_until), (0, None));

    let held = count_rows(&db, "SELECT COUNT(*) FROM user_failures").await;
    assert_eq!(held, 2, "only users with failures have a row");

    // The old count is the one the lockout reads: three failures do not
    // reach a threshold of 4, and do reach one of 3.
    let lockout = |threshold| Lockout {
        threshold,
        lock_until: at(1_000),
        tenant: tenant.clone(),
        user: "counting".into(),
        challenge: None,
        actor: "key_test".into(),
        at: at(20),
    };
    assert_eq!(store.settle_wrong_user_answer(&lockout(4)).await.unwrap(), None);
    assert_eq!(store.settle_wrong_user_answer(&lockout(3)).await.unwrap(), Some(at(1_000)));
    let after = store.user(&tenant, "counting").await.unwrap();
    assert_eq!((after.failures, after.locked_until), (3, Some(at(1_000))));
}

async fn count_rows(db: &TestDatabase, sql: &str) -> i64 {
    match &db.url {
        DatabaseUrl::Sqlite { path, .. } => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }
}
