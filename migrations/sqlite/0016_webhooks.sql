-- Security events for FinHub's fraud systems (FINHUB_WEBHOOK_URL): each audit event of a kind
-- FINHUB_WEBHOOK_EVENTS names is queued here in the transaction that appends it, and delivered
-- at least once by the delivery worker under a claim token, as messages are, for 24 hours.
CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,        -- the audit event's id: webhook-id on every attempt
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,           -- the exact JSON sent, signed as it is
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    claim_token     TEXT,
    status          TEXT NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    last_error      TEXT,
    finished_at     INTEGER
) STRICT;
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_events_finished ON webhook_events (finished_at) WHERE status <> 'PENDING';

-- A notice's "this wasn't me" link goes only to the profile's mailbox, never to a factor's: a
-- thief who added a mailbox of their own must not receive links to lock the customer out again.
ALTER TABLE messages ADD COLUMN lockdown_link INTEGER NOT NULL DEFAULT 0;
