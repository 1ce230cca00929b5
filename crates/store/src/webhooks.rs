//! Webhook endpoints and the outbox. Events are stored with one message
//! per interested endpoint ([`insert_event`], usable inside any change's
//! transaction); dispatchers on any number of nodes claim due messages with
//! one conditional `UPDATE … RETURNING` that sets a lease, and finish them
//! only while that lease is still theirs.

use async_trait::async_trait;
use time::OffsetDateTime;
use vouchsafe_core::audit::{AuditEntry, AuditKey};
use vouchsafe_core::clock::{from_unix_ms, to_unix_ms};
use vouchsafe_core::event::{Event, EventType};
use vouchsafe_core::fraud::SendCounter;
use vouchsafe_core::ids::{AttemptId, EventId, MessageId, TenantId, WebhookEndpointId};
use vouchsafe_core::store::{
    Attempt, DueMessage, Finished, MessageOutcome, SealedSecrets, StoreError, StoreResult, TestEventRefusal,
    WebhookStore,
};
use vouchsafe_core::webhook::{EventFilter, IN_FLIGHT_PER_ENDPOINT, IN_FLIGHT_PER_TENANT, WebhookEndpoint};

use crate::audit::append_audit;
use crate::sqlite_reads::row;
use crate::tenants::{Counted, before_counting};
use crate::tx::{Tx, TxFuture, exec, fetch};
use crate::verifications::count_sends_or_refuse;
use crate::{SqlStore, map_err, on_pool, one_row};

mod claim;
mod test_event;

/// Stores `event` and fans it out to the tenant's enabled endpoints whose
/// filter takes it (all of them, or only `only` when not empty), inside
/// the open transaction `tx`. Answers the number of messages queued.
pub(crate) async fn insert_event(tx: &mut Tx<'_>, event: &Event, only: &str) -> Result<u64, sqlx::Error> {
    let at = to_unix_ms(event.created_at);
    exec!(
        tx,
        "INSERT INTO events (id, tenant_id, type, body, created_at) VALUES ($1, $2, $3, $4, $5)",
        [event.id.as_str(), event.tenant_id.as_str(), event.event_type.as_str(), event.body(), at]
    )?;
    let (id, tenant) = (event.id.as_str(), event.tenant_id.as_str());
    match only {
        "" => exec!(tx, fan_out!(), [id, at, tenant, event.event_type.as_str()]),
        endpoint => exec!(tx, fan_out!(to "$4"), [id, at, tenant, endpoint]),
    }
}

/// The statement that queues event `$1` (tenant `$3`, at `$2`) for the
/// tenant's enabled endpoints: `fan_out!()` for those whose filter takes
/// type `$4`, `fan_out!(to "$N")` for the one endpoint `$N` whatever its
/// filter (a `test`). Its `WHERE` comes last, so a caller may add a
/// condition. The message id joins event and endpoint ids: unique per
/// pair, made in SQL so the fan-out is one statement.
///
/// The one endpoint is its own text, found by its key: as an `OR` of the
/// fan-out's condition, SQLite read the tenant's every endpoint (by the
/// tenant's index) to queue a test event for one of them.
macro_rules! fan_out {
    () => {
        $crate::webhooks::fan_out!(@where "(events = '*' OR events LIKE '%,' || $4 || ',%')")
    };
    (to $endpoint:literal) => {
        $crate::webhooks::fan_out!(@where "id = ", $endpoint)
    };
    (@where $($which:literal),+) => {
        concat!(
            "INSERT INTO webhook_messages (id, event_id, endpoint_id, tenant_id, status, attempts, \
             next_attempt_at, locked_until, created_at, updated_at) \
             SELECT $1 || '.' || id, $1, id, tenant_id, 'pending', 0, $2, 0, $2, $2 FROM webhook_endpoints \
             WHERE tenant_id = $3 AND enabled = TRUE AND ",
            $($which),+
        )
    };
}
pub(crate) use fan_out;

