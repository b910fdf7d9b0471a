-- Passkeys. A PASSKEY factor keeps its credential once confirmed: the id assertions name it by
-- (base64url; one factor per credential, whoever holds it), the credential as the WebAuthn
-- library serialised it (public key, flags, counter), and the signature counter last accepted,
-- which a use raises by a conditional update so that a counter is accepted once.
ALTER TABLE factors ADD COLUMN credential_id TEXT;
ALTER TABLE factors ADD COLUMN passkey TEXT;
-- The user handle the passkey was made for: random, one per customer (all their passkeys
-- share it), set as a PASSKEY factor is added; a login's assertion must carry it.
ALTER TABLE factors ADD COLUMN user_handle BYTEA;
ALTER TABLE factors ADD COLUMN sign_count BIGINT;
CREATE UNIQUE INDEX factors_by_credential ON factors (credential_id) WHERE credential_id IS NOT NULL;

-- A passkey challenge's ceremony state (a registration or an assertion), which its answer is
-- verified against. It holds a random challenge, no secret of the customer's.
ALTER TABLE challenges ADD COLUMN ceremony TEXT;

-- Passkey logins' ceremonies: opened before anyone is known, each answered at most once.
CREATE TABLE passkey_logins (
    id         TEXT PRIMARY KEY,
    ceremony   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX passkey_logins_expiry ON passkey_logins (expires_at);
