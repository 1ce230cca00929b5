//! Health and the master-key check value.

use async_trait::async_trait;
use vouchsafe_core::store::{MetaStore, StoreResult};

use crate::tx::{exec, fetch};
use crate::{Db, SqlStore, map_err, on_pool};

const KEY_CHECK: &str = "master_key_check";

#[async_trait]
impl MetaStore for SqlStore {
    /// Reads answer, and a write would be taken: on SQLite the writer
    /// thread runs an empty job too, since a dead writer fails every write
    /// while reads still answer.
    async fn ping(&self) -> StoreResult<()> {
        on_pool!(self.db(), pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ())).map_err(map_err)?;
        if let Db::Sqlite { .. } = self.db() {
            self.write((), |conn, ()| Box::pin(async move { fetch!(conn, one(i64,), "SELECT 1", []).map(|_| ()) }))
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn key_check(&self) -> StoreResult<Option<String>> {
        let value: Option<(String,)> = on_pool!(self.db(), pool =>
            sqlx::query_as("SELECT value FROM meta WHERE key = $1").bind(KEY_CHECK).fetch_optional(pool).await
        )
        .map_err(map_err)?;
        Ok(value.map(|(v,)| v))
    }

    async fn init_key_check(&self, value: &str) -> StoreResult<()> {
        self.write(value.to_owned(), |conn, value| {
            Box::pin(async move {
                exec!(
                    conn,
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    [KEY_CHECK, value.as_str()]
                )
            })
        })
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vouchsafe_core::store::MetaStore;

    use crate::{DatabaseUrl, SqlStore, SqliteSync};

    /// Readiness sees the writer: once the writer thread is gone (here a
    /// job panicked on it), `ping` fails although reads still answer.
    #[tokio::test]
    async fn a_dead_writer_fails_the_ping() {
        let dir = std::env::temp_dir().join(format!("vouchsafe-meta-ping-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = DatabaseUrl::Sqlite { path: dir.join("v.db"), sync: SqliteSync::Full };
        let store = SqlStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        let killed: Result<(), _> =
            store.write((), |_, ()| Box::pin(async move { panic!("the writer thread dies here") })).await;
        assert!(killed.is_err());
        assert!(store.key_check().await.is_ok(), "reads still answer");
        assert!(store.ping().await.is_err(), "but the store is not ready");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
