-- Forgotten passwords: a six-digit reset code mailed to the profile's address. A row is written
-- for every request, also for a username that belongs to no customer (customer_id and code_hash
-- NULL), so that answering a reset counts attempts and expires alike whether or not the
-- username exists. code_hash is NULL whenever no code went out (an unknown username, an
-- operator's lock, a spent sending budget): no answer is right then.
CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    customer_id TEXT REFERENCES customers (id) ON DELETE CASCADE,
    code_hash   BLOB,
    attempts    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'OPEN',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX password_resets_open ON password_resets (username) WHERE status = 'OPEN';
CREATE INDEX password_resets_by_customer ON password_resets (customer_id, created_at);
CREATE INDEX password_resets_expiry ON password_resets (expires_at);

-- A reset code's message names its reset: once the reset is no longer open, it is not sent.
ALTER TABLE messages ADD COLUMN reset_id TEXT REFERENCES password_resets (id) ON DELETE CASCADE;
CREATE INDEX messages_by_reset ON messages (reset_id) WHERE reset_id IS NOT NULL;
