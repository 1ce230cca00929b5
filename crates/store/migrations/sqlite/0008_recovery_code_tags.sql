-- Recovery codes carry a short keyed tag of the code, so an answer picks
-- its one candidate before any Argon2id hash is checked. Sets made before
-- this have no tag (NULL): every unspent code of theirs is a candidate.
ALTER TABLE recovery_codes ADD COLUMN lookup_tag TEXT;
