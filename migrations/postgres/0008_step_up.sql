-- Step-up: a challenge proves a second factor either to finish a login or, on an ACTIVE
-- session, to make it recently authenticated (recent_auth_at). A challenge answered by the
-- password has no code and sends nothing: code_hash and destination may be NULL.
ALTER TABLE challenges ADD COLUMN purpose TEXT NOT NULL DEFAULT 'LOGIN';
ALTER TABLE challenges ALTER COLUMN code_hash DROP NOT NULL;
ALTER TABLE challenges ALTER COLUMN destination DROP NOT NULL;

-- When the session last proved a second factor (or, for a customer without one, the password).
ALTER TABLE sessions ADD COLUMN recent_auth_at BIGINT;
UPDATE sessions SET recent_auth_at = login_at WHERE state = 'ACTIVE' AND two_factor_verified;
