-- API keys are kept in memory between requests on SQLite too (key_cache):
-- every process on the file polls this count, and a process serves a kept
-- key only while a poll that began within the last second found it
-- unchanged. The triggers count every change to a key, however it is
-- made (the server, the CLI, an operator's own SQL), in the transaction
-- that makes it. PostgreSQL's nodes hear revocations by LISTEN/NOTIFY
-- instead and keep no count.
INSERT INTO meta (key, value) VALUES ('api_key_changes', '0');

CREATE TRIGGER api_key_updated AFTER UPDATE ON api_keys
BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'api_key_changes';
END;

CREATE TRIGGER api_key_deleted AFTER DELETE ON api_keys
BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'api_key_changes';
END;
