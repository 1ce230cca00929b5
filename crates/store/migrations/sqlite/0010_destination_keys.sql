-- Verifications are matched on their destination's key (issue 16, item 7):
-- E.164 for numbers, the whole address in lower case for email, so
-- `BOB@example.com` meets `bob@example.com`'s cooldown and one-pending
-- rule. `destination` keeps the address as given; it is where codes go.
ALTER TABLE verifications ADD COLUMN destination_key TEXT NOT NULL DEFAULT '';
UPDATE verifications SET destination_key = CASE WHEN channel = 'email' THEN lower(destination) ELSE destination END;

-- Addresses that differ only in case could each hold a pending
-- verification before; the newest stays pending, the others expire.
UPDATE verifications SET status = 'expired'
WHERE status = 'pending' AND EXISTS (
    SELECT 1 FROM verifications AS newer
    WHERE newer.status = 'pending'
      AND newer.service_id = verifications.service_id
      AND newer.destination_key = verifications.destination_key
      AND (newer.created_at > verifications.created_at
           OR (newer.created_at = verifications.created_at AND newer.id > verifications.id))
);

DROP INDEX verifications_one_pending;
DROP INDEX verifications_by_destination;
CREATE UNIQUE INDEX verifications_one_pending ON verifications (service_id, destination_key) WHERE status = 'pending';
CREATE INDEX verifications_by_destination ON verifications (tenant_id, service_id, destination_key, created_at);
