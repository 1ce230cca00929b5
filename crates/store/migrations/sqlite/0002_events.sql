-- Events: the hash-chained audit log, webhook endpoints, and the outbox
-- (events, one message per event and endpoint, and the attempts log).

CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL
);

INSERT INTO audit_heads (tenant_id, seq, hash)
SELECT id, 0, '0000000000000000000000000000000000000000000000000000000000000000' FROM tenants;

CREATE TABLE audit_events (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES tenants (id),
    url                        TEXT NOT NULL,
    description                TEXT NOT NULL,
    events                     TEXT NOT NULL,
    secret                     BLOB NOT NULL,
    previous_secret            BLOB,
    previous_secret_expires_at BIGINT,
    enabled                    BOOLEAN NOT NULL,
    disabled_reason            TEXT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);

CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    type       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_messages (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES events (id),
    endpoint_id     TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX webhook_messages_due ON webhook_messages (status, next_attempt_at);

CREATE TABLE webhook_attempts (
    id          TEXT PRIMARY KEY,
    message_id  TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    outcome     TEXT NOT NULL
);

CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