/// What a one-statement approval on PostgreSQL writes after its `approved`
/// CTE, each only if that CTE returned a row: the event (`$1` id, `$2` at,
/// `$3` tenant, `$4` type, `$8` body) with its messages ([`fan_out!`]; `$5`
/// is not read) and the audit entry (`$9` at, `$10` actor, `$11` action,
/// `$12` target, `$13` outcome). Three CTEs, `event`, `messages` and
/// `audit`: the caller ends the CTE before them with a comma, and its
/// final `SELECT` follows them directly.
macro_rules! approval_effects {
    () => {
        concat!(
            "event AS (INSERT INTO events (id, tenant_id, type, body, created_at) \
             SELECT $1, $3, $4, $8, $2 FROM approved RETURNING id), \
             messages AS (",
            $crate::webhooks::fan_out!(),
            " AND EXISTS (SELECT 1 FROM event)), \
             audit AS (INSERT INTO audit_pending (tenant_id, at, actor, action, target, outcome) \
             SELECT $3, $9, $10, $11, $12, $13 FROM approved) "
        )
    };
}
pub(crate) use approval_effects;

macro_rules! select_endpoint {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, url, description, events, enabled, disabled_reason, created_at, updated_at \
             FROM webhook_endpoints ",
            $rest
        )
    };
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    tenant_id: String,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(r: EndpointRow) -> Self {
        WebhookEndpoint {
            id: WebhookEndpointId::from_stored(r.id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            url: r.url,
            description: r.description,
            events: EventFilter::from_stored(&r.events),
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            created_at: from_unix_ms(r.created_at),
            updated_at: from_unix_ms(r.updated_at),
        }
    }
}

