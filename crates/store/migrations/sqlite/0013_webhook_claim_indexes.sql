-- A claim (store/src/webhooks.rs, claim_due_messages) used to rank every
-- due message of the outbox to take at most a process's share of them,
-- so its cost grew with the backlog: 16 ms per claim over 6,000 waiting
-- messages on SQLite, when one claim takes at most 64. It now reads, per
-- enabled endpoint, only the first messages that could fill its slots
-- (by endpoint, status and due time), and counts the attempts in flight
-- from the leased messages alone (by status and lease).
CREATE INDEX webhook_messages_endpoint_due ON webhook_messages (endpoint_id, status, next_attempt_at);
CREATE INDEX webhook_messages_leased ON webhook_messages (status, locked_until);
