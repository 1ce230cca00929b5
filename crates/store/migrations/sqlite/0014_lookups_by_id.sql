-- Nothing to change on SQLite. On PostgreSQL this migration re-leads three
-- indexes so that a lookup by id cannot take them (see its 0014): a
-- prepared statement's generic plan, made while a table was empty, took an
-- index led by tenant_id alone. SQLite plans each statement when it is
-- prepared, and takes a unique index whenever its column is compared for
-- equality, so a lookup by id always uses the id's. The version exists so
-- that both engines' migrations keep the same numbers.
SELECT 1;
