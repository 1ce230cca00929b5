-- Audit entries are written with their change into audit_pending, one
-- insert that shares no row with other writers, and chained afterwards
-- (store/src/audit.rs): the chainer gives each its sequence number and
-- HMAC under the tenant's head row lock, in batches, and moves it into
-- audit_events. Before this, every audited write took its tenant's head
-- row lock inside its own transaction and held it until its commit was
-- flushed, so one tenant's audited writes were serialised by commit
-- latency on PostgreSQL.
CREATE TABLE audit_pending (
    id        BIGSERIAL PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL
);

CREATE INDEX audit_pending_by_tenant ON audit_pending (tenant_id, id);
