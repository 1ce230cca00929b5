-- A lookup by a row's id (`WHERE tenant_id = $1 AND id = $2`) must use the
-- id's unique index, whatever the table held when the statement was
-- planned. PostgreSQL plans a prepared statement once for all parameters
-- (its generic plan) after five executions, and keeps that plan until the
-- table's statistics change. On a table still empty or never analyzed, an
-- index led by tenant_id alone looked as cheap as the id's, and was taken:
-- every later lookup then read all of the tenant's rows, until autovacuum
-- analyzed the table. A fresh server under load spent its CPU on that
-- (the benchmark's TOTP row after the others: 207 answers/s instead of
-- about 2,000). Led by the column that picks a user's, a destination's or
-- a record's rows, these indexes serve the same queries and cannot serve
-- a lookup by id. (webhook_endpoints and api_keys keep theirs, led by
-- tenant_id to list a tenant's rows in order: a tenant has a handful, and
-- neither is read by id on the request path.) SQLite needs no change
-- (0014 there is empty): its planner takes a unique index whenever its
-- column is compared for equality.
DROP INDEX challenges_by_user;
CREATE INDEX challenges_by_user ON challenges (user_id, tenant_id);

DROP INDEX verifications_by_destination;
CREATE INDEX verifications_by_destination ON verifications (service_id, destination_key, tenant_id, created_at);

DROP INDEX caller_verifications_by_record;
CREATE INDEX caller_verifications_by_record ON caller_verifications (record_id, tenant_id, created_at);
