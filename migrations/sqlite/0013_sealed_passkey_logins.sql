-- A passkey login's ceremony now travels sealed in the challengeId the browser answers with,
-- so opening one writes nothing. What is kept is the id of each ceremony answered, until the
-- ceremony would have expired, so that each is answered once on any instance. Ceremonies
-- opened before this migration are not answerable after it: the browser asks for new options.
DROP TABLE passkey_logins;
CREATE TABLE answered_passkey_logins (
    id         TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX answered_passkey_logins_expiry ON answered_passkey_logins (expires_at);
