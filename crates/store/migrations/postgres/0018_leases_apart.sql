-- The leases in flight get an index of their own that nothing else can
-- take. webhook_messages_leased was led by status, so every statement
-- asking for an endpoint's pending messages could read it instead of
-- webhook_messages_endpoint_due. PostgreSQL did, whenever its statistics
-- said few messages were pending, which is what they say of an outbox
-- most of the time (delivered messages stay): a claim then read every
-- pending message once per endpoint, and a burst of 10,000 test events
-- over 200 endpoints was delivered at 650 a second.
-- This one holds only leased messages (unleased ones have locked_until 0),
-- and only a statement that says `locked_until > 0` may use it: the
-- claim's count of attempts in flight. The outbox depth counts pending
-- messages endpoint by endpoint (store/src/webhooks.rs).
DROP INDEX webhook_messages_leased;
CREATE INDEX webhook_messages_leased ON webhook_messages (locked_until) WHERE status = 'pending' AND locked_until > 0;
