-- Nothing to change on PostgreSQL. On SQLite this migration adds the
-- triggers that count changes to API keys, which every process sharing the
-- file polls to forget the keys it keeps (key_cache). PostgreSQL's nodes
-- hear revocations by LISTEN/NOTIFY instead and keep no count. The version
-- exists so that both engines' migrations keep the same numbers.
SELECT 1;
