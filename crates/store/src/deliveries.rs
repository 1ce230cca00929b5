//! Deliveries: what was handed to which provider and what became of it.
//! A failure's `delivery.failed` event is stored in the same transaction.

use async_trait::async_trait;
use vouchsafe_core::channel::Channel;
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::delivery::{Delivery, DeliveryResult, DeliveryStatus};
use vouchsafe_core::event::Event;
use vouchsafe_core::ids::{DeliveryId, TenantId, VerificationId};
use vouchsafe_core::store::{DeliveryStore, StoreError, StoreResult};

use crate::tx::{Tx, exec};
use crate::webhooks::insert_event;
use crate::{SqlStore, map_err, on_pool};

macro_rules! select_delivery {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, verification_id, channel, destination, country, status, result, provider, \
             provider_message_id, error, created_at, updated_at FROM deliveries ",
            $rest
        )
    };
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    tenant_id: String,
    verification_id: Option<String>,
    channel: String,
    destination: String,
    country: Option<String>,
    status: String,
    result: String,
    provider: Option<String>,
    provider_message_id: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;

    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Damaged(format!("delivery {} has an unreadable {what}", r.id));
        Ok(Delivery {
            channel: Channel::parse(&r.channel).ok_or_else(|| bad("channel"))?,
            status: DeliveryStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            result: DeliveryResult::parse(&r.result).ok_or_else(|| bad("result"))?,
            id: DeliveryId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            verification_id: r.verification_id.map(VerificationId::from_stored),
            to: r.destination,
            country: r.country,
            provider: r.provider,
            provider_message_id: r.provider_message_id,
            error: r.error,
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        })
    }
}

/// Inserts delivery `d` on `tx`.
async fn insert_delivery(tx: &mut Tx<'_>, d: &Delivery) -> Result<u64, sqlx::Error> {
    exec!(
        tx,
        "INSERT INTO deliveries (id, tenant_id, verification_id, channel, destination, country, status, \
         result, provider, provider_message_id, error, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        [
            d.id.as_str(),
            d.tenant_id.as_str(),
            d.verification_id.as_ref().map(VerificationId::as_str),
            d.channel.as_str(),
            &d.to,
            d.country.as_deref(),
            d.status.as_str(),
            d.result.as_str(),
            d.provider.as_deref(),
            d.provider_message_id.as_deref(),
            d.error.as_deref(),
            to_unix_ms(d.created_at),
            to_unix_ms(d.updated_at),
        ]
    )
}

#[async_trait]
impl DeliveryStore for SqlStore {
    async fn record_delivery(&self, d: &Delivery, event: Option<&Event>) -> StoreResult<()> {
        let Some(event) = event else {
            // A delivery alone is one statement: one round trip on PostgreSQL.
            return self
                .write_statement(d.clone(), |conn, d| Box::pin(async move { insert_delivery(conn, d).await.map(drop) }))
                .await
                .map_err(map_err);
        };
        self.write((d.clone(), event.clone()), |conn, (d, event)| {
            Box::pin(async move {
                insert_delivery(conn, d).await?;
                insert_event(conn, event, "").await?;
                Ok(())
            })
        })
        .await
        .map_err(map_err)
    }

    async fn delivery(&self, tenant: &TenantId, id: &DeliveryId) -> StoreResult<Delivery> {
        let sql = select_delivery!("WHERE tenant_id = $1 AND id = $2");
        let row: DeliveryRow = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).bind(id.as_str()).fetch_one(pool).await
        )
        .map_err(map_err)?;
        row.try_into()
    }

    async fn deliveries_of_verification(&self, tenant: &TenantId, id: &VerificationId) -> StoreResult<Vec<Delivery>> {
        let sql = select_delivery!("WHERE tenant_id = $1 AND verification_id = $2 ORDER BY created_at, id");
        let rows: Vec<DeliveryRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(sql).bind(tenant.as_str()).bind(id.as_str()).fetch_all(pool).await
        )
        .map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn delivery_for_callback(&self, id: &DeliveryId) -> StoreResult<Delivery> {
        let sql = select_delivery!("WHERE id = $1");
        let row: DeliveryRow = on_pool!(self.db(), pool => sqlx::query_as(sql).bind(id.as_str()).fetch_one(pool).await)
            .map_err(map_err)?;
        row.try_into()
    }

    async fn record_receipt(&self, d: &Delivery, event: Option<&Event>) -> StoreResult<bool> {
        self.write((d.clone(), event.cloned()), |conn, (d, event)| {
            Box::pin(async move {
                // Only a delivery still waiting for its receipt moves: a late
                // or replayed callback changes nothing and emits nothing.
                let moved = exec!(
                    conn,
                    "UPDATE deliveries SET status = $1, error = $2, updated_at = $3 \
                     WHERE tenant_id = $4 AND id = $5 AND status = 'sent'",
                    [
                        d.status.as_str(),
                        d.error.as_deref(),
                        to_unix_ms(d.updated_at),
                        d.tenant_id.as_str(),
                        d.id.as_str()
                    ]
                )? == 1;
                if moved && let Some(event) = event {
                    insert_event(conn, event, "").await?;
                }
                Ok(moved)
            })
        })
        .await
        .map_err(map_err)
    }
}
