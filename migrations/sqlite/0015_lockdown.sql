-- "This wasn't me": a customer's lockdown locks their username until a completed password reset
-- or an operator's unlock, apart from the operator's own lock (which a reset does not clear).
ALTER TABLE lockouts ADD COLUMN locked_down INTEGER NOT NULL DEFAULT 0;
-- Lockdown links are sealed, so nothing is stored when one is sent; each is used once, so the id
-- of a used one is kept until the link would have expired.
CREATE TABLE used_lockdown_links (
    id         TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX used_lockdown_links_expiry ON used_lockdown_links (expires_at);
