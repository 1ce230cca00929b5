-- A passkey challenge's WebAuthn request options and ceremony state.
ALTER TABLE challenges ADD COLUMN passkey_options TEXT;
ALTER TABLE challenges ADD COLUMN passkey_state TEXT;
