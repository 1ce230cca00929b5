-- No statement reads webhook_messages by (status, next_attempt_at) since
-- claims go endpoint by endpoint (0013): each endpoint's due messages come
-- from webhook_messages_endpoint_due, the leases from
-- webhook_messages_leased, and the outbox depth's count of pending
-- messages from the latter's leading column. Yet every message written,
-- and every one moved on, changed this index too: on the webhook path's
-- durable commits it was pages written for nothing.
DROP INDEX webhook_messages_due;
