//! The statement that claims due webhook messages: one conditional
//! `UPDATE … RETURNING` that picks the messages the fair shares allow,
//! leases them, and returns each with its event and endpoint, on both
//! engines. Parameters: `$1` the lease's end, `$2` now, `$3` how many at
//! most, `$4` an endpoint's share ([`IN_FLIGHT_PER_ENDPOINT`]), `$5` a
//! tenant's ([`IN_FLIGHT_PER_TENANT`]).
//!
//! Which messages (the rule): leased messages are attempts in flight. An
//! endpoint's unleased due messages, earliest first, get slots after its
//! leases, up to its share; a tenant's candidates take turns by slot (every
//! endpoint's first, then every second, …), up to its share less its
//! leases; tenants interleave by turn, so a flood or a dead endpoint of one
//! tenant cannot push another's messages back.
//!
//! How little it reads (the cost): a claim runs whenever an attempt ends,
//! so its work must not grow with the backlog or the share.
//! - `leases` reads the attempts in flight once, from
//!   `webhook_messages_leased`, which holds leased messages only and serves
//!   only a statement that says `locked_until > 0` (migration 0018: led by
//!   status, it served PostgreSQL's per-endpoint reads whenever statistics
//!   said few messages were pending, and each read every pending message).
//!   It is materialized so that SQLite reads it through that index, not
//!   through a scan of the due index in `endpoint_id` order for the
//!   `GROUP BY`; `busy_endpoints` and `busy_tenants` count it.
//! - `glance` counts each enabled endpoint's due messages, leased or not,
//!   up to two, from the index (`webhook_messages_endpoint_due`, migration
//!   0013); endpoints of a tenant at its share are skipped, so a claim
//!   while it is full reads next to nothing. Counts capped at two give
//!   every tenant's supply exactly at slots 1 and 2, which is all a tenant
//!   whose endpoints fan out needs (the next bullet). Only for a tenant
//!   they leave `short` of what it may take does `endpoints` count on, up
//!   to the endpoint's share, and only where the glance reached its cap.
//!   A tenant that is not short takes all its turns at slots 1 and 2, so
//!   an endpoint's count capped there can hide only slots it cannot take.
//!   With 200 endpoints and 50 messages each, that read 400 index entries
//!   where counting to 16 read 3,200, each with its visit to the table
//!   (`bench/RESULTS.md`).
//! - `level` is the lowest slot by which every tenant has as many
//!   candidates as it may take (`$3`, or its share less its leases): turns
//!   go by slot first, so no message in a later slot can be taken. Under
//!   fan-out to many endpoints that is slot 1, and each endpoint gives one
//!   candidate instead of its share. Counting by level is cheap: endpoints
//!   are grouped by (tenant, leases, due) before the levels are summed.
//! - `cutoffs` finds the due time of each endpoint's `level`-th due message,
//!   and `ranked` reads only messages up to it, by index, endpoint by
//!   endpoint. `CROSS JOIN` and `+m.locked_until` keep SQLite from reading
//!   them through another index instead; on PostgreSQL, a `LATERAL`
//!   subquery per cutoff keeps the order whatever the planner estimates
//!   (the one place the engines' texts differ).
//! - The `UPDATE` finds the chosen rows by id; its repeated claim condition
//!   is one expression so SQLite does not drive it from an index over
//!   pending messages either.
//!
//! Concurrency: the `UPDATE`'s `WHERE` repeats the claim condition, so when
//! two nodes pick the same rows, the second one's `UPDATE` finds them leased
//! (PostgreSQL re-checks locked rows) and skips them.
//!
//! One round trip: the event and the endpoint come from correlated lookups
//! in `RETURNING` (both engines allow them), not one read per message.
//!
//! [`IN_FLIGHT_PER_ENDPOINT`]: vouchsafe_core::webhook::IN_FLIGHT_PER_ENDPOINT
//! [`IN_FLIGHT_PER_TENANT`]: vouchsafe_core::webhook::IN_FLIGHT_PER_TENANT

/// How many of endpoint `$endpoint`'s messages are due, leased or not,
/// counted from the due index up to `$limit`.
macro_rules! due_count {
    ($endpoint:literal, $($limit:tt)+) => {
        concat!(
            "(SELECT COUNT(*) FROM (SELECT 1 FROM webhook_messages x WHERE x.endpoint_id = ",
            $endpoint,
            " AND x.status = 'pending' AND x.next_attempt_at <= $2 ORDER BY x.next_attempt_at LIMIT ",
            $($limit)+,
            ") d)"
        )
    };
}