row! {
    /// A claimed message with what sending it needs.
    struct DueRow {
        id: String,
        event_id: String,
        event_type: String,
        tenant_id: String,
        endpoint_id: String,
        url: String,
        body: String,
        attempts: i64,
        locked_until: i64,
        secret: Vec<u8>,
        previous_secret: Option<Vec<u8>>,
        previous_secret_expires_at: Option<i64>,
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: String,
    message_id: String,
    tenant_id: String,
    endpoint_id: String,
    event_id: String,
    event_type: String,
    attempt: i64,
    at: i64,
    status_code: Option<i64>,
    latency_ms: i64,
    error: Option<String>,
    outcome: String,
}

impl From<AttemptRow> for Attempt {
    fn from(r: AttemptRow) -> Self {
        Attempt {
            id: AttemptId::from_stored(r.id),
            message_id: MessageId::from_stored(r.message_id),
            tenant_id: TenantId::from_stored(r.tenant_id),
            endpoint_id: WebhookEndpointId::from_stored(r.endpoint_id),
            event_id: EventId::from_stored(r.event_id),
            event_type: r.event_type,
            attempt: u32::try_from(r.attempt).unwrap_or(u32::MAX),
            at: from_unix_ms(r.at),
            status_code: r.status_code.and_then(|c| u16::try_from(c).ok()),
            latency_ms: u64::try_from(r.latency_ms).unwrap_or(0),
            error: r.error,
            outcome: r.outcome,
        }
    }
}

fn sealed(secret: Vec<u8>, previous: Option<Vec<u8>>, until: Option<i64>) -> SealedSecrets {
    SealedSecrets { current: secret, previous: previous.zip(until.map(from_unix_ms)) }
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_webhook_endpoint(
        &self,
        e: &WebhookEndpoint,
        sealed_secret: &[u8],
        audit: &AuditEntry,
        limit: u32,
    ) -> StoreResult<()> {
        let input = (e.clone(), sealed_secret.to_vec(), i64::from(limit));
        let created = self
            .write_audited(e.tenant_id.as_str(), audit, input, |conn, (e, sealed, limit)| {
                Box::pin(async move {
                    // SECURITY: the count and the insert see every creation
                    // that committed before.
                    before_counting(conn, Counted::Tenant(e.tenant_id.as_str())).await?;
                    exec!(
                        conn,
                        "INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, secret, \
                         previous_secret, previous_secret_expires_at, enabled, disabled_reason, created_at, \
                         updated_at) \
                         SELECT $1, $2, $3, $4, $5, $6, NULL, NULL, $7, NULL, $8, $9 \
                         WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $2) < $10",
                        [
                            e.id.as_str(),
                            e.tenant_id.as_str(),
                            &e.url,
                            &e.description,
                            e.events.to_stored(),
                            sealed,
                            e.enabled,
                            to_unix_ms(e.created_at),
                            to_unix_ms(e.updated_at),
                            *limit,
                        ]
                    )
                })
            })
            .await
            .map_err(map_err)?;
        // No row and no audit entry when the tenant is at its limit.
        if created == 0 {
            return Err(StoreError::LimitReached(
                "the tenant has as many webhook endpoints as it may; delete one first",
            ));
        }
        Ok(())
    }

    async fn webhook_endpoint(&self, tenant: &TenantId, id: &WebhookEndpointId) -> StoreResult<WebhookEndpoint> {
        let row: EndpointRow = on_pool!(self.db(), pool =>
            sqlx::query_as(select_endpoint!("WHERE tenant_id = $1 AND id = $2"))
                .bind(tenant.as_str())
                .bind(id.as_str())
                .fetch_one(pool)
                .await
        )
        .map_err(map_err)?;
        Ok(row.into())
    }

    async fn list_webhook_endpoints(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows: Vec<EndpointRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(select_endpoint!("WHERE tenant_id = $1 ORDER BY created_at, id"))
                .bind(tenant.as_str())
                .fetch_all(pool)
                .await
        )
        .map_err(map_err)?;
        Ok(rows.into_iter().map(WebhookEndpoint::from).collect())
    }

    async fn update_webhook_endpoint(&self, e: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        one_row(
            self.write_audited(e.tenant_id.as_str(), audit, e.clone(), |conn, e| {
                Box::pin(async move {
                    exec!(
                        conn,
                        "UPDATE webhook_endpoints SET url = $1, description = $2, events = $3, enabled = $4, \
                         disabled_reason = $5, updated_at = $6 WHERE tenant_id = $7 AND id = $8",
                        [
                            &e.url,
                            &e.description,
                            e.events.to_stored(),
                            e.enabled,
                            &e.disabled_reason,
                            to_unix_ms(e.updated_at),
                            e.tenant_id.as_str(),
                            e.id.as_str(),
                        ]
                    )
                })
            })
            .await,
            StoreError::NotFound,
        )
    }

    async fn delete_webhook_endpoint(
        &self,
        tenant: &TenantId,
        id: &WebhookEndpointId,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let deleted = self
            .write_audited(tenant.as_str(), audit, (tenant.clone(), id.clone()), |conn, (tenant, id)| {
                Box::pin(async move {
                    let deleted = exec!(
                        conn,
                        "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
                        [tenant.as_str(), id.as_str()]
                    )?;
                    if deleted == 1 {
                        exec!(conn, "DELETE FROM webhook_messages WHERE endpoint_id = $1", [id.as_str()])?;
                        exec!(conn, "DELETE FROM webhook_attempts WHERE endpoint_id = $1", [id.as_str()])?;
                    }
                    Ok(deleted)
                })
            })
            .await;
        one_row(deleted, StoreError::NotFound)
    }

    async fn webhook_secrets(&self, tenant: &TenantId, id: &WebhookEndpointId) -> StoreResult<SealedSecrets> {
        let (secret, previous, until): (Vec<u8>, Option<Vec<u8>>, Option<i64>) = on_pool!(self.db(), pool =>
            sqlx::query_as(
                "SELECT secret, previous_secret, previous_secret_expires_at FROM webhook_endpoints \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_one(pool)
            .await
        )
        .map_err(map_err)?;
        Ok(sealed(secret, previous, until))
    }

    async fn rotate_webhook_secret(
        &self,
        tenant: &TenantId,
        id: &WebhookEndpointId,
        sealed_secret: &[u8],
        previous_until: OffsetDateTime,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        one_row(
            self.write_audited(
                tenant.as_str(),
                audit,
                (to_unix_ms(previous_until), sealed_secret.to_vec(), to_unix_ms(audit.at), tenant.clone(), id.clone()),
                |conn, (until, sealed, at, tenant, id)| {
                    Box::pin(async move {
                        exec!(
                            conn,
                            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $1, \
                             secret = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5",
                            [*until, sealed, *at, tenant.as_str(), id.as_str()]
                        )
                    })
                },
            )
            .await,
            StoreError::NotFound,
        )
    }

    async fn enqueue_event(&self, event: &Event, only_endpoint: Option<&WebhookEndpointId>) -> StoreResult<usize> {
        let only = only_endpoint.map(|id| id.as_str().to_owned()).unwrap_or_default();
        let queued = self
            .write((event.clone(), only), |conn, (event, only)| Box::pin(insert_event(conn, event, only)))
            .await
            .map_err(map_err)?;
        Ok(usize::try_from(queued).unwrap_or(usize::MAX))
    }

    async fn queue_test_event(
        &self,
        counter: &SendCounter,
        event: &Event,
        endpoint: &WebhookEndpointId,
        now: OffsetDateTime,
    ) -> StoreResult<Result<usize, TestEventRefusal>> {
        if self.is_postgres() {
            return self.queue_test_event_in_one_statement(counter, event, endpoint.as_str(), now).await;
        }
        let input = (counter.clone(), event.clone(), endpoint.as_str().to_owned());
        let queued = self
            .write(input, move |conn, (counter, event, endpoint)| {
                Box::pin(async move {
                    let tenant = event.tenant_id.as_str();
                    let found = fetch!(
                        conn,
                        optional(bool,),
                        "SELECT enabled FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
                        [tenant, endpoint.as_str()]
                    )?;
                    match found {
                        None => return Ok(None),
                        Some((false,)) => return Ok(Some(Err(TestEventRefusal::Disabled))),
                        Some((true,)) => {}
                    }
                    if let Some(refusal) = count_sends_or_refuse(conn, std::slice::from_ref(counter), now).await? {
                        return Ok(Some(Err(TestEventRefusal::Limited(refusal))));
                    }
                    Ok(Some(Ok(insert_event(conn, event, endpoint).await?)))
                })
            })
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        Ok(queued.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    async fn claim_due_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<DueMessage>> {
        self.finish_and_claim(&[], now, lease_until, limit).await
    }

    async fn finish_messages(&self, finished: &[Finished]) -> StoreResult<()> {
        if finished.is_empty() {
            return Ok(());
        }
        let now = finished[0].attempt.at;
        self.finish_and_claim(finished, now, now, 0).await.map(|_| ())
    }

    async fn finish_and_claim(
        &self,
        finished: &[Finished],
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<DueMessage>> {
        let input = FinishThenClaim {
            // Only an outcome needs the audit key (a `410 Gone` is audited).
            key: if finished.is_empty() { None } else { Some(self.audit_key().map_err(map_err)?) },
            finished: finished.to_vec(),
            lease: to_unix_ms(lease_until),
            now: to_unix_ms(now),
            limit,
        };
        // Outcomes are written durably (a lost one would send its message
        // again). A claim alone need not wait for a flush: a lease matters
        // only through the attempt that follows it, whose outcome is
        // written durably after it (and so flushes it too, in PostgreSQL's
        // one WAL). A crash before then forgets the lease, and the message
        // is tried again, as it would be had the crash come after the attempt.
        let claimed = match finished.is_empty() {
            true => self.write_unflushed(input, finish_then_claim).await,
            false => self.write(input, finish_then_claim).await,
        }
        .map_err(map_err)?;
        claimed.into_iter().map(due_message).collect()
    }

    async fn webhook_attempts(
        &self,
        tenant: &TenantId,
        endpoint: &WebhookEndpointId,
        before: Option<&AttemptId>,
        limit: i64,
    ) -> StoreResult<Vec<Attempt>> {
        // Attempt ids are UUIDv7: ordering by id is ordering by time.
        let before = before.map(|id| id.as_str()).unwrap_or("wa_g");
        let rows: Vec<AttemptRow> = on_pool!(self.db(), pool =>
            sqlx::query_as(
                "SELECT id, message_id, tenant_id, endpoint_id, event_id, event_type, attempt, at, status_code, \
                 latency_ms, error, outcome FROM webhook_attempts \
                 WHERE tenant_id = $1 AND endpoint_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4",
            )
            .bind(tenant.as_str())
            .bind(endpoint.as_str())
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await
        )
        .map_err(map_err)?;
        Ok(rows.into_iter().map(Attempt::from).collect())
    }

    async fn outbox_depth(&self) -> StoreResult<i64> {
        let (n,): (i64,) = on_pool!(self.db(), pool =>
            // Endpoint by endpoint, from webhook_messages_endpoint_due: no
            // index is led by status (see migration 0018), and a count of
            // the whole outbox would read every message ever delivered.
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM((SELECT COUNT(*) FROM webhook_messages m \
                 WHERE m.endpoint_id = w.id AND m.status = 'pending')), 0) AS BIGINT) FROM webhook_endpoints w"
            )
            .fetch_one(pool)
            .await
        )
        .map_err(map_err)?;
        Ok(n)
    }
}

/// What [`finish_then_claim`] writes and claims.
struct FinishThenClaim {
    key: Option<AuditKey>,
    finished: Vec<Finished>,
    lease: i64,
    now: i64,
    limit: i64,
}

/// Writes the outcomes, which ends their leases, then claims up to `limit`
/// messages, inside `tx`: the slots those leases held can be taken by the
/// same write. Which messages, and why the claim reads so little: see
/// `claim`.
fn finish_then_claim<'c>(tx: &'c mut Tx<'_>, input: &'c FinishThenClaim) -> TxFuture<'c, Vec<DueRow>> {
    Box::pin(async move {
        if let Some(key) = &input.key {
            finish_all(tx, key, &input.finished).await?;
        }
        if input.limit <= 0 {
            return Ok(Vec::new());
        }
        let claim = match tx {
            Tx::Postgres(_) => claim::CLAIM_DUE_MESSAGES_POSTGRES,
            Tx::Writer(_) => claim::CLAIM_DUE_MESSAGES_SQLITE,
        };
        fetch!(
            tx,
            all DueRow,
            claim,
            [input.lease, input.now, input.limit, IN_FLIGHT_PER_ENDPOINT, IN_FLIGHT_PER_TENANT]
        )
    })
}

