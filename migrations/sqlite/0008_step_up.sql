-- Step-up: a challenge proves a second factor either to finish a login or, on an ACTIVE
-- session, to make it recently authenticated (recent_auth_at). A challenge answered by the
-- password has no code and sends nothing: code_hash and destination may be NULL (SQLite replaces
-- each column to drop NOT NULL).
ALTER TABLE challenges ADD COLUMN purpose TEXT NOT NULL DEFAULT 'LOGIN';
ALTER TABLE challenges ADD COLUMN code_hash_optional BLOB;
UPDATE challenges SET code_hash_optional = code_hash;
ALTER TABLE challenges DROP COLUMN code_hash;
ALTER TABLE challenges RENAME COLUMN code_hash_optional TO code_hash;
ALTER TABLE challenges ADD COLUMN destination_optional TEXT;
UPDATE challenges SET destination_optional = destination;
ALTER TABLE challenges DROP COLUMN destination;
ALTER TABLE challenges RENAME COLUMN destination_optional TO destination;

-- When the session last proved a second factor (or, for a customer without one, the password).
ALTER TABLE sessions ADD COLUMN recent_auth_at INTEGER;
UPDATE sessions SET recent_auth_at = login_at WHERE state = 'ACTIVE' AND two_factor_verified = 1;