/// Where `glance` stops counting: two, or the endpoint's share if less.
macro_rules! glance_cap {
    () => {
        "CASE WHEN $4 < 2 THEN $4 ELSE 2 END"
    };
}

/// What a tenant may take in this claim: `$3`, or its share less its
/// leases (`bt.n`, from `busy_tenants`) if that is less.
macro_rules! tenant_may_take {
    () => {
        "CASE WHEN $3 < $5 - COALESCE(bt.n, 0) THEN $3 ELSE $5 - COALESCE(bt.n, 0) END"
    };
}

/// The claim with `ranked`, the reading of each endpoint's messages up to
/// its cutoff, as each engine's planner must be told it.
macro_rules! claim_due_messages {
    ($ranked:literal) => {
        concat!(
            "\
WITH RECURSIVE levels (k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM levels WHERE k < $4), \
leases AS MATERIALIZED (SELECT endpoint_id, tenant_id FROM webhook_messages \
 WHERE status = 'pending' AND locked_until > 0 AND locked_until >= $2), \
busy_endpoints AS (SELECT endpoint_id, COUNT(*) AS n FROM leases GROUP BY endpoint_id), \
busy_tenants AS (SELECT tenant_id, COUNT(*) AS n FROM leases GROUP BY tenant_id), \
glance AS MATERIALIZED (SELECT w.id AS endpoint_id, w.tenant_id, COALESCE(be.n, 0) AS busy, ",
            due_count!("w.id", glance_cap!()),
            " AS due \
 FROM webhook_endpoints w LEFT JOIN busy_endpoints be ON be.endpoint_id = w.id WHERE w.enabled = TRUE \
 AND w.tenant_id NOT IN (SELECT tenant_id FROM busy_tenants WHERE n >= $5)), \
short AS (SELECT g.tenant_id FROM glance g LEFT JOIN busy_tenants bt ON bt.tenant_id = g.tenant_id \
 GROUP BY g.tenant_id, bt.n HAVING SUM(CASE WHEN g.due > g.busy THEN g.due - g.busy ELSE 0 END) < ",
            tenant_may_take!(),
            "), \
endpoints AS MATERIALIZED (SELECT g.endpoint_id, g.tenant_id, g.busy, \
 CASE WHEN g.due = ",
            glance_cap!(),
            " AND g.tenant_id IN (SELECT tenant_id FROM short) THEN ",
            due_count!("g.endpoint_id", "$4"),
            " ELSE g.due END AS due FROM glance g), \
shapes AS (SELECT tenant_id, busy, due, COUNT(*) AS n FROM endpoints WHERE due > busy GROUP BY tenant_id, busy, due), \
supply AS (SELECT s.tenant_id, l.k, \
 SUM(s.n * CASE WHEN l.k <= s.busy THEN 0 WHEN s.due < l.k THEN s.due - s.busy ELSE l.k - s.busy END) AS n \
 FROM shapes s CROSS JOIN levels l GROUP BY s.tenant_id, l.k), \
tenant_levels AS (SELECT s.tenant_id, COALESCE(MIN(CASE WHEN s.n >= ",
            tenant_may_take!(),
            " THEN s.k END), $4) AS k \
 FROM supply s LEFT JOIN busy_tenants bt ON bt.tenant_id = s.tenant_id \
 WHERE COALESCE(bt.n, 0) < $5 GROUP BY s.tenant_id), \
level AS (SELECT COALESCE(MAX(k), 0) AS k FROM tenant_levels), \
cutoffs AS MATERIALIZED (SELECT e.endpoint_id, e.busy, \
 COALESCE((SELECT x.next_attempt_at FROM webhook_messages x WHERE x.endpoint_id = e.endpoint_id \
  AND x.status = 'pending' AND x.next_attempt_at <= $2 ORDER BY x.next_attempt_at \
  LIMIT 1 OFFSET (SELECT k FROM level) - 1), $2) AS due_by \
 FROM endpoints e WHERE e.due > e.busy AND e.busy < (SELECT k FROM level)), \
",
            $ranked,
            "turns AS (SELECT r.id, r.next_attempt_at, COALESCE(bt.n, 0) AS tenant_busy, \
 ROW_NUMBER() OVER (PARTITION BY r.tenant_id ORDER BY r.endpoint_slot, r.next_attempt_at, r.id) AS turn \
 FROM ranked r LEFT JOIN busy_tenants bt ON bt.tenant_id = r.tenant_id \
 WHERE r.endpoint_slot <= (SELECT k FROM level)) \
UPDATE webhook_messages SET locked_until = $1, attempts = attempts + 1, updated_at = $2 \
WHERE id IN (SELECT id FROM turns WHERE turn + tenant_busy <= $5 ORDER BY turn, next_attempt_at, id LIMIT $3) \
AND CASE WHEN status = 'pending' THEN locked_until END < $2 \
RETURNING id, event_id, \
(SELECT e.type FROM events e WHERE e.id = webhook_messages.event_id) AS event_type, \
tenant_id, endpoint_id, \
(SELECT w.url FROM webhook_endpoints w WHERE w.id = webhook_messages.endpoint_id) AS url, \
(SELECT e.body FROM events e WHERE e.id = webhook_messages.event_id) AS body, \
attempts, locked_until, \
(SELECT w.secret FROM webhook_endpoints w WHERE w.id = webhook_messages.endpoint_id) AS secret, \
(SELECT w.previous_secret FROM webhook_endpoints w WHERE w.id = webhook_messages.endpoint_id) AS previous_secret, \
(SELECT w.previous_secret_expires_at FROM webhook_endpoints w \
 WHERE w.id = webhook_messages.endpoint_id) AS previous_secret_expires_at"
        )
    };
}

