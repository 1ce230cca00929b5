-- Users of login flows, their authenticators (secrets sealed), recovery
-- codes (Argon2id hashes) and second-factor challenges.

CREATE TABLE users (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    phone        TEXT,
    email        TEXT,
    display_name TEXT,
    privileged   BOOLEAN NOT NULL,
    -- Consecutive failed answers, and the lock they caused (0: none).
    failures     BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE authenticators (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    type         TEXT NOT NULL,
    status       TEXT NOT NULL,
    label        TEXT,
    params       TEXT NOT NULL,
    sealed       BYTEA NOT NULL,
    -- Only moves forward: last TOTP step, next HOTP counter, last YubiKey counter.
    counter      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

CREATE INDEX authenticators_by_user ON authenticators (tenant_id, user_id);

CREATE TABLE recovery_codes (
    authenticator_id TEXT NOT NULL REFERENCES authenticators (id),
    idx              BIGINT NOT NULL,
    hash             TEXT NOT NULL,
    used_at          BIGINT,
    PRIMARY KEY (authenticator_id, idx)
);

CREATE TABLE challenges (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    factor          TEXT NOT NULL,
    action          TEXT NOT NULL,
    redirect_url    TEXT,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    max_attempts    BIGINT NOT NULL,
    verification_id TEXT,
    expires_at      BIGINT NOT NULL,
    verified_at     BIGINT,
    token_used_at   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX challenges_by_user ON challenges (tenant_id, user_id);
