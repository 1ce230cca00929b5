-- Agent console sessions, kept server-side so signing out (or revoking the
-- key) ends them at once. The cookie holds a random token; only its keyed
-- hash is stored.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    key_id     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
