-- The customer's own credentials: named factors, authenticator apps, confirmation of a new
-- factor, and recovery codes.
--
-- A factor is unconfirmed while pending_until is set: unusable, unlisted, never the default, and
-- dropped once that moment passes. Rows written by the previous version have none: confirmed.
ALTER TABLE factors ADD COLUMN name TEXT;
ALTER TABLE factors ADD COLUMN secret BLOB;           -- an authenticator app's secret, sealed
ALTER TABLE factors ADD COLUMN pending_until INTEGER;
ALTER TABLE factors ADD COLUMN last_used_at INTEGER;
CREATE INDEX factors_unconfirmed ON factors (pending_until) WHERE pending_until IS NOT NULL;

-- The factor a challenge is answered with (an app's secret) or confirms (purpose CONFIRM).
ALTER TABLE challenges ADD COLUMN factor_id TEXT;

-- The last authenticator-app time step accepted for a customer: a code is accepted once, on any
-- instance, and never an older step after a newer one.
CREATE TABLE totp_steps (
    customer_id TEXT PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    last_step   INTEGER NOT NULL
);

-- Recovery codes, stored only as keyed hashes; each is used once (used_at).
CREATE TABLE recovery_codes (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    code_hash   BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE UNIQUE INDEX recovery_codes_by_hash ON recovery_codes (customer_id, code_hash);
