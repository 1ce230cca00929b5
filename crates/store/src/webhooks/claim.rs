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
//! - `endpoints` counts each enabled endpoint's due messages, leased or
//!   not, up to its share, from the index (`webhook_messages_endpoint_due`,
//!   migration 0013), and its leases; endpoints of a tenant at its share
//!   are skipped, so a claim while it is full reads next to nothing.
//! - `level` is the lowest slot by which every tenant has as many
//!   candidates as it may take (`$3`, or its share less its leases): turns
//!   go by slot first, so no message in a later slot can be taken. Under
//!   fan-out to many endpoints that is slot 1, and each endpoint gives one
//!   candidate instead of its share. Counting by level is cheap: endpoints
//!   are grouped by (tenant, leases, due) before the levels are summed.
//! - `cutoffs` finds the due time of each endpoint's `level`-th due message,
//!   and `ranked` reads only messages up to it, by index, endpoint by
//!   endpoint. `CROSS JOIN` and `+m.locked_until` keep SQLite from reading
//!   every unleased message through the lease index instead.
//! - The `UPDATE` finds the chosen rows by id; its repeated claim condition
//!   is one expression so SQLite does not drive it from the lease index
//!   (every pending message) either.
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

pub(super) const CLAIM_DUE_MESSAGES: &str = "\
WITH RECURSIVE levels (k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM levels WHERE k < $4), \
busy_endpoints AS (SELECT endpoint_id, COUNT(*) AS n FROM webhook_messages \
 WHERE status = 'pending' AND locked_until >= $2 GROUP BY endpoint_id), \
busy_tenants AS (SELECT tenant_id, COUNT(*) AS n FROM webhook_messages \
 WHERE status = 'pending' AND locked_until >= $2 GROUP BY tenant_id), \
endpoints AS MATERIALIZED (SELECT w.id AS endpoint_id, w.tenant_id, COALESCE(be.n, 0) AS busy, \
 (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_messages x WHERE x.endpoint_id = w.id AND x.status = 'pending' \
  AND x.next_attempt_at <= $2 ORDER BY x.next_attempt_at LIMIT $4) d) AS due \
 FROM webhook_endpoints w LEFT JOIN busy_endpoints be ON be.endpoint_id = w.id WHERE w.enabled = TRUE \
 AND w.tenant_id NOT IN (SELECT tenant_id FROM busy_tenants WHERE n >= $5)), \
shapes AS (SELECT tenant_id, busy, due, COUNT(*) AS n FROM endpoints WHERE due > busy GROUP BY tenant_id, busy, due), \
supply AS (SELECT s.tenant_id, l.k, \
 SUM(s.n * CASE WHEN l.k <= s.busy THEN 0 WHEN s.due < l.k THEN s.due - s.busy ELSE l.k - s.busy END) AS n \
 FROM shapes s CROSS JOIN levels l GROUP BY s.tenant_id, l.k), \
tenant_levels AS (SELECT s.tenant_id, COALESCE(MIN(CASE WHEN s.n >= \
 CASE WHEN $3 < $5 - COALESCE(bt.n, 0) THEN $3 ELSE $5 - COALESCE(bt.n, 0) END THEN s.k END), $4) AS k \
 FROM supply s LEFT JOIN busy_tenants bt ON bt.tenant_id = s.tenant_id \
 WHERE COALESCE(bt.n, 0) < $5 GROUP BY s.tenant_id), \
level AS (SELECT COALESCE(MAX(k), 0) AS k FROM tenant_levels), \
cutoffs AS MATERIALIZED (SELECT e.endpoint_id, e.busy, \
 COALESCE((SELECT x.next_attempt_at FROM webhook_messages x WHERE x.endpoint_id = e.endpoint_id \
  AND x.status = 'pending' AND x.next_attempt_at <= $2 ORDER BY x.next_attempt_at \
  LIMIT 1 OFFSET (SELECT k FROM level) - 1), $2) AS due_by \
 FROM endpoints e WHERE e.due > e.busy AND e.busy < (SELECT k FROM level)), \
ranked AS (SELECT m.id, m.tenant_id, m.next_attempt_at, \
 ROW_NUMBER() OVER (PARTITION BY m.endpoint_id ORDER BY m.next_attempt_at, m.id) + c.busy AS endpoint_slot \
 FROM cutoffs c CROSS JOIN webhook_messages m WHERE m.endpoint_id = c.endpoint_id AND m.status = 'pending' \
 AND m.next_attempt_at <= c.due_by AND +m.locked_until < $2), \
turns AS (SELECT r.id, r.next_attempt_at, COALESCE(bt.n, 0) AS tenant_busy, \
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
 WHERE w.id = webhook_messages.endpoint_id) AS previous_secret_expires_at";
