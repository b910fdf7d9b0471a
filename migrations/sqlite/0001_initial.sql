-- Instants are INTEGER milliseconds since the Unix epoch (UTC). Tokens and codes are stored only
-- as SHA-256 hashes (BLOB).

CREATE TABLE customers (
    id                TEXT PRIMARY KEY,
    username          TEXT NOT NULL UNIQUE,   -- trimmed and lower-cased
    email             TEXT NOT NULL,
    phone             TEXT,
    first_name        TEXT NOT NULL,
    last_name         TEXT NOT NULL,
    kyc_status        TEXT NOT NULL CHECK (kyc_status IN ('NOT_STARTED', 'PENDING', 'VERIFIED', 'REJECTED')),
    two_factor_method TEXT CHECK (two_factor_method IN ('SMS', 'EMAIL')),
    password_hash     TEXT NOT NULL,          -- argon2 PHC string
    last_login_at     INTEGER,
    created_at        INTEGER NOT NULL
) STRICT;

-- Failure counters per normalised username, whether or not such a customer exists.
CREATE TABLE lockouts (
    username        TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL DEFAULT 0,
    lock_count      INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,
    operator_locked INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    state               TEXT NOT NULL CHECK (state IN ('TWO_FACTOR_PENDING', 'ACTIVE')),
    access_hash         BLOB NOT NULL UNIQUE,
    refresh_hash        BLOB NOT NULL UNIQUE,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    login_at            INTEGER,
    previous_login_at   INTEGER,
    two_factor_verified INTEGER NOT NULL DEFAULT 0,
    codes_sent          INTEGER NOT NULL DEFAULT 0,
    last_code_sent_at   INTEGER,
    revoked_at          INTEGER,
    revoke_reason       TEXT,
    ip                  TEXT,
    user_agent          TEXT,
    device_fingerprint  TEXT,
    device_name         TEXT
) STRICT;
CREATE INDEX sessions_by_customer ON sessions (customer_id);
CREATE INDEX sessions_by_absolute_expiry ON sessions (absolute_expires_at);

-- Refresh tokens that were rotated away: presenting one again is reuse.
CREATE TABLE retired_refresh_tokens (
    hash       BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    retired_at INTEGER NOT NULL
) STRICT;
CREATE INDEX retired_refresh_tokens_by_session ON retired_refresh_tokens (session_id);

CREATE TABLE challenges (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    method      TEXT NOT NULL CHECK (method IN ('SMS', 'EMAIL')),
    destination TEXT NOT NULL,            -- masked
    code_hash   BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'SUPERSEDED', 'VERIFIED'))
) STRICT;
CREATE INDEX challenges_by_session ON challenges (session_id);

-- The hash-chained audit trail. Append-only: the triggers below refuse edits and deletions.
CREATE TABLE audit_events (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    at                 INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    outcome            TEXT NOT NULL,
    reason             TEXT,
    username           TEXT,
    customer_id        TEXT,
    session_id         TEXT,
    ip                 TEXT,
    user_agent         TEXT,
    device_fingerprint TEXT,
    device_name        TEXT,
    details            TEXT NOT NULL,
    prev_hash          TEXT NOT NULL,
    hash               TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_by_time ON audit_events (at);

-- The chain's newest link, so that events cut from the end are detected too.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Retention deletes events from the start of the chain; the checkpoint holds the last deleted
-- link, so verification starts from it.
CREATE TABLE audit_checkpoint (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;
INSERT INTO audit_checkpoint (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_events_are_not_updated BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
-- Only events at or before the checkpoint (moved by retention) may be deleted.
CREATE TRIGGER audit_events_are_not_deleted BEFORE DELETE ON audit_events
WHEN OLD.seq > (SELECT seq FROM audit_checkpoint WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
