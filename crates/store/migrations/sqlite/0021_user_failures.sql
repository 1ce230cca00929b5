-- A user's consecutive failed answers move out of `users` into a table that
-- holds a row only for a user who has some, deleted when a right answer
-- clears them. A wrong answer wrote its user's row in `users`: with a
-- million users, a page no other answer of its commit shared, which the
-- WAL took and the checkpoint wrote back, at random (bench/RESULTS.md,
-- the section at a4cab8f). It now writes a row of this small table,
-- whatever the number of users. The lock the failures cause stays in
-- `users` (`locked_until`): it is written only when a lock is set or ends,
-- and every check of it reads the row a write for the user locks first.
CREATE TABLE user_failures (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    failures   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
) WITHOUT ROWID;

INSERT INTO user_failures (tenant_id, user_id, failures, updated_at)
SELECT tenant_id, id, failures, updated_at FROM users WHERE failures > 0;

ALTER TABLE users DROP COLUMN failures;
