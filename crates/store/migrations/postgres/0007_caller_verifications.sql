-- Help-desk caller verifications. The link token and the code are kept
-- only as keyed hashes.

CREATE TABLE caller_verifications (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    record_id      TEXT NOT NULL,
    record_type    TEXT NOT NULL,
    user_id        TEXT,
    destination    TEXT NOT NULL,
    channel        TEXT NOT NULL,
    agent_id       TEXT,
    status         TEXT NOT NULL,
    link_hash      TEXT NOT NULL UNIQUE,
    code_hash      TEXT NOT NULL,
    attempts       BIGINT NOT NULL,
    max_attempts   BIGINT NOT NULL,
    time_allowed_s BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    completed_at   BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX caller_verifications_by_record ON caller_verifications (tenant_id, record_id, created_at);
CREATE INDEX caller_verifications_due ON caller_verifications (status, expires_at);
