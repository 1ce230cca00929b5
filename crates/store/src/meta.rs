//! Health and the master-key check value.

use async_trait::async_trait;
use vouchsafe_core::store::{MetaStore, StoreResult};

use crate::{SqlStore, map_err, on_pool};

const KEY_CHECK: &str = "master_key_check";

#[async_trait]
impl MetaStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        on_pool!(self.db(), pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ())).map_err(map_err)?;
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
        on_pool!(self.db(), pool =>
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(KEY_CHECK)
                .bind(value)
                .execute(pool)
                .await
                .map(|_| ())
        )
        .map_err(map_err)?;
        Ok(())
    }
}
