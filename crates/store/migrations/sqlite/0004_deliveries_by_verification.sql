-- Sends of one verification, for the Twilio-compatible send_code_attempts.
CREATE INDEX deliveries_by_verification ON deliveries (verification_id);
