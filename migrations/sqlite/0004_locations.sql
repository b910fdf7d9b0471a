-- Where each login came from (when a location database is configured), the places of each
-- customer's completed logins, and the unusual-login notices already sent.
ALTER TABLE sessions ADD COLUMN country TEXT;
ALTER TABLE sessions ADD COLUMN asn INTEGER;
ALTER TABLE sessions ADD COLUMN latitude REAL;
ALTER TABLE sessions ADD COLUMN longitude REAL;

-- The user agent of a device's latest login.
ALTER TABLE devices ADD COLUMN last_user_agent TEXT;

ALTER TABLE customers ADD COLUMN last_located_at INTEGER;
ALTER TABLE customers ADD COLUMN last_latitude REAL;
ALTER TABLE customers ADD COLUMN last_longitude REAL;

CREATE TABLE login_places (
    customer_id   TEXT NOT NULL REFERENCES customers (id),
    kind          TEXT NOT NULL CHECK (kind IN ('COUNTRY', 'NETWORK')),
    value         TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (customer_id, kind, value)
) STRICT;

CREATE TABLE risk_notices (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    signal      TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    PRIMARY KEY (customer_id, signal)
) STRICT;
