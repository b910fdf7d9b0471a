-- A claim's own token: a worker finishes only the messages it still holds, so one whose lease
-- ran out cannot overwrite what another worker did since.
ALTER TABLE outbox ADD COLUMN claim_token TEXT;
-- Set once an attempt failed in a way that may have delivered the code all the same: then a
-- message given up on does not give the send back.
ALTER TABLE outbox ADD COLUMN maybe_delivered INTEGER NOT NULL DEFAULT 0;

-- Security notices on their way to customers, written in the transaction of the login they
-- tell of and sent by the same delivery worker as codes. They hold facts the server derived
-- (country, browser and system), never text a client chose. A customer's signal (a new
-- country, network or device) is marked told in risk_notices when its notice is sent.
CREATE TABLE notice_outbox (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    address         TEXT NOT NULL,
    signal          TEXT NOT NULL,
    country         TEXT,
    device          TEXT,
    flags           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    claim_token     TEXT,
    status          TEXT NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'DROPPED')),
    last_error      TEXT,
    finished_at     INTEGER
) STRICT;
CREATE INDEX notice_outbox_due ON notice_outbox (next_attempt_at) WHERE status = 'PENDING';
-- One notice of a signal waits at a time: two logins on the same new device queue one.
CREATE UNIQUE INDEX notice_outbox_one_pending ON notice_outbox (customer_id, signal)
    WHERE status = 'PENDING';
CREATE INDEX notice_outbox_finished ON notice_outbox (finished_at) WHERE status <> 'PENDING';
