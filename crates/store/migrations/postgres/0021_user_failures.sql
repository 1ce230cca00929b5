-- A user's consecutive failed answers move out of `users` into a table that
-- holds a row only for a user who has some, deleted when a right answer
-- clears them: the same table as on SQLite (see its 0021), where a wrong
-- answer's write of its user's row was, with a million users, a page of its
-- own. The lock the failures cause stays in `users` (`locked_until`), on
-- the row a write for the user locks first (store/src/users.rs): a check of
-- the lock made after that lock reads its latest version. Counts are
-- updated a few times each before they are deleted, so each page keeps a
-- fifth of its space for their new versions (see 0017).
CREATE TABLE user_failures (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    failures   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
) WITH (fillfactor = 80);

INSERT INTO user_failures (tenant_id, user_id, failures, updated_at)
SELECT tenant_id, id, failures, updated_at FROM users WHERE failures > 0;

ALTER TABLE users DROP COLUMN failures;
