-- Instants are BIGINT milliseconds since the Unix epoch (UTC), as in the SQLite store, so both
-- backends share one row mapping. Tokens and codes are stored only as SHA-256 hashes (BYTEA).

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
    last_login_at     BIGINT,
    created_at        BIGINT NOT NULL
);

-- Failure counters per normalised username, whether or not such a customer exists.
CREATE TABLE lockouts (
    username        TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL DEFAULT 0,
    lock_count      BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    operator_locked BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    state               TEXT NOT NULL CHECK (state IN ('TWO_FACTOR_PENDING', 'ACTIVE')),
    access_hash         BYTEA NOT NULL UNIQUE,
    refresh_hash        BYTEA NOT NULL UNIQUE,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    login_at            BIGINT,
    previous_login_at   BIGINT,
    two_factor_verified BOOLEAN NOT NULL DEFAULT FALSE,
    codes_sent          BIGINT NOT NULL DEFAULT 0,
    last_code_sent_at   BIGINT,
    revoked_at          BIGINT,
    revoke_reason       TEXT,
    ip                  TEXT,
    user_agent          TEXT,
    device_fingerprint  TEXT,
    device_name         TEXT
);
CREATE INDEX sessions_by_customer ON sessions (customer_id);
CREATE INDEX sessions_by_absolute_expiry ON sessions (absolute_expires_at);

-- Refresh tokens that were rotated away: presenting one again is reuse.
CREATE TABLE retired_refresh_tokens (
    hash       BYTEA PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    retired_at BIGINT NOT NULL
);
CREATE INDEX retired_refresh_tokens_by_session ON retired_refresh_tokens (session_id);

CREATE TABLE challenges (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    method      TEXT NOT NULL CHECK (method IN ('SMS', 'EMAIL')),
    destination TEXT NOT NULL,            -- masked
    code_hash   BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'SUPERSEDED', 'VERIFIED'))
);
CREATE INDEX challenges_by_session ON challenges (session_id);

-- The hash-chained audit trail. Append-only: the trigger below refuses edits and deletions.
CREATE TABLE audit_events (
    seq                BIGINT PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    at                 BIGINT NOT NULL,
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
);
CREATE INDEX audit_events_by_time ON audit_events (at);

-- The chain's newest link. Appenders lock this row, which orders appends from every instance.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Retention deletes events from the start of the chain; the checkpoint holds the last deleted
-- link, so verification starts from it.
CREATE TABLE audit_checkpoint (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_checkpoint (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Only events at or before the checkpoint (moved by retention) may be deleted.
CREATE FUNCTION audit_events_are_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT seq FROM audit_checkpoint WHERE id = 1) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_are_not_changed BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_are_append_only();

CREATE FUNCTION audit_events_are_not_truncated() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_are_not_truncated BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION audit_events_are_not_truncated();