fn due_message(row: DueRow) -> StoreResult<DueMessage> {
    Ok(DueMessage {
        id: MessageId::from_stored(row.id),
        event_id: EventId::from_stored(row.event_id),
        event_type: EventType::parse(&row.event_type)
            .ok_or_else(|| StoreError::Damaged(format!("unknown event type {}", row.event_type)))?,
        tenant_id: TenantId::from_stored(row.tenant_id),
        endpoint_id: WebhookEndpointId::from_stored(row.endpoint_id),
        url: row.url,
        body: row.body,
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        lease: row.locked_until,
        secrets: sealed(row.secret, row.previous_secret, row.previous_secret_expires_at),
    })
}

/// Logs finished attempts and moves their messages on, inside `tx`. On
/// PostgreSQL the batch (but a `410 Gone`, which disables its endpoint
/// with an audit entry) is one statement over arrays, one round trip where
/// two per attempt were; on SQLite, in the writer's own process, the
/// statements run one attempt at a time.
///
/// Writing the same outcomes again changes nothing more: the dispatcher
/// writes them again after a write that failed, which may have committed
/// all the same (its answer lost with the connection). An attempt is
/// logged once by its id, a message moves on only while the lease the
/// outcome names is its lease, and an endpoint is disabled (and audited)
/// only while it is enabled.
async fn finish_all(tx: &mut Tx<'_>, key: &AuditKey, finished: &[Finished]) -> Result<(), sqlx::Error> {
    let (gone, rest): (Vec<&Finished>, Vec<&Finished>) =
        finished.iter().partition(|f| f.outcome == MessageOutcome::Gone);
    match tx {
        Tx::Postgres(c) if rest.len() > 1 => finish_batch_postgres(c.statement(), &rest).await?,
        _ => {
            for f in &rest {
                finish_message(tx, key, f).await?;
            }
        }
    }
    for f in gone {
        finish_message(tx, key, f).await?;
    }
    Ok(())
}

