//! A test event queued on PostgreSQL in one statement: the endpoint read,
//! its hourly counter counted only while under the limit, the event and
//! its one message. As a transaction it was eight round trips (`BEGIN`,
//! the read, a savepoint, the count, its release, two inserts, `COMMIT`)
//! with a held connection through all of them, which bounded the events
//! the benchmark could queue while the dispatcher delivered them (about
//! 1,500/s). SQLite keeps the transaction (it has no data-modifying
//! `WITH`, and its writes cost no round trips).
//!
//! The rule is the transaction's: nothing is counted for a missing or
//! disabled endpoint, the counter's conditional upsert is the check (a
//! full counter changes nothing, whatever runs beside it), and the event
//! and its message exist exactly when the count did.

use time::OffsetDateTime;
use vouchsafe_core::clock::to_unix_ms;
use vouchsafe_core::event::Event;
use vouchsafe_core::fraud::SendCounter;
use vouchsafe_core::store::{StoreError, StoreResult, TestEventRefusal};

use super::fan_out;
use crate::tx::fetch;
use crate::verifications::fraud_refusal;
use crate::{SqlStore, map_err};

/// `$1` event id, `$2` at (Unix ms), `$3` tenant, `$4` event type, `$5`
/// endpoint, `$6` the event's body, `$7`–`$10` the counter's scope, key,
/// bucket and limit. Answers the endpoint's `enabled` (NULL when there is
/// none), whether the counter counted, and the messages queued.
const QUEUE_TEST_EVENT: &str = concat!(
    "WITH endpoint AS (SELECT enabled FROM webhook_endpoints WHERE tenant_id = $3 AND id = $5), \
     counted AS (INSERT INTO send_counters (tenant_id, scope, key, bucket, count) \
     SELECT $3, $7, $8, $9, 1 FROM endpoint WHERE enabled \
     ON CONFLICT (tenant_id, scope, key, bucket) DO UPDATE SET count = send_counters.count + 1 \
     WHERE send_counters.count < CAST($10 AS BIGINT) RETURNING 1), \
     event AS (INSERT INTO events (id, tenant_id, type, body, created_at) \
     SELECT $1, $3, $4, $6, $2 FROM counted RETURNING id), \
     messages AS (",
    fan_out!(to "$5"),
    " AND EXISTS (SELECT 1 FROM event) RETURNING 1) \
     SELECT (SELECT enabled FROM endpoint), (SELECT COUNT(*) FROM counted), (SELECT COUNT(*) FROM messages)"
);

impl SqlStore {
    /// PostgreSQL's [`vouchsafe_core::store::WebhookStore::queue_test_event`]:
    /// the same answers as the transaction SQLite runs.
    pub(super) async fn queue_test_event_in_one_statement(
        &self,
        counter: &SendCounter,
        event: &Event,
        endpoint: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Result<usize, TestEventRefusal>> {
        let input = (counter.clone(), event.clone(), endpoint.to_owned());
        let (enabled, counted, queued) = self
            .write_statement(input, |conn, (counter, event, endpoint)| {
                Box::pin(async move {
                    fetch!(
                        conn,
                        one(Option<bool>, i64, i64),
                        QUEUE_TEST_EVENT,
                        [
                            event.id.as_str(),
                            to_unix_ms(event.created_at),
                            event.tenant_id.as_str(),
                            event.event_type.as_str(),
                            endpoint.as_str(),
                            event.body(),
                            counter.scope,
                            counter.key.as_str(),
                            counter.bucket,
                            i64::from(counter.limit),
                        ]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        match (enabled, counted) {
            (None, _) => Err(StoreError::NotFound),
            (Some(false), _) => Ok(Err(TestEventRefusal::Disabled)),
            (Some(true), 0) => Ok(Err(TestEventRefusal::Limited(fraud_refusal(counter, now)))),
            (Some(true), _) => Ok(Ok(usize::try_from(queued).unwrap_or(usize::MAX))),
        }
    }
}

#[cfg(test)]
mod tests {
    /// A test event for one endpoint finds it by its key: as an `OR` of
    /// the fan-out's condition, SQLite read every endpoint of the tenant,
    /// by the tenant's index, to queue one message.
    #[tokio::test]
    async fn a_test_event_reads_its_one_endpoint_by_key() {
        let (_db, pool) = crate::testing::migrated_sqlite().await;
        let sql = concat!("EXPLAIN QUERY PLAN ", super::fan_out!(to "$4"));
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sql).bind("ev_1").bind(1_i64).bind("ten_a").bind("we_1").fetch_all(&pool).await.unwrap();
        let reads: Vec<&str> = plan.iter().map(|(.., detail)| detail.as_str()).collect();
        assert!(
            reads.iter().all(|d| !d.contains("webhook_endpoints") || d.contains("(id=?)")),
            "the endpoint is read by its key: {reads:#?}"
        );
        assert!(reads.iter().any(|d| d.contains("webhook_endpoints")), "the plan reads the endpoints: {reads:#?}");
    }
}
