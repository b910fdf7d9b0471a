-- Devices a customer signed in from with the right password. The fingerprint is kept only as a
-- keyed hash (sessions.device_fingerprint holds the same hash from now on).
CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    fingerprint_hash TEXT NOT NULL,
    name             TEXT,
    first_seen_at    INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    last_ip          TEXT,
    last_country     TEXT,
    verified_at      INTEGER,              -- its first completed login (after 2FA where it applies)
    UNIQUE (customer_id, fingerprint_hash)
) STRICT;
CREATE INDEX sessions_by_device ON sessions (customer_id, device_fingerprint);

-- The customer's own security history, newest first.
CREATE INDEX audit_events_by_customer ON audit_events (customer_id, seq);
CREATE INDEX audit_events_by_username ON audit_events (username, seq);