/// [`finish_message`]'s two statements for many attempts at once: the
/// attempts logged, and each message moved on while its lease is ours.
async fn finish_batch_postgres(conn: &mut sqlx::PgConnection, finished: &[&Finished]) -> Result<(), sqlx::Error> {
    let attempts: Vec<&Attempt> = finished.iter().map(|f| &f.attempt).collect();
    let text = |field: fn(&Attempt) -> &str| attempts.iter().map(|a| field(a).to_owned()).collect::<Vec<String>>();
    let moves: Vec<(&str, i64)> = finished.iter().map(|f| moved_to(f.outcome)).collect();
    sqlx::query(
        "WITH logged AS (INSERT INTO webhook_attempts (id, message_id, tenant_id, endpoint_id, event_id, event_type, \
         attempt, at, status_code, latency_ms, error, outcome) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[]) \
         ON CONFLICT (id) DO NOTHING) \
         UPDATE webhook_messages m SET status = u.status, next_attempt_at = u.next_at, locked_until = 0, \
         updated_at = u.at FROM UNNEST($13::text[], $14::bigint[], $8::bigint[], $2::text[], $15::bigint[]) \
         AS u (status, next_at, at, id, lease) WHERE m.id = u.id AND m.locked_until = u.lease",
    )
    .bind(text(|a| a.id.as_str()))
    .bind(text(|a| a.message_id.as_str()))
    .bind(text(|a| a.tenant_id.as_str()))
    .bind(text(|a| a.endpoint_id.as_str()))
    .bind(text(|a| a.event_id.as_str()))
    .bind(text(|a| &a.event_type))
    .bind(attempts.iter().map(|a| i64::from(a.attempt)).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|a| to_unix_ms(a.at)).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|a| a.status_code.map(i64::from)).collect::<Vec<Option<i64>>>())
    .bind(attempts.iter().map(|a| i64::try_from(a.latency_ms).unwrap_or(i64::MAX)).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|a| a.error.clone()).collect::<Vec<Option<String>>>())
    .bind(text(|a| &a.outcome))
    .bind(moves.iter().map(|(status, _)| (*status).to_owned()).collect::<Vec<String>>())
    .bind(moves.iter().map(|(_, next_at)| *next_at).collect::<Vec<i64>>())
    .bind(finished.iter().map(|f| f.message.lease).collect::<Vec<i64>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The status and next due time a message moves to after an attempt.
fn moved_to(outcome: MessageOutcome) -> (&'static str, i64) {
    match outcome {
        MessageOutcome::Delivered => ("delivered", 0),
        MessageOutcome::RetryAt(at) => ("pending", to_unix_ms(at)),
        MessageOutcome::Dead | MessageOutcome::Gone => ("dead", 0),
    }
}

/// Logs one finished attempt and moves its message on, inside `tx`; a
/// `410 Gone` disables the endpoint, with its audit entry.
async fn finish_message(tx: &mut Tx<'_>, key: &AuditKey, finished: &Finished) -> Result<(), sqlx::Error> {
    let Finished { message: m, outcome, attempt: a } = finished;
    let (status, next_at) = moved_to(*outcome);
    // The attempt happened, so it is logged even if the lease ran out
    // meanwhile; the message moves on only while the lease is ours. Once:
    // an outcome is written again after a write whose answer was lost
    // (see `finish_all`).
    exec!(
        tx,
        "INSERT INTO webhook_attempts (id, message_id, tenant_id, endpoint_id, event_id, event_type, \
         attempt, at, status_code, latency_ms, error, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
        [
            a.id.as_str(),
            a.message_id.as_str(),
            a.tenant_id.as_str(),
            a.endpoint_id.as_str(),
            a.event_id.as_str(),
            &a.event_type,
            i64::from(a.attempt),
            to_unix_ms(a.at),
            a.status_code.map(i64::from),
            i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
            &a.error,
            &a.outcome,
        ]
    )?;
    let moved = exec!(
        tx,
        "UPDATE webhook_messages SET status = $1, next_attempt_at = $2, locked_until = 0, updated_at = $3 \
         WHERE id = $4 AND locked_until = $5",
        [status, next_at, to_unix_ms(a.at), m.id.as_str(), m.lease]
    )?;
    if moved == 1 && *outcome == MessageOutcome::Gone {
        let disabled = exec!(
            tx,
            "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $1, updated_at = $2 \
             WHERE id = $3 AND enabled = TRUE",
            ["the endpoint answered 410 Gone", to_unix_ms(a.at), m.endpoint_id.as_str()]
        )?;
        if disabled == 1 {
            let entry =
                AuditEntry::new("dispatcher", "webhook_endpoint.disabled", m.endpoint_id.as_str(), "gone", a.at);
            append_audit(tx, key, m.tenant_id.as_str(), &entry).await?;
        }
    }
    Ok(())
}