/// SQLite's claim: `CROSS JOIN` and `+m.locked_until` keep its planner
/// reading the messages endpoint by endpoint, from the due index.
pub(super) const CLAIM_DUE_MESSAGES_SQLITE: &str = claim_due_messages!(
    "ranked AS (SELECT m.id, m.tenant_id, m.next_attempt_at, \
     ROW_NUMBER() OVER (PARTITION BY m.endpoint_id ORDER BY m.next_attempt_at, m.id) + c.busy AS endpoint_slot \
     FROM cutoffs c CROSS JOIN webhook_messages m WHERE m.endpoint_id = c.endpoint_id AND m.status = 'pending' \
     AND m.next_attempt_at <= c.due_by AND +m.locked_until < $2), "
);

/// PostgreSQL's claim. Its planner may reorder a join by its estimates,
/// and a generic plan made while the outbox was empty (a held connection
/// keeps one until the table is next analyzed) put the pending messages
/// first and compared every one with every endpoint's cutoff. A
/// `LATERAL` subquery with a `LIMIT` is run once per cutoff, as written,
/// whatever the estimates: by index, at most the slots the endpoint can
/// fill.
pub(super) const CLAIM_DUE_MESSAGES_POSTGRES: &str = claim_due_messages!(
    "ranked AS (SELECT m.id, m.tenant_id, m.next_attempt_at, \
     ROW_NUMBER() OVER (PARTITION BY c.endpoint_id ORDER BY m.next_attempt_at, m.id) + c.busy AS endpoint_slot \
     FROM cutoffs c CROSS JOIN LATERAL (SELECT x.id, x.tenant_id, x.next_attempt_at FROM webhook_messages x \
      WHERE x.endpoint_id = c.endpoint_id AND x.status = 'pending' AND x.next_attempt_at <= c.due_by \
      AND x.locked_until < $2 ORDER BY x.next_attempt_at, x.id LIMIT (SELECT k FROM level) - c.busy) m), "
);

#[cfg(test)]
mod tests {
    //! These read each engine's plan for the claim whatever `TEST_DB`
    //! says: PostgreSQL's, with statistics that mislead it, and SQLite's.

    use sqlx::{Connection, PgConnection};

    use vouchsafe_core::webhook::IN_FLIGHT_PER_ENDPOINT;

    use super::{CLAIM_DUE_MESSAGES_POSTGRES, CLAIM_DUE_MESSAGES_SQLITE};
    use crate::testing::fresh_database_on;

    const ENDPOINTS: i64 = 200;
    const PER_ENDPOINT: i64 = 50;

    /// `per_loop` of every node of a plan, times the node's loops, summed.
    fn over_plan(node: &serde_json::Value, per_loop: &dyn Fn(&serde_json::Value) -> f64) -> f64 {
        let own = per_loop(node) * node["Actual Loops"].as_f64().unwrap_or(1.0);
        let children = node["Plans"].as_array().map_or(0.0, |plans| plans.iter().map(|p| over_plan(p, per_loop)).sum());
        own + children
    }

