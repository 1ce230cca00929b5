-- Nothing to change on SQLite. On PostgreSQL this migration sets a
-- fillfactor below 100 on the tables the request path updates, so that
-- their updates stay on the row's page and touch no index (see its 0017).
-- SQLite rewrites a row in place in its b-tree page, and has no such
-- setting. The version exists so that both engines' migrations keep the
-- same numbers.
SELECT 1;
