-- Codes on their way to customers, written in the transaction that opens their challenge and
-- sent by a delivery worker. The code is sealed (AEAD under a key derived from the audit key,
-- when one is set) and erased once the message is sent, dropped or given up on.
CREATE TABLE outbox (
    challenge_id      TEXT PRIMARY KEY REFERENCES challenges (id) ON DELETE CASCADE,
    session_id        TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    channel           TEXT NOT NULL CHECK (channel IN ('SMS', 'EMAIL')),
    address           TEXT NOT NULL,
    sealed_code       BLOB,
    valid_for_minutes INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    claimed_until     INTEGER,
    status            TEXT NOT NULL DEFAULT 'PENDING'
                      CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'DROPPED')),
    last_error        TEXT,
    finished_at       INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'PENDING';