    /// The sum of a plan node's `keys`, those it has.
    fn counted(node: &serde_json::Value, keys: &[&str]) -> f64 {
        keys.iter().filter_map(|key| node[*key].as_f64()).sum()
    }

    /// Rows the plan's nodes threw away (their filters'): what the claim
    /// read and did not take.
    fn rows_thrown_away(plan: &serde_json::Value) -> f64 {
        over_plan(plan, &|node| counted(node, &["Rows Removed by Filter", "Rows Removed by Join Filter"]))
    }

    /// Rows the plan's scans of the outbox (`webhook_messages`) read, kept
    /// or thrown away: what the claim read.
    fn outbox_rows_read(plan: &serde_json::Value) -> f64 {
        over_plan(plan, &|node| match node["Relation Name"] == "webhook_messages" {
            true => counted(node, &["Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck"]),
            false => 0.0,
        })
    }

    /// What PostgreSQL's planner knew when it planned the claim.
    #[derive(Clone, Copy)]
    enum Planned {
        /// Statistics taken while everything in the outbox had been
        /// delivered, as a queue's statistics usually are.
        OnStatisticsOfDeliveredMessages,
        /// Before anything was queued: a held connection prepared the
        /// claim while the outbox was empty and never analyzed, and kept
        /// that plan (as it does until the table is analyzed).
        WhileTheOutboxWasEmpty,
    }

