-- One outbox for everything sent to a customer: a message has a purpose (a two-factor code, a
-- security notice, …) and is delivered by the one worker. The purposes are the domain's: no
-- CHECK list here, so a new kind of message needs no migration.
--
-- Every finish and retry is conditional on the claim token, so a worker whose lease ran out
-- cannot overwrite what another worker did since; maybe_delivered is set once an attempt failed
-- in a way that may have delivered the code all the same (then giving up does not give the send
-- back). A notice is written in the transaction of the login it tells of; its dedupe_key (the
-- signal) is marked told in risk_notices once it is sent.
CREATE TABLE messages (
    id                TEXT PRIMARY KEY,      -- a code's message: its challenge's id
    purpose           TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    session_id        TEXT,                  -- the session waiting for a code
    challenge_id      TEXT REFERENCES challenges (id) ON DELETE CASCADE,
    channel           TEXT NOT NULL,
    address           TEXT NOT NULL,
    sealed_code       BLOB,                  -- erased once the message is finished
    payload           TEXT,                  -- what a notice says (server-derived facts, JSON)
    dedupe_key        TEXT,                  -- one waiting message per customer and key
    valid_for_minutes INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    claimed_until     INTEGER,
    claim_token       TEXT,
    maybe_delivered   INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL DEFAULT 'PENDING'
                      CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'GAVE_UP', 'DROPPED')),
    last_error        TEXT,
    finished_at       INTEGER
) STRICT;

-- Codes the previous version queued move over; in the old table they are marked moved, so an
-- instance of the previous version still running during a rolling upgrade does not send them
-- again. It keeps writing and sending its own codes there until it stops; a later version
-- drops the table.
INSERT INTO messages (id, purpose, customer_id, session_id, challenge_id, channel, address,
    sealed_code, valid_for_minutes, created_at, expires_at, attempts, next_attempt_at,
    claimed_until, status, last_error, finished_at)
SELECT challenge_id, '2fa_code', customer_id, session_id, challenge_id, channel, address,
    sealed_code, valid_for_minutes, created_at, expires_at, attempts, next_attempt_at,
    claimed_until, status, last_error, finished_at
FROM outbox;
UPDATE outbox SET status = 'DROPPED', sealed_code = NULL, last_error = 'moved to messages'
WHERE status = 'PENDING';

CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX messages_by_challenge ON messages (challenge_id);
CREATE UNIQUE INDEX messages_one_pending ON messages (customer_id, dedupe_key)
    WHERE status = 'PENDING' AND dedupe_key IS NOT NULL;
CREATE INDEX messages_finished ON messages (finished_at) WHERE status <> 'PENDING';
