-- Audit chains are keyed from this version on (issue 16, item 12): each
-- new event's hash is an HMAC under a key derived from the master key. A
-- chain that already has events is pinned once, by the first process that
-- opens the master key after this migration: it appends `audit.keyed`,
-- whose HMAC covers the unkeyed past, and removes this flag. A chain found
-- ending on an unkeyed event later is not pinned but reported as broken.
INSERT INTO meta (key, value) SELECT 'audit_pin_due', 'true' WHERE EXISTS (SELECT 1 FROM audit_heads WHERE seq > 0);