    /// The claim's work on a full outbox, every endpoint's share and more
    /// due, with the plan made as `planned` says, and generic, as a
    /// prepared statement keeps it.
    async fn plan_on_a_full_outbox(planned: Planned) -> serde_json::Value {
        let db = fresh_database_on(true).await.unwrap();
        let pool = crate::postgres::connect(&db.url_text).await.unwrap();
        crate::postgres::migrate(&pool).await.unwrap();
        pool.close().await;
        let mut conn = PgConnection::connect(&db.url_text).await.unwrap();
        let n = ENDPOINTS * PER_ENDPOINT;
        let setup = [
            "INSERT INTO tenants (id, name, account_sid, default_service_id, created_at) \
             VALUES ('ten_a', 'a', 'AC1', 'svc_a', 0)"
                .to_owned(),
            format!(
                "INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, secret, enabled, \
                 created_at, updated_at) \
                 SELECT 'we_' || g, 'ten_a', 'http://127.0.0.1/', '', '*', '\\x00', TRUE, g, g \
                 FROM generate_series(1, {ENDPOINTS}) g"
            ),
            format!(
                "INSERT INTO events (id, tenant_id, type, body, created_at) \
                 SELECT 'ev_' || g, 'ten_a', 'webhook.test', '{{}}', g FROM generate_series(1, {n}) g"
            ),
            "SET plan_cache_mode = force_generic_plan".to_owned(),
        ];
        let delivered = format!(
            "INSERT INTO webhook_messages (id, event_id, endpoint_id, tenant_id, status, attempts, \
             next_attempt_at, locked_until, created_at, updated_at) \
             SELECT 'old_' || g, 'ev_' || g, 'we_' || (1 + g % {ENDPOINTS}), 'ten_a', 'delivered', 1, 0, 0, g, g \
             FROM generate_series(1, {n}) g"
        );
        let prepare =
            format!("PREPARE claim (bigint, bigint, bigint, bigint, bigint) AS {CLAIM_DUE_MESSAGES_POSTGRES}");
        let execute = "EXECUTE claim(1000000000, 1000000, 64, 16, 64)";
        // The generic plan is made at the first EXECUTE and kept.
        let plan_now = execute.to_owned();
        let burst = format!(
            "INSERT INTO webhook_messages (id, event_id, endpoint_id, tenant_id, status, attempts, \
             next_attempt_at, locked_until, created_at, updated_at) \
             SELECT 'wm_' || g, 'ev_' || g, 'we_' || (1 + g % {ENDPOINTS}), 'ten_a', 'pending', 0, g, 0, g, g \
             FROM generate_series(1, {n}) g"
        );
        let steps = match planned {
            Planned::OnStatisticsOfDeliveredMessages => {
                vec![delivered, "ANALYZE webhook_messages".to_owned(), burst, prepare]
            }
            Planned::WhileTheOutboxWasEmpty => vec![prepare, plan_now, burst],
        };
        for statement in setup.into_iter().chain(steps) {
            sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
        }
        let (plan,): (serde_json::Value,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN (ANALYZE, FORMAT JSON) {execute}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        plan[0]["Plan"].clone()
    }

    /// The claim must not read every pending message once per endpoint,
    /// whatever the statistics say: its reads are to stay near the slots
    /// it can take. When an index led by status could serve its
    /// per-endpoint reads (before migration 0018), PostgreSQL's planner
    /// took it on statistics like these, and threw away rows by the
    /// million here (pending messages times endpoints, three times over).
    #[tokio::test]
    async fn a_claim_on_stale_statistics_reads_only_each_endpoints_first_messages() {
        let messages = (ENDPOINTS * PER_ENDPOINT) as f64;
        let thrown_away = rows_thrown_away(&plan_on_a_full_outbox(Planned::OnStatisticsOfDeliveredMessages).await);
        assert!(thrown_away < messages, "the claim threw away {thrown_away} rows for an outbox of {messages}");
    }

    /// The same with the plan a held connection made while the outbox was
    /// empty (in the benchmark, during the rows before the webhook row):
    /// taking the pending messages for a handful, PostgreSQL compared every
    /// one with every endpoint's cutoff, 1,192,000 comparisons and 550 ms
    /// a claim (`auto_explain`, `bench/RESULTS.md`), until the table was
    /// next analyzed.
    #[tokio::test]
    async fn a_claim_planned_on_an_empty_outbox_reads_only_each_endpoints_first_messages() {
        let messages = (ENDPOINTS * PER_ENDPOINT) as f64;
        let thrown_away = rows_thrown_away(&plan_on_a_full_outbox(Planned::WhileTheOutboxWasEmpty).await);
        assert!(thrown_away < messages, "the claim threw away {thrown_away} rows for an outbox of {messages}");
    }

    /// At fan-out (every endpoint has due messages, none is leased) slot 1
    /// fills the tenant's share, so a claim needs each endpoint's first
    /// due message and little more: it glances at two per endpoint, finds
    /// its cutoff and reads the one message up to it (928 rows here).
    /// Counting every endpoint's due messages up to its share of 16, as
    /// before 31236b0, read 3,728. So did a `LATERAL` probe without the
    /// cutoff (tried in 7083eb4): ordered by due time and id, which the
    /// index does not hold, PostgreSQL's incremental sort read at least
    /// 32 rows of each endpoint before its `LIMIT`, 10,528 in all.
    #[tokio::test]
    async fn a_claim_at_fan_out_reads_a_few_messages_per_endpoint() {
        let read = outbox_rows_read(&plan_on_a_full_outbox(Planned::OnStatisticsOfDeliveredMessages).await);
        let half_a_share = (IN_FLIGHT_PER_ENDPOINT / 2) as f64;
        let bound = half_a_share * ENDPOINTS as f64;
        assert!(read < bound, "the claim read {read} rows of the outbox over {ENDPOINTS} endpoints");
    }

    /// On SQLite the planner has no statistics, so the plan is fixed by
    /// the text and the indexes, and reading it is the test. Every read of
    /// `webhook_messages` in the claim goes by index to the rows it wants
    /// (`SEARCH`): a `SCAN` reads the whole outbox, delivered messages
    /// too, on every claim. Before the leases were materialized,
    /// SQLite counted them by scanning the due index in endpoint order.
    #[tokio::test]
    async fn every_read_of_the_outbox_in_a_claim_is_an_index_search() {
        let (_db, pool) = crate::testing::migrated_sqlite().await;
        let sql = format!("EXPLAIN QUERY PLAN {CLAIM_DUE_MESSAGES_SQLITE}");
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(2_i64)
            .bind(1_i64)
            .bind(64_i64)
            .bind(16_i64)
            .bind(64_i64)
            .fetch_all(&pool)
            .await
            .unwrap();
        let reads: Vec<&str> =
            plan.iter().map(|(.., detail)| detail.as_str()).filter(|d| d.contains("webhook_messages")).collect();
        assert!(
            reads.iter().any(|d| d.contains("webhook_messages_leased")),
            "the leases come from their index: {reads:#?}"
        );
        let scans: Vec<&&str> = reads.iter().filter(|d| d.starts_with("SCAN")).collect();
        assert!(scans.is_empty(), "the claim scans the outbox: {scans:#?}");
    }
}
