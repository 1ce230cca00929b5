-- A user's authenticators are read in the order they were made (created_at,
-- then id): by a TOTP answer's one read of its challenge
-- (store/src/users/to_answer.rs) and by the authenticator list. With the
-- order in the index that finds them, no read sorts: on SQLite the answer's
-- read opened a sorter for its one row: 3.6% of a wrong answer's
-- instructions. The index replaces the one on (tenant_id, user_id), a prefix
-- of it.
CREATE INDEX authenticators_by_user_in_order ON authenticators (tenant_id, user_id, created_at, id);
DROP INDEX authenticators_by_user;
