-- Housekeeping and start-up without reading whole tables, at ten million customers as at a
-- thousand.
--
-- Not CONCURRENTLY, for the reason 0018 gives: the builds block writes to sessions and
-- customers while they run (seconds at ten million rows).

-- Sessions that expired without becoming ACTIVE (a login that never finished its second
-- factor): the purge finds them here, and the rest through sessions_by_absolute_expiry.
CREATE INDEX sessions_unfinished_by_expiry ON sessions (expires_at) WHERE state <> 'ACTIVE';

-- Usernames an earlier version may have stored in another Unicode form: start-up's
-- normalisation reads only these (the predicate is NON_ASCII_USERNAMES' own).
CREATE INDEX customers_with_non_ascii_username ON customers (id) WHERE username ~ '[^ -~]';
