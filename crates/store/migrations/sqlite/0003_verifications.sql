-- Verifications, deliveries, provider credentials and providers, and the
-- hourly send counters of the fraud limits.

CREATE TABLE credentials (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    -- Sealed with the master key, bound to tenant and name.
    sealed     BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE providers (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    channels   TEXT NOT NULL,
    priority   BIGINT NOT NULL,
    credential TEXT,
    settings   TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Every tenant starts with the console provider (development default).
INSERT INTO providers (tenant_id, name, type, channels, priority, credential, settings, enabled, created_at, updated_at)
SELECT id, 'console', 'console', 'sms,voice,email', 1000, NULL, '{}', TRUE, created_at, created_at FROM tenants;

CREATE TABLE verifications (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    service_id        TEXT NOT NULL,
    destination       TEXT NOT NULL,
    channel           TEXT NOT NULL,
    locale            TEXT,
    country           TEXT,
    status            TEXT NOT NULL,
    -- Keyed hash of the newest code; the code itself is never stored.
    code_hash         TEXT NOT NULL,
    attempts          BIGINT NOT NULL,
    max_attempts      BIGINT NOT NULL,
    send_count        BIGINT NOT NULL,
    window_started_at BIGINT NOT NULL,
    window_sends      BIGINT NOT NULL,
    last_sent_at      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

-- At most one pending verification per service and destination.
CREATE UNIQUE INDEX verifications_one_pending ON verifications (service_id, destination) WHERE status = 'pending';
CREATE INDEX verifications_by_destination ON verifications (tenant_id, service_id, destination, created_at);

CREATE TABLE deliveries (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    verification_id     TEXT,
    channel             TEXT NOT NULL,
    destination         TEXT NOT NULL,
    country             TEXT,
    status              TEXT NOT NULL,
    result              TEXT NOT NULL,
    provider            TEXT,
    provider_message_id TEXT,
    error               TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);

CREATE TABLE send_counters (
    tenant_id TEXT NOT NULL,
    scope     TEXT NOT NULL,
    key       TEXT NOT NULL,
    bucket    BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, key, bucket)
);
